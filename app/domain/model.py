"""Distribution items and the values they are made of."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    CLAIMED = "claimed"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"


class Platform(StrEnum):
    TIKTOK = "tiktok"
    INSTAGRAM = "instagram"
    YOUTUBE = "youtube"
    SNAPCHAT = "snapchat"


class ErrorClass(StrEnum):
    """What a failed attempt means, whichever platform (or M06) said it."""

    TRANSIENT = "transient"   # try again later: backoff with jitter, Retry-After a floor
    PERMANENT = "permanent"   # the request itself is wrong: fail at once
    AUTH = "auth"             # the account's token is refused: fail at once
    QUOTA = "quota"           # a posting window is full: wait for its reset, no attempt spent
    MEDIA = "media"           # the clip's media cannot be used: fail at once
    POLICY = "policy"         # the platform refuses the account or the content: fail at once


class Publication(StrEnum):
    """How publishing ended for the item as a whole, for consumers that need more than its
    status: `failed` says only that some platform failed."""

    PUBLISHED = "published"                      # every platform
    PARTIALLY_PUBLISHED = "partially_published"  # some platforms, the others failed
    FAILED = "failed"                            # none


class PlatformState(StrEnum):
    PENDING = "pending"        # waiting for its next attempt
    PUBLISHING = "publishing"  # an attempt is in flight; next_attempt_at is its lease expiry
    PUBLISHED = "published"
    FAILED = "failed"
    UNKNOWN = "unknown"        # a crash left the outcome impossible to establish: never
    #                            posted again automatically, settled by an operator


class Outcome(StrEnum):
    """What a platform answered to one attempt."""

    PUBLISHED = "published"   # posted (or already posted with that key)
    TRANSIENT = "transient"   # 429, 5xx, timeout, reset: try again later with the same key
    REJECTED = "rejected"     # any other refusal: fails that platform for good
    IN_PROGRESS = "in_progress"  # the platform is still working: look again, no attempt spent
    UNKNOWN = "unknown"       # whether a post exists cannot be established: an operator settles it


class OverlayType(StrEnum):
    INTRO = "intro"
    OUTRO = "outro"


#: Overlays play in this order around the clip.
OVERLAY_PLAY_ORDER = (OverlayType.INTRO, OverlayType.OUTRO)


#: What an item id (the M09 claim id) may look like: it travels in URL paths and Kafka keys.
ITEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"


@dataclass(frozen=True)
class Actor:
    """Who asks: an influencer, who may act on their own items, or an operator, who may act
    on any item."""

    id: str
    operator: bool = False


@dataclass(frozen=True)
class Overlay:
    type: OverlayType
    duration_seconds: float


@dataclass(frozen=True)
class CaptionText:
    text: str
    hashtags: tuple[str, ...] = ()
    title: str | None = None


@dataclass(frozen=True)
class Caption:
    """Caption metadata; a platform variant, when given, replaces the default for that platform."""

    default: CaptionText
    variants: dict[Platform, CaptionText] = field(default_factory=dict)

    def for_platform(self, platform: Platform) -> CaptionText:
        return self.variants.get(platform, self.default)


@dataclass(frozen=True)
class PlatformStatus:
    platform: Platform
    status: PlatformState = PlatformState.PENDING
    attempts: int = 0
    #: The attempt number in the platform call's idempotency key; it advances only after
    #: the platform gave a definite answer, so a repeat after a crash reuses the key.
    key_attempt: int = 1
    error: str | None = None
    error_class: ErrorClass | None = None
    reason_code: str | None = None  # the platform's own code (`spam_risk_too_many_posts`, ...)
    next_attempt_at: datetime | None = None
    post_id: str | None = None
    post_url: str | None = None
    published_at: datetime | None = None
    #: Whether the current publishing round (first publish, or a retry) includes it.
    in_round: bool = True

    @property
    def resolved(self) -> bool:
        return self.status in (PlatformState.PUBLISHED, PlatformState.FAILED)


@dataclass(frozen=True)
class Item:
    id: str
    influencer_id: str
    clip_id: str
    campaign_id: str
    status: Status
    claimed_at: datetime
    claim_expires_at: datetime
    scheduled_at: datetime | None = None
    timezone: str | None = None
    platforms: tuple[Platform, ...] = ()
    overlays: dict[OverlayType, Overlay] = field(default_factory=dict)
    caption: Caption | None = None
    platform_status: dict[Platform, PlatformStatus] = field(default_factory=dict)
    retry_count: int = 0
    failure_reason: str | None = None
    version: int = 1

    def evolve(self, **changes) -> Item:
        """A copy with the changes and the version raised by one."""
        return replace(self, version=self.version + 1, **changes)

    @property
    def publication(self) -> Publication | None:
        """How publishing ended, once it has (published or failed); else None."""
        if self.status not in (Status.PUBLISHED, Status.FAILED):
            return None
        published = [r.status is PlatformState.PUBLISHED for r in self.platform_status.values()]
        if published and all(published):
            return Publication.PUBLISHED
        return Publication.PARTIALLY_PUBLISHED if any(published) else Publication.FAILED

    def overlays_in_play_order(self) -> list[Overlay]:
        return [self.overlays[t] for t in OVERLAY_PLAY_ORDER if t in self.overlays]
