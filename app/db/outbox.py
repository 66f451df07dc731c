"""Outcome events written beside the state change (app/envelope.py builds them), and the
relay's batches."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from .pool import delete_in_batches
from .queries import Q
from .writes import BatchWrites

class OutboxRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._added: list[tuple] = []

    def add(self, topic: str, envelope: dict[str, Any]) -> None:
        """An event to write at the next flush, after those added before it."""
        self._added.append((uuid.UUID(envelope["event_id"]), topic, envelope["partition_key"],
                            envelope))

    def write_into(self, writes: BatchWrites) -> None:
        writes.outbox.extend(self._added)
        self.discard()

    def discard(self) -> None:
        self._added.clear()

    async def try_lead(self) -> bool:
        """True when this transaction is the one relay allowed to run now."""
        return await self.conn.fetchval(Q["try_relay_lock"])

    async def pending(self, limit: int) -> list[asyncpg.Record]:
        return await self.conn.fetch(Q["pending_outbox"], limit)

    async def mark_published(self, ids: list[int]) -> None:
        await self.conn.execute(Q["mark_outbox_published"], ids)

    async def note_failure(self, ids: list[int], error: str) -> None:
        await self.conn.execute(Q["note_outbox_failure"], ids, error[:500])


async def prune_published(pool: asyncpg.Pool, cutoff: datetime, batch: int = 5_000) -> int:
    """Delete rows published before `cutoff`, a batch at a time; how many. A pending row
    stays whatever its age: its event is not on the topic yet."""
    return await delete_in_batches(pool, Q["prune_published_outbox"], cutoff, batch)
