"""The attempt ledger (app/platforms/direct.py says why): one entry per (item, platform,
key attempt), claimed by each lease in turn. Only the lease that claimed an entry last may
write it, so a lease that ran out (a frozen worker) can never pass a point of no return
after another lease took its attempt over."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from app.platforms.direct import LeaseLost, LedgerEntry

from .pool import translate_errors
from .queries import Q


def _entry(row: asyncpg.Record) -> LedgerEntry:
    return LedgerEntry(row["step"], dict(row["handles"]), row["started_at"], row["updated_at"])


def _storable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class PgLedger:
    """The entry of one leased attempt, each write committed on its own."""

    def __init__(self, pool: asyncpg.Pool, item_id: str, platform: str, key_attempt: int,
                 lease: int) -> None:
        self.pool = pool
        self.key = (item_id, platform, key_attempt, lease)
        self._entry: LedgerEntry | None = None

    @property
    def entry(self) -> LedgerEntry:
        if self._entry is None:
            raise RuntimeError("the ledger entry is not claimed yet")
        return self._entry

    async def claim(self) -> LedgerEntry:
        """This lease's entry (new, or what earlier leases of the attempt recorded)."""
        async with translate_errors():
            row = await self.pool.fetchrow(Q["claim_ledger_entry"], *self.key)
        if row is None:
            raise LeaseLost(f"a later lease holds {self.key[:3]}")
        self._entry = _entry(row)
        return self._entry

    async def record(self, step: str, **handles: Any) -> LedgerEntry:
        values = {name: _storable(value) for name, value in handles.items()}
        async with translate_errors():
            row = await self.pool.fetchrow(Q["record_ledger_step"], *self.key, step, values)
        if row is None:
            raise LeaseLost(f"a later lease holds {self.key[:3]}")
        self._entry = _entry(row)
        return self._entry


async def ledger_entries(pool: asyncpg.Pool, item_id: str) -> list[dict[str, Any]]:
    async with translate_errors():
        rows = await pool.fetch(Q["ledger_entries"], item_id)
    return [dict(r) for r in rows]
