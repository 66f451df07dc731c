"""One platform attempt: where the clip's media is, the call to the platform, and the
answer sent back as a command keyed by the item id (the item's partition applies it).

A media lookup that fails is answered like a platform's failure, so that the state machine
settles it: M06 unreachable is transient (backoff, then failed once the attempts are
spent), a clip without media fails that platform at once. Never an item left publishing."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable

from app import metrics
from app.db.queue import PlatformAttempt
from app.domain.errors import NotFound, Unavailable
from app.domain.model import ErrorClass, Outcome
from app.neighbours import MediaLocator
from app.platforms.direct import LeaseLost
from app.platforms.gateway import (MAX_MESSAGE_CHARS, PlatformGateway, PostRequest,
                                   PublishOutcome, failure, idempotency_key)
from app.topics import Send
from app.wire import PlatformResultCommand, PlatformResultPayload, send_commands

log = logging.getLogger("distribution.publisher")


def media_failure(error: NotFound | Unavailable) -> PublishOutcome:
    """What a failed media lookup means for the attempt."""
    if isinstance(error, NotFound):
        return failure(ErrorClass.MEDIA, "media_not_found", f"media: {error.message}")
    return failure(ErrorClass.TRANSIENT, "media_unavailable", f"media: {error.message}",
                   retry_after=error.details.get("retry_after"))


def platform_result_command(attempt: PlatformAttempt,
                            outcome: PublishOutcome) -> PlatformResultCommand:
    # Unique per call: after a manual retry resets the attempts, an unresolved platform
    # posts again with the same key and attempt number, and its answer must not be taken
    # for a repeat of the earlier round's (a redelivered message keeps its id).
    key = idempotency_key(attempt.item_id, attempt.platform, attempt.key_attempt)
    return PlatformResultCommand(
        command_id=f"result:{key}:{attempt.attempts}:{uuid.uuid4().hex}",
        item_id=attempt.item_id,
        payload=PlatformResultPayload(
            platform=attempt.platform, key_attempt=attempt.key_attempt,
            outcome=outcome.outcome, error_class=outcome.error_class,
            reason_code=outcome.reason_code, post_id=outcome.post_id, post_url=outcome.post_url,
            error=outcome.error, retry_after=outcome.retry_after, jitter=random.random(),
            attempt=attempt.attempts))


def unrecorded_answer(answer: PlatformResultCommand, error: Exception) -> PlatformResultCommand:
    """What stands in for a platform's answer that could not be recorded (its command failed
    in the handler: a bug, a constraint; dead-lettered): the platform left `unknown`, for an
    operator to settle, rather than leased, called and failed again at every lease. The
    error names what the platform said without repeating its text (which may be what
    failed)."""
    said = answer.payload
    return answer.model_copy(update={
        "command_id": f"{answer.command_id}:unrecorded",
        "payload": said.model_copy(update={
            "outcome": Outcome.UNKNOWN, "error_class": None,
            "reason_code": "answer_not_recorded", "post_url": None, "retry_after": None,
            "post_id": None,
            "error": (f"the platform's answer ({said.outcome.value}"
                      + (f", post id {said.post_id!r}" if said.post_id else "")
                      + f") could not be recorded: {type(error).__name__}")[:MAX_MESSAGE_CHARS]})})


def _nothing() -> None:
    pass


async def publish_attempt(attempt: PlatformAttempt, gateway: PlatformGateway,
                          media: MediaLocator, send: Send,
                          answered: Callable[[], None] = _nothing) -> PublishOutcome | None:
    """Make one leased attempt and send its answer (None: nothing sent, a later lease took
    the attempt over). `answered` is called once the call is over, before the answer is
    sent: the publisher frees the call's place then (sending is a broker round trip).
    Raises when the answer cannot be sent (no broker): the lease then runs out and the
    attempt is made again, with the same key."""
    try:
        outcome = await platform_outcome(attempt, gateway, media)
    finally:
        answered()
    if outcome is not None:
        metrics.observe_attempt(attempt.platform, outcome.outcome.value, outcome.error_class,
                                outcome.reason_code)
        await send_commands(send, [platform_result_command(attempt, outcome)])
    return outcome


async def platform_outcome(attempt: PlatformAttempt, gateway: PlatformGateway,
                           media: MediaLocator) -> PublishOutcome | None:
    """Make one leased attempt: what the platform (or M06) answered; None when a later
    lease took the attempt over (nothing to send)."""
    try:
        location = await media.media_for(attempt.clip_id)
    except (NotFound, Unavailable) as exc:
        outcome = media_failure(exc)
        log.warning("media lookup failed", extra={
            "item_id": attempt.item_id, "platform": attempt.platform,
            "clip_id": attempt.clip_id, "attempt": attempt.attempts,
            "outcome": outcome.outcome.value, "error": outcome.error})
        return outcome
    request = PostRequest(item_id=attempt.item_id, platform=attempt.platform,
                          clip_id=attempt.clip_id, influencer_id=attempt.influencer_id,
                          media_url=location.url, caption=attempt.caption,
                          overlays=attempt.overlays, key_attempt=attempt.key_attempt,
                          media=location, lease=attempt.lease)
    try:
        outcome = await gateway.post(request)
    except LeaseLost:
        # a later lease of the attempt is under way; its answer is the one that counts
        log.warning("attempt taken over by a later lease: no answer sent", extra={
            "item_id": attempt.item_id, "platform": attempt.platform,
            "attempt": attempt.attempts})
        return None
    log.info("platform answered", extra={
        "item_id": attempt.item_id, "platform": attempt.platform,
        "attempt": attempt.attempts, "idempotency_key": request.idempotency_key,
        "outcome": outcome.outcome.value, "error": outcome.error})
    return outcome

