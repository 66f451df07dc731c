"""Platform calls, away from the command agent: lease attempts from the database, make
each call (app/publishing.py), and send its answer back as a command keyed by the item id.

Runs on every worker; the database hands each attempt to one of them (the lease rule:
app/db/queue.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from app.batches import GatheredSend
from app.channels import send_bundled
from app.db.queue import HEAVY_PLATFORMS, PlatformAttempt, lease_round
from app.faust_app import app
from app import metrics
from app.publishing import publish_attempt

from .looping import run_rounds

log = logging.getLogger("distribution.publisher")

#: Attempts under way on this worker: their platform calls, then their answers being sent.
#: The loop does not wait for them: a slow or hanging platform must not hold back other
#: platforms' attempts that fall due meanwhile.
in_flight: set[asyncio.Task] = set()
#: The calls' answers, sent together: those given while a send is under way make the next
#: one, bundled by partition.
send_answers = GatheredSend(send_bundled)


class Calls:
    """Platform calls under way, which DISTRIBUTION_PUBLISHER_CONCURRENCY bounds, and of
    those the heavy platforms' (DISTRIBUTION_PUBLISHER_SNAPCHAT_CONCURRENCY). A call frees
    its place when the platform has answered: sending the answer (a broker round trip)
    does not hold one."""

    under_way = 0
    heavy = 0


def free_place(platform: str) -> None:
    Calls.under_way -= 1
    if platform in HEAVY_PLATFORMS:
        Calls.heavy -= 1
    app.publisher_wakeup.set()


async def publish_one(attempt: PlatformAttempt) -> None:
    try:
        await publish_attempt(attempt, app.gateway, app.media, send_answers,
                              answered=lambda: free_place(attempt.platform))
    except Exception:
        # The lease runs out and another attempt is made with the same key.
        log.exception("publishing attempt not completed", extra={
            "item_id": attempt.item_id, "platform": attempt.platform})


async def start_due_attempts() -> int:
    """Leases as many due attempts as there are free places and starts their calls."""
    s = app.settings
    free = min(s.publisher_batch_size, s.publisher_concurrency - Calls.under_way)
    if free <= 0:
        return 0
    attempts = await lease_round(app.pool, app.now(), timedelta(seconds=s.publish_lease_seconds),
                                 free, s.publisher_snapchat_concurrency - Calls.heavy)
    Calls.under_way += len(attempts)
    Calls.heavy += sum(a.platform in HEAVY_PLATFORMS for a in attempts)
    for attempt in attempts:
        task = asyncio.ensure_future(publish_one(attempt))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    return len(attempts)


metrics.PROCESS.calls_under_way = lambda: Calls.under_way


@app.task
@app.vitals.watch("publisher")
async def publisher() -> None:
    interval = app.settings.publisher_interval_seconds
    try:
        await run_rounds("publisher", start_due_attempts, app.publisher_wakeup, interval,
                         max_backoff=interval)
    finally:
        # Stopping: calls cut short are taken again after their lease, with the same key.
        for task in list(in_flight):
            task.cancel()
        send_answers.close()
