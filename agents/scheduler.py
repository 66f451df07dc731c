"""Timer: take due scheduled items in batches and send each its publish-due command.

Every worker runs it; the database hands each due item to one of them (SKIP LOCKED), and
the command's id is derived from the schedule, so a repeat is applied once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from app.db.jobs import claim_due_items
from app.domain.errors import Unavailable
from app.envelope import rfc3339
from app.faust_app import app
from app.topics import commands_topic, encode
from app.wire import Command

log = logging.getLogger("distribution.scheduler")


async def enqueue_due_items() -> int:
    s = app.settings
    due = await claim_due_items(app.pool, app.now(), s.scheduler_batch_size,
                                timedelta(seconds=s.due_requeue_seconds))
    futures = []
    for item in due:
        scheduled_at = item.scheduled_at.isoformat()
        command = Command(command_id=f"due:{item.item_id}:{rfc3339(item.scheduled_at)}",
                          kind="publish-due", item_id=item.item_id,
                          payload={"scheduled_at": scheduled_at})
        futures.append(await commands_topic.send(key=item.item_id.encode(),
                                                 value=encode(command.model_dump(mode="json"))))
    for fut in futures:
        await fut  # a lost send is taken again after due_requeue_seconds
    if due:
        log.info("due items enqueued", extra={"count": len(due),
                                              "item_ids": [d.item_id for d in due[:50]]})
    return len(due)


@app.timer(app.settings.scheduler_interval_seconds)
async def scheduler() -> None:
    try:
        while await enqueue_due_items() >= app.settings.scheduler_batch_size:
            pass
    except Unavailable as exc:
        log.warning("scheduler waiting for the database", extra={"error": exc.message})
    except Exception:
        log.exception("scheduler round failed")
