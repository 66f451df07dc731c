"""One round of the scheduler: take due scheduled items and send each its publish-due
command. The command's id derives from the schedule, so a repeat is applied once; a
lost send is taken again after the requeue delay (app/db/queue.py)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import asyncpg

from app.db.queue import DueItem, take_due_items
from app.envelope import rfc3339
from app.settings import Settings
from app.topics import Send
from app.wire import PublishDueCommand, PublishDuePayload, send_commands

log = logging.getLogger("distribution.scheduler")


def publish_due_command(due: DueItem) -> PublishDueCommand:
    return PublishDueCommand(command_id=f"due:{due.item_id}:{rfc3339(due.scheduled_at)}",
                             item_id=due.item_id,
                             payload=PublishDuePayload(scheduled_at=due.scheduled_at))


async def enqueue_due_items(pool: asyncpg.Pool, settings: Settings, send: Send,
                            now: datetime) -> int:
    """One batch of due items turned into commands; how many."""
    due = await take_due_items(pool, now, settings.scheduler_batch_size,
                               timedelta(seconds=settings.due_requeue_seconds))
    if due:
        await send_commands(send, [publish_due_command(d) for d in due])
        log.info("due items enqueued", extra={"count": len(due),
                                              "item_ids": [d.item_id for d in due[:50]]})
    return len(due)
