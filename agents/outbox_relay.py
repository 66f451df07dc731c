"""Outbox rows -> distribution.published / distribution.failed, keyed by item id.

One relay at a time (a transaction-scoped advisory lock), rows in id order, and a row is
marked published only after the broker acknowledged it: at least once, in order per item.
"""

from __future__ import annotations

import asyncio
import logging

from app.db.unit_of_work import unit_of_work
from app.domain.errors import Unavailable
from app.faust_app import app
from app.topics import OUTCOME_TOPICS, encode

log = logging.getLogger("distribution.outbox")

ACK_TIMEOUT_SECONDS = 15.0


async def relay_once() -> int:
    async with unit_of_work(app.pool) as uow:
        if not await uow.outbox.try_lead():
            return 0
        rows = await uow.outbox.pending(app.settings.outbox_batch_size)
        if not rows:
            return 0
        try:
            futures = [await OUTCOME_TOPICS[r["topic"]].send(
                key=r["partition_key"].encode(), value=encode(r["envelope"])) for r in rows]
            await asyncio.wait_for(asyncio.gather(*futures), ACK_TIMEOUT_SECONDS)
        except Exception as exc:
            # rolled back below: the rows stay pending and are sent again
            raise RelayFailed([r["id"] for r in rows], repr(exc)) from exc
        await uow.outbox.mark_published([r["id"] for r in rows])
    log.info("outbox relayed", extra={"count": len(rows),
                                      "event_ids": [str(r["event_id"]) for r in rows[:50]]})
    return len(rows)


class RelayFailed(Exception):
    def __init__(self, ids: list[int], error: str) -> None:
        super().__init__(error)
        self.ids, self.error = ids, error


async def note_failure(failure: RelayFailed) -> None:
    try:
        async with unit_of_work(app.pool) as uow:
            await uow.outbox.note_failure(failure.ids, failure.error)
    except Unavailable:
        pass


@app.task
async def outbox_relay() -> None:
    interval = app.settings.outbox_interval_seconds
    delay = interval
    while not app.should_stop:
        try:
            sent = await relay_once()
            delay = interval
        except RelayFailed as failure:
            log.warning("outbox relay could not reach the broker",
                        extra={"error": failure.error, "count": len(failure.ids)})
            await note_failure(failure)
            sent, delay = 0, min(delay * 2, 10.0)
        except Unavailable as exc:
            log.warning("outbox relay waiting for the database", extra={"error": exc.message})
            sent, delay = 0, min(delay * 2, 10.0)
        except Exception:
            log.exception("outbox relay round failed")
            sent, delay = 0, min(delay * 2, 10.0)
        if sent:
            continue
        try:
            await asyncio.wait_for(app.relay_wakeup.wait(), timeout=delay)
        except asyncio.TimeoutError:
            pass
        app.relay_wakeup.clear()
