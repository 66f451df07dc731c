"""What happened to an item: facts, named in the past tense."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .model import Overlay, Platform


@dataclass(frozen=True)
class OverlayAdded:
    overlay: Overlay


@dataclass(frozen=True)
class ItemScheduled:
    scheduled_at: datetime
    platforms: tuple[Platform, ...]


@dataclass(frozen=True)
class ItemRescheduled:
    scheduled_at: datetime


@dataclass(frozen=True)
class PublishingStarted:
    platforms: tuple[Platform, ...]


@dataclass(frozen=True)
class PlatformPublished:
    platform: Platform
    attempt: int
    post_id: str
    post_url: str | None


@dataclass(frozen=True)
class PlatformFailed:
    platform: Platform
    attempt: int
    error: str


@dataclass(frozen=True)
class PlatformRetryScheduled:
    platform: Platform
    attempt: int
    error: str
    next_attempt_at: datetime


@dataclass(frozen=True)
class PlatformUnknown:
    """Whether the platform posted cannot be established: an operator must settle it."""

    platform: Platform
    attempt: int
    reason_code: str | None
    error: str


@dataclass(frozen=True)
class AccountNeedsReconnect:
    """The platform refused the account's token even after a refresh: its posts there are
    held until M10 says the account is usable again."""

    influencer_id: str
    platform: Platform
    reason_code: str | None
    error: str


@dataclass(frozen=True)
class ItemPublished:
    """Every requested platform is published: goes out on distribution.published."""


@dataclass(frozen=True)
class ItemFailed:
    """Publishing ended with a platform failed for good: goes out on distribution.failed."""

    reason: str


@dataclass(frozen=True)
class DownloadRequested:
    pass


Event = (OverlayAdded | ItemScheduled | ItemRescheduled | PublishingStarted | PlatformPublished
         | PlatformFailed | PlatformRetryScheduled | PlatformUnknown | AccountNeedsReconnect
         | ItemPublished | ItemFailed | DownloadRequested)
