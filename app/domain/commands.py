"""What can be asked of an item: one small record per command, named as an order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .model import Caption, ErrorClass, Outcome


@dataclass(frozen=True)
class AddOverlay:
    type: str
    duration_seconds: float


@dataclass(frozen=True)
class Schedule:
    platforms: list[str]
    scheduled_at: str
    timezone: str | None = None
    caption: Caption | None = None


@dataclass(frozen=True)
class Reschedule:
    scheduled_at: str
    timezone: str | None = None


@dataclass(frozen=True)
class Publish:
    """Publish now to one platform (`publish`) or several (`publish-multi`)."""

    platforms: list[str]
    caption: Caption | None = None


@dataclass(frozen=True)
class Retry:
    pass


@dataclass(frozen=True)
class RequestDownload:
    pass


@dataclass(frozen=True)
class PublishDue:
    """Sent by the scheduler for the schedule it saw; a later reschedule makes it moot."""

    scheduled_at: datetime


@dataclass(frozen=True)
class RecordPlatformResult:
    """What a platform answered to one attempt, sent back by the publisher."""

    platform: str
    key_attempt: int
    outcome: Outcome
    #: Of a failure: its class and the platform's code. Without a class, a transient
    #: outcome is TRANSIENT and a rejection PERMANENT (what every answer meant before).
    error_class: ErrorClass | None = None
    reason_code: str | None = None
    post_id: str | None = None
    post_url: str | None = None
    error: str | None = None
    retry_after: float | None = None
    jitter: float = 0.5
    attempt: int = 0  # which attempt this answers (the publisher counts them before calling)


@dataclass(frozen=True)
class ResolvePlatform:
    """An operator settles a platform whose outcome is unknown, from what they saw on it."""

    platform: str
    outcome: str  # "published" | "not_published"
    post_id: str | None = None
    post_url: str | None = None
