"""The one interface every platform adapter speaks, and what a post attempt can end in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from app.domain.model import ErrorClass, Outcome

if TYPE_CHECKING:
    from app.neighbours import Media

__all__ = ["ErrorClass", "Outcome", "PlatformGateway", "PostRequest", "PublishOutcome",
           "idempotency_key"]


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


class PlatformGateway(Protocol):
    async def post(self, request: PostRequest) -> PublishOutcome:
        """Post a clip; never raises for what the platform answered or for a timeout."""

    async def close(self) -> None: ...
