"""One platform attempt: where the clip's media is, the call to the platform, and the
answer sent back as a command keyed by the item id (the item's partition applies it)."""

from __future__ import annotations

import logging
import random
import uuid

from app.db.queue import PlatformAttempt
from app.neighbours import MediaLocator
from app.platforms.gateway import PlatformGateway, PostRequest, PublishOutcome
from app.topics import Send
from app.wire import PlatformResultCommand, PlatformResultPayload, send_commands

log = logging.getLogger("distribution.publisher")


def platform_result_command(attempt: PlatformAttempt, request: PostRequest,
                            outcome: PublishOutcome) -> PlatformResultCommand:
    # Unique per call: after a manual retry resets the attempts, an unresolved platform
    # posts again with the same key and attempt number, and its answer must not be taken
    # for a repeat of the earlier round's (a redelivered message keeps its id).
    return PlatformResultCommand(
        command_id=f"result:{request.idempotency_key}:{attempt.attempts}:{uuid.uuid4().hex}",
        item_id=attempt.item_id,
        payload=PlatformResultPayload(
            platform=attempt.platform, key_attempt=attempt.key_attempt,
            outcome=outcome.outcome, post_id=outcome.post_id, post_url=outcome.post_url,
            error=outcome.error, retry_after=outcome.retry_after, jitter=random.random(),
            attempt=attempt.attempts))


async def publish_attempt(attempt: PlatformAttempt, gateway: PlatformGateway,
                          media: MediaLocator, send: Send) -> PublishOutcome:
    """Make one leased attempt and send its answer. Raises when it cannot complete (no
    media, no broker): the lease then runs out and the attempt is made again."""
    location = await media.media_for(attempt.clip_id)
    request = PostRequest(item_id=attempt.item_id, platform=attempt.platform,
                          clip_id=attempt.clip_id, influencer_id=attempt.influencer_id,
                          media_url=location.url, caption=attempt.caption,
                          overlays=attempt.overlays, key_attempt=attempt.key_attempt)
    outcome = await gateway.post(request)
    log.info("platform answered", extra={
        "item_id": attempt.item_id, "platform": attempt.platform, "attempt": attempt.attempts,
        "idempotency_key": request.idempotency_key, "outcome": outcome.outcome.value,
        "error": outcome.error})
    await send_commands(send, [platform_result_command(attempt, request, outcome)])
    return outcome
