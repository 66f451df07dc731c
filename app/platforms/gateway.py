"""The one interface every platform adapter speaks, and what a post attempt can end in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from app.domain.model import ErrorClass, Outcome

if TYPE_CHECKING:
    from app.neighbours import Media

__all__ = ["ErrorClass", "Outcome", "PlatformGateway", "PostRequest", "PublishOutcome",
           "failure", "idempotency_key", "in_progress", "published", "unknown"]

#: The longest platform message kept in an outcome's error.
MAX_MESSAGE_CHARS = 500


def idempotency_key(item_id: str, platform: str, key_attempt: int) -> str:
    """What the platform recognises a repeated post by: it changes only after a definite
    answer (the key attempt advances)."""
    return f"{item_id}:{platform}:{key_attempt}"


@dataclass(frozen=True)
class PostRequest:
    item_id: str
    platform: str
    clip_id: str
    influencer_id: str
    media_url: str
    caption: dict[str, Any] = field(default_factory=lambda: {"text": "", "hashtags": []})
    overlays: list[dict[str, Any]] = field(default_factory=list)
    key_attempt: int = 1
    media: Media | None = None  # what M06 said of the clip (size, type), when it was asked
    lease: int = 0  # the lease number of the attempt (the ledger's fence, direct mode)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.item_id, self.platform, self.key_attempt)

    def body(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "clip_id": self.clip_id,
                "influencer_id": self.influencer_id, "media_url": self.media_url,
                "caption": self.caption, "overlays": self.overlays}


@dataclass(frozen=True)
class PublishOutcome:
    outcome: Outcome
    post_id: str | None = None
    post_url: str | None = None
    error: str | None = None
    retry_after: float | None = None
    error_class: ErrorClass | None = None  # of a failure; the one taxonomy of every platform
    reason_code: str | None = None  # the platform's own code, or ours (`http_503`)


# --- the outcomes every adapter answers with -------------------------------------------

def published(post_id: str, post_url: str | None) -> PublishOutcome:
    return PublishOutcome(Outcome.PUBLISHED, post_id=post_id, post_url=post_url)


def failure(error_class: ErrorClass, reason_code: str, message: str,
            retry_after: float | None = None) -> PublishOutcome:
    """A classed failure. Transient and quota keep the attempt's key (and its ledger
    entry): what was started is reconciled on the next attempt."""
    outcome = (Outcome.TRANSIENT if error_class in (ErrorClass.TRANSIENT, ErrorClass.QUOTA)
               else Outcome.REJECTED)
    return PublishOutcome(outcome, error=message[:MAX_MESSAGE_CHARS], retry_after=retry_after,
                          error_class=error_class, reason_code=reason_code)


def in_progress(reason_code: str, message: str, poll_seconds: float) -> PublishOutcome:
    """The platform is still working (downloading, processing, moderating): look again in
    `poll_seconds`, without spending an attempt."""
    return PublishOutcome(Outcome.IN_PROGRESS, error=message[:MAX_MESSAGE_CHARS],
                          retry_after=poll_seconds, reason_code=reason_code)


def unknown(reason_code: str, message: str) -> PublishOutcome:
    """Whether a post exists cannot be established: never posted again automatically."""
    return PublishOutcome(Outcome.UNKNOWN, error=message[:MAX_MESSAGE_CHARS],
                          reason_code=reason_code)


class PlatformGateway(Protocol):
    async def post(self, request: PostRequest) -> PublishOutcome:
        """Post a clip; never raises for what the platform answered or for a timeout."""

    async def close(self) -> None: ...
