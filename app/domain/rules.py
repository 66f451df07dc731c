"""Validation rules: schedule window and time zones, overlays, platforms, captions, claim window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidRequest, InvalidStateTransition, RuleViolation, UnsupportedPlatform
from .model import Caption, Item, Overlay, OverlayType, Platform
from .quota import DEFAULT_QUOTAS, QuotaRule

CLAIM_WINDOW = timedelta(hours=24)
MAX_OVERLAY_SECONDS = 3.0


@dataclass(frozen=True)
class CaptionLimits:
    """Per-platform caption limits (defaults from the platforms' documentation)."""

    tiktok_caption_chars: int = 2200
    instagram_caption_chars: int = 2200
    instagram_hashtags: int = 30
    youtube_description_bytes: int = 5000
    youtube_title_chars: int = 100
    snapchat_caption_chars: int = 160


@dataclass(frozen=True)
class Policy:
    """The tunable numbers the rules apply; built from settings by the caller."""

    min_schedule_lead: timedelta = timedelta(minutes=5)
    max_schedule_ahead: timedelta = timedelta(days=30)
    max_lateness: timedelta = timedelta(hours=1)
    caption_limits: CaptionLimits = field(default_factory=CaptionLimits)
    max_platform_attempts: int = 5
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    quotas: Mapping[Platform, QuotaRule] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(timezone.utc)


def claim_expires_at(claimed_at: datetime) -> datetime:
    return utc(claimed_at) + CLAIM_WINDOW


def check_claim_open(item: Item, now: datetime) -> None:
    if now > item.claim_expires_at:
        raise InvalidStateTransition(
            "the claim window has closed", status=item.status.value,
            claim_expires_at=item.claim_expires_at.isoformat())


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; anything else is a 400."""
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidRequest(f"unknown time zone {name!r}", field="timezone") from None


def resolve_local_time(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time in a zone; DST gaps and folds are rejected."""
    early = local.replace(tzinfo=zone, fold=0)
    late = local.replace(tzinfo=zone, fold=1)
    try:
        round_trip = early.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
    except OverflowError:  # the first or last day datetime can hold
        raise RuleViolation("scheduled_at is out of range", field="scheduled_at") from None
    if round_trip != local.replace(tzinfo=None):
        raise RuleViolation(
            f"{local.isoformat()} does not exist in {zone.key} (daylight saving gap)",
            field="scheduled_at")
    if early.utcoffset() != late.utcoffset():
        raise RuleViolation(
            f"{local.isoformat()} happens twice in {zone.key} (daylight saving fold); "
            "give an offset to choose one", field="scheduled_at")
    return early.astimezone(timezone.utc)


def parse_schedule_time(scheduled_at: str, zone_name: str | None) -> tuple[datetime, str]:
    """RFC 3339 with an offset, or a local time with an IANA zone -> (UTC instant, zone name)."""
    try:
        moment = datetime.fromisoformat(scheduled_at)
    except (TypeError, ValueError):
        raise InvalidRequest(
            "scheduled_at must be an RFC 3339 timestamp or a local date-time",
            field="scheduled_at") from None
    zone = parse_zone(zone_name) if zone_name is not None else None
    if moment.tzinfo is not None:
        try:
            return utc(moment), (zone.key if zone else "UTC")
        except OverflowError:
            raise RuleViolation("scheduled_at is out of range", field="scheduled_at") from None
    if zone is None:
        raise RuleViolation("timezone is required when scheduled_at has no offset",
                             field="timezone")
    return resolve_local_time(moment, zone), zone.key


def check_schedule_window(when: datetime, now: datetime, policy: Policy) -> None:
    earliest = now + policy.min_schedule_lead
    latest = now + policy.max_schedule_ahead
    if when < earliest or when > latest:
        raise RuleViolation(
            f"scheduled_at must lie between {earliest.isoformat()} and {latest.isoformat()}",
            field="scheduled_at", earliest=earliest.isoformat(), latest=latest.isoformat())


def check_overlay(overlay_type: str, duration_seconds: float) -> Overlay:
    try:
        kind = OverlayType(overlay_type)
    except ValueError:
        raise InvalidRequest("overlay type must be intro or outro", field="type") from None
    if not (0 < duration_seconds <= MAX_OVERLAY_SECONDS):
        raise InvalidRequest("duration_seconds must be in (0, 3]", field="duration_seconds")
    return Overlay(kind, float(duration_seconds))


def check_platform(name: str, field_name: str = "platform") -> Platform:
    try:
        return Platform(name)
    except ValueError:
        raise UnsupportedPlatform(
            f"platform {name!r} is not supported", field=field_name,
            supported=[p.value for p in Platform]) from None


def check_platforms(names: list[str], field_name: str = "platforms") -> tuple[Platform, ...]:
    """A non-empty list of supported platforms, without repeats, in the order given."""
    if not names:
        raise InvalidRequest("at least one platform is required", field=field_name)
    platforms = [check_platform(n, field_name) for n in names]
    return tuple(dict.fromkeys(platforms))


def rendered_caption(text: str, hashtags: tuple[str, ...]) -> str:
    tags = " ".join(f"#{t.lstrip('#')}" for t in hashtags)
    return f"{text} {tags}".strip() if tags else text


def check_caption(caption: Caption | None, platforms: tuple[Platform, ...],
                  limits: CaptionLimits) -> None:
    """Each target platform's caption within that platform's limits."""
    if caption is None:
        return
    for platform in platforms:
        variant = caption.for_platform(platform)
        full = rendered_caption(variant.text, variant.hashtags)
        problem = None
        if platform is Platform.TIKTOK and len(full) > limits.tiktok_caption_chars:
            problem = f"longer than {limits.tiktok_caption_chars} characters"
        elif platform is Platform.INSTAGRAM:
            if len(full) > limits.instagram_caption_chars:
                problem = f"longer than {limits.instagram_caption_chars} characters"
            elif len(variant.hashtags) > limits.instagram_hashtags:
                problem = f"more than {limits.instagram_hashtags} hashtags"
        elif platform is Platform.YOUTUBE:
            if len(full.encode()) > limits.youtube_description_bytes:
                problem = f"description longer than {limits.youtube_description_bytes} bytes"
            elif variant.title is not None and len(variant.title) > limits.youtube_title_chars:
                problem = f"title longer than {limits.youtube_title_chars} characters"
        elif platform is Platform.SNAPCHAT and len(full) > limits.snapchat_caption_chars:
            problem = f"longer than {limits.snapchat_caption_chars} characters with hashtags"
        if problem:
            raise RuleViolation(f"caption for {platform.value} is {problem}",
                                 field="caption", platform=platform.value)
