"""Accounts on hold: the platform refused their token even after a refresh through M10, so
their due posts on that platform wait (the lease query passes them over) until M10 says the
account is usable again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .queries import Q


@dataclass(frozen=True)
class AccountHold:
    influencer_id: str
    platform: str
    reason_code: str | None
    error: str | None
    held_at: datetime


class AccountHolds:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def hold(self, influencer_id: str, platform: str, reason_code: str | None,
                   error: str | None) -> bool:
        """True when the account was not held yet (one event per change of state)."""
        return bool(await self.conn.fetchval(Q["hold_account"], influencer_id, platform,
                                             reason_code, error))

    async def release(self, influencer_id: str, platform: str) -> AccountHold | None:
        """The hold lifted, or None when the account was not held."""
        row = await self.conn.fetchrow(Q["release_account"], influencer_id, platform)
        return AccountHold(**row) if row else None

    async def holds_of(self, influencer_id: str) -> list[AccountHold]:
        rows = await self.conn.fetch(Q["account_holds"], influencer_id)
        return [AccountHold(**r) for r in rows]
