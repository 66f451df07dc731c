"""Platform calls, away from the command agent: take attempts from the database, post,
and send each answer back as a command keyed by the item id.

Runs on every worker; the database hands each attempt to one of them (SKIP LOCKED), and
an attempt whose worker died is taken again after its lease, with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import timedelta

from app.db.jobs import PlatformAttempt, claim_platform_attempts
from app.domain.errors import Unavailable
from app.faust_app import app
from app.platforms.gateway import PostRequest
from app.topics import commands_topic, encode
from app.wire import Command

log = logging.getLogger("distribution.publisher")


async def publish_attempt(attempt: PlatformAttempt) -> None:
    media = await app.media.media_for(attempt.clip_id)
    request = PostRequest(item_id=attempt.item_id, platform=attempt.platform,
                          clip_id=attempt.clip_id, influencer_id=attempt.influencer_id,
                          media_url=media.url, caption=attempt.caption,
                          overlays=attempt.overlays, key_attempt=attempt.key_attempt)
    outcome = await app.gateway.post(request)
    log.info("platform answered", extra={
        "item_id": attempt.item_id, "platform": attempt.platform, "attempt": attempt.attempts,
        "idempotency_key": request.idempotency_key, "outcome": outcome.outcome.value,
        "error": outcome.error})
    # Unique per call: after a manual retry resets the attempts, an unresolved platform
    # posts again with the same key and attempt number, and its answer must not be taken
    # for a repeat of the earlier round's (a redelivered message keeps its id).
    command = Command(
        command_id=f"result:{request.idempotency_key}:{attempt.attempts}:{uuid.uuid4().hex}",
        kind="platform-result", item_id=attempt.item_id,
        payload={"platform": attempt.platform, "key_attempt": attempt.key_attempt,
                 "outcome": outcome.outcome.value, "post_id": outcome.post_id,
                 "post_url": outcome.post_url, "error": outcome.error,
                 "retry_after": outcome.retry_after, "jitter": random.random(),
                 "attempt": attempt.attempts})
    fut = await commands_topic.send(key=attempt.item_id.encode(),
                                    value=encode(command.model_dump(mode="json")))
    await fut


#: Calls under way on this worker. The loop does not wait for them: a slow or hanging
#: platform must not hold back other platforms' attempts that fall due meanwhile.
in_flight: set[asyncio.Task] = set()


async def publish_one(attempt: PlatformAttempt) -> None:
    try:
        await publish_attempt(attempt)
    except Exception:
        # The lease runs out and another attempt is made with the same key.
        log.exception("publishing attempt not completed", extra={
            "item_id": attempt.item_id, "platform": attempt.platform})
    finally:
        app.publisher_wakeup.set()  # a slot is free


async def publish_batch() -> int:
    """Takes as many due attempts as there are free slots and starts their calls."""
    s = app.settings
    free = min(s.publisher_batch_size, s.publisher_concurrency - len(in_flight))
    if free <= 0:
        return 0
    attempts = await claim_platform_attempts(
        app.pool, app.now(), free, timedelta(seconds=s.publish_lease_seconds))
    for attempt in attempts:
        task = asyncio.ensure_future(publish_one(attempt))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    return len(attempts)


@app.task
async def publisher() -> None:
    interval = app.settings.publisher_interval_seconds
    try:
        while not app.should_stop:
            try:
                taken = await publish_batch()
            except Unavailable as exc:
                log.warning("publisher waiting for the database", extra={"error": exc.message})
                taken = 0
            except Exception:
                log.exception("publisher round failed")
                taken = 0
            if taken:
                continue  # there may be more
            try:
                await asyncio.wait_for(app.publisher_wakeup.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
            app.publisher_wakeup.clear()
    finally:
        # Stopping: calls cut short are taken again after their lease, with the same key.
        for task in list(in_flight):
            task.cancel()
