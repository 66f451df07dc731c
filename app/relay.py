"""One round of the outbox relay: pending outbox rows -> distribution.published /
distribution.failed, keyed by item id.

One relay at a time (a transaction-scoped advisory lock), rows in id order, and a row is
marked sent only after the broker acknowledged it: at least once, in order per item.
"""

from __future__ import annotations

import logging

import asyncpg

from app.db.unit_of_work import unit_of_work
from app.domain.errors import Unavailable
from app.settings import Settings
from app.topics import Message, Send

log = logging.getLogger("distribution.outbox")


class RelayFailed(Unavailable):
    """The broker did not take the outbox rows; they stay pending and are sent again."""


async def relay_outbox(pool: asyncpg.Pool, settings: Settings, send: Send) -> int:
    """Sends one batch of pending rows; how many (0 when another relay leads)."""
    async with unit_of_work(pool) as uow:
        if not await uow.outbox.try_lead():
            return 0
        rows = await uow.outbox.pending(settings.outbox_batch_size)
        if not rows:
            return 0
        ids = [r["id"] for r in rows]
        try:
            await send([Message(r["topic"], r["partition_key"].encode(), r["envelope"].encode())
                        for r in rows])
        except Exception as exc:
            error = repr(exc)  # leaving the block rolls back: the rows stay pending
        else:
            await uow.outbox.mark_published(ids)
            await uow.commit()
            log.info("outbox relayed", extra={
                "count": len(rows), "event_ids": [str(r["event_id"]) for r in rows[:50]]})
            return len(rows)
    await note_failure(pool, ids, error)
    raise RelayFailed("the broker did not acknowledge the outbox rows", error=error,
                      count=len(ids))


async def note_failure(pool: asyncpg.Pool, ids: list[int], error: str) -> None:
    """The failed attempt on each row, for whoever looks at a stuck outbox."""
    try:
        async with unit_of_work(pool) as uow:
            await uow.outbox.note_failure(ids, error)
            await uow.commit()
    except Unavailable:
        pass
