"""Platform calls, away from the command agent: take attempts from the database, post,
and send each answer back as a command keyed by the item id.

Runs on every worker; the database hands each attempt to one of them (SKIP LOCKED), and
an attempt whose worker died is taken again after its lease, with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
    command = Command(
        command_id=f"result:{request.idempotency_key}:{attempt.attempts}",
        kind="platform-result", item_id=attempt.item_id,
        payload={"platform": attempt.platform, "key_attempt": attempt.key_attempt,
                 "outcome": outcome.outcome.value, "post_id": outcome.post_id,
                 "post_url": outcome.post_url, "error": outcome.error,
                 "retry_after": outcome.retry_after, "jitter": random.random(),
                 "attempt": attempt.attempts})
    fut = await commands_topic.send(key=attempt.item_id.encode(),
                                    value=encode(command.model_dump(mode="json")))
    await fut


async def publish_batch() -> int:
    s = app.settings
    attempts = await claim_platform_attempts(
        app.pool, app.now(), s.publisher_batch_size,
        timedelta(seconds=s.publish_lease_seconds))
    if not attempts:
        return 0
    limit = asyncio.Semaphore(s.publisher_concurrency)

    async def one(attempt: PlatformAttempt) -> None:
        async with limit:
            try:
                await publish_attempt(attempt)
            except Exception:
                # The lease runs out and another attempt is made with the same key.
                log.exception("publishing attempt not completed", extra={
                    "item_id": attempt.item_id, "platform": attempt.platform})

    await asyncio.gather(*(one(a) for a in attempts))
    return len(attempts)


@app.task
async def publisher() -> None:
    interval = app.settings.publisher_interval_seconds
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
