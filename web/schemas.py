"""Request bodies and answers of the HTTP API: the OpenAPI document is generated from these.

Request bodies are strict and bounded: an unknown field, a value of the wrong JSON type, a
value outside its enum, range, pattern or size is a 400 that names the field. The rule
the document and these models keep together: a body the document calls valid is never a
400; a body it calls invalid always is. What only the domain can judge (the schedule
window, a DST gap or fold, each platform's caption limits, a local time without a zone)
is answered later, 422 `rule_violation`.

The answer models mirror what `app/db/read_model.py`, `tables/publish_stats.py` and
`web/health.py` and `web/stats.py` return; they are not applied at run time, they describe.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, FiniteFloat,
                      ValidationError)
from pydantic.json_schema import SkipJsonSchema

from app.domain.errors import InvalidRequest, UnsupportedPlatform
from app.domain.model import (ITEM_ID_PATTERN, ErrorClass, OverlayType, Platform,
                              PlatformState, Publication, Status)
from app.domain.rules import MAX_OVERLAY_SECONDS
from app.topics import CLAIMED_DLQ, COMMANDS_DLQ

from .errors import STATUS_BY_CODE

# ---------------------------------------------------------------------------------------------
# Patterns and caps. Patterns are anchored and use only what ECMA-262, Python `re` and the
# Rust `regex` crate (pydantic's engine) read alike: no `\d` (Unicode digits in Rust).

#: Item ids (M09's claim ids) travel in URL paths and Kafka keys.
ITEM_ID_MAX_LENGTH = 200
#: An influencer id in a path (the token subject that owns items).
INFLUENCER_ID_MAX_LENGTH = 200
#: The query of a signed download link (a malformed one is answered 403, like a forged one).
EXPIRES_PATTERN = r"^[0-9]{1,12}$"
SIGNATURE_PATTERN = r"^[0-9a-f]{64}$"
#: The Idempotency-Key header: 1 to 255 printable ASCII characters.
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7E]{1,255}$"
#: Free text: anything but NUL, which PostgreSQL cannot store as text.
NO_NUL_PATTERN = r"^[^\x00]*$"

# A calendar date of 2000-2099, day of month checked (29 February only in leap years: in
# this range, every year divisible by 4), so that a value the pattern admits always parses.
_DATE = ("20[0-9]{2}-(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
         "|20[0-9]{2}-(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
         "|20[0-9]{2}-02-(?:0[1-9]|1[0-9]|2[0-8])"
         "|20(?:[02468][048]|[13579][26])-02-29")
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
_OFFSET = "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#: RFC 3339 with an offset, or a local date-time without one (then read in `timezone`).
SCHEDULED_AT_PATTERN = f"^(?:{_DATE})T{_TIME}{_OFFSET}?$"
SCHEDULED_AT_MAX_LENGTH = len("2026-03-01T18:30:00.123456+01:00")

MAX_CAPTION_TEXT_CHARS = 10_000
MAX_HASHTAGS = 100
MAX_HASHTAG_CHARS = 100
MAX_TITLE_CHARS = 1_000
MAX_PLATFORMS = len(Platform)


def _fullmatch(pattern: str) -> re.Pattern[str]:
    """The anchored pattern as Python reads `^…$` in JSON Schema: the whole string, with no
    final newline let through (`$` alone would)."""
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


def matches(pattern: str, value: str) -> bool:
    """Whether the whole value matches one of the anchored patterns above."""
    return _fullmatch(pattern).fullmatch(value) is not None


def check_item_id(value: str) -> str:
    """The item id of a path, or a 400 naming `id`."""
    if not matches(ITEM_ID_PATTERN, value):
        raise InvalidRequest("the item id must be 1 to 200 letters, digits or . _ : - "
                             "(starting with a letter or digit)", field="id")
    return value


def _iana_zone_names() -> list[str]:
    """IANA zone names, from the tzdata package (a dependency), so that the document is the
    same on every machine: `available_timezones()` also lists files of the host's zoneinfo
    directory (such as `localtime`)."""
    try:
        names = set(resources.files("tzdata").joinpath("zones").read_text().split())
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - tzdata is required
        names = set()
    return sorted(names or available_timezones())


#: An IANA time zone name (an enum in the document; one outside it is a 400).
TimeZone = StrEnum("TimeZone", {name: name for name in _iana_zone_names()})
TimeZone.__doc__ = ("An IANA time zone name (e.g. `Europe/Paris`); required when "
                    "`scheduled_at` carries no offset.")
TimeZone.__module__ = __name__


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("each platform may be named once")
    return values


# Enums come from JSON as strings: strict mode would want enum members.
PlatformIn = Annotated[Platform, Field(strict=False)]
OverlayTypeIn = Annotated[OverlayType, Field(strict=False)]
TimeZoneIn = Annotated[TimeZone, Field(strict=False)]
PlatformList = Annotated[
    list[PlatformIn],
    Field(min_length=1, max_length=MAX_PLATFORMS, json_schema_extra={"uniqueItems": True},
          description="Target platforms, each at most once."),
    AfterValidator(_unique)]
Text = Annotated[str, Field(max_length=MAX_CAPTION_TEXT_CHARS, pattern=NO_NUL_PATTERN)]
Hashtag = Annotated[str, Field(max_length=MAX_HASHTAG_CHARS, pattern=NO_NUL_PATTERN)]
Title = Annotated[str, Field(max_length=MAX_TITLE_CHARS, pattern=NO_NUL_PATTERN)]
ScheduledAt = Annotated[str, Field(
    pattern=SCHEDULED_AT_PATTERN, max_length=SCHEDULED_AT_MAX_LENGTH,
    description="When to publish: an RFC 3339 date-time with an offset (`2026-03-01T17:30:00Z`), "
                "or a local date-time without one (`2026-03-01T18:30:00`), read in `timezone`; "
                "years 2000 to 2099. It must fall between now + 5 min and now + 30 days (the "
                "service's settings), and a local time must exist exactly once in its zone (not "
                "in a DST gap or fold): otherwise 422 `rule_violation`.",
    examples=["2026-03-01T17:30:00Z", "2026-03-01T18:30:00"])]

# ---------------------------------------------------------------------------------------------
# Request bodies.


class Body(BaseModel):
    """A request body: strict JSON types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def payload(self) -> dict[str, Any]:
        """The command payload (what the kind's payload model in `app/wire.py` reads)."""
        return self.model_dump(mode="json", exclude_none=True)


class CaptionTextBody(Body):
    """A caption's text, hashtags and title. The platforms' own limits (characters, hashtag
    count, title length) are settings of the service, checked when the item is scheduled or
    published: 422 `rule_violation`."""

    text: Text = Field("", description="The caption text.")
    hashtags: list[Hashtag] = Field(default_factory=list, max_length=MAX_HASHTAGS,
                                    description="Hashtags, with or without the leading `#`.")
    title: Title | None = Field(None, description="Video title, where the platform has one "
                                                  "(YouTube).")


class CaptionBody(CaptionTextBody):
    """Caption metadata. A variant, when given for a platform, replaces the default text,
    hashtags and title for that platform."""

    variants: dict[PlatformIn, CaptionTextBody] = Field(
        default_factory=dict, description="Per-platform overrides, keyed by platform.")


class OverlayBody(Body):
    """An intro or an outro; a second overlay of the same type replaces the first. Only
    before publishing starts (item claimed or scheduled)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"type": "intro", "duration_seconds": 2.5}, {"type": "outro", "duration_seconds": 3}]})

    type: OverlayTypeIn
    duration_seconds: FiniteFloat = Field(gt=0, le=MAX_OVERLAY_SECONDS,
                                          description="Seconds, in (0, 3].")


class ScheduleBody(Body):
    """Schedule publishing to the platforms at a time."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"platforms": ["tiktok", "instagram"], "scheduled_at": "2026-03-01T18:30:00",
         "timezone": "Europe/Paris",
         "caption": {"text": "Spring drop is here", "hashtags": ["#spring", "#ad"],
                     "variants": {"instagram": {"text": "Spring drop, link in bio",
                                                "hashtags": ["#spring", "#ad", "#style"]}}}},
        {"platforms": ["youtube"], "scheduled_at": "2026-03-01T17:30:00Z",
         "caption": {"text": "Spring drop is here", "hashtags": ["#spring"],
                     "title": "Spring drop"}}]})

    platforms: PlatformList
    scheduled_at: ScheduledAt
    timezone: TimeZoneIn | None = Field(
        None, description="The IANA zone a local `scheduled_at` is read in (422 without it); "
                          "with an offset, the zone the schedule is shown in.")
    caption: CaptionBody | None = None


class RescheduleBody(Body):
    """Move the scheduled time; without `timezone`, a local time is read in the item's zone."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"scheduled_at": "2026-03-02T08:00:00", "timezone": "Europe/Paris"},
        {"scheduled_at": "2026-03-02T07:00:00Z"}]})

    scheduled_at: ScheduledAt
    timezone: TimeZoneIn | None = None


class PublishBody(Body):
    """Publish now to one platform."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"platform": "tiktok"},
        {"platform": "youtube", "caption": {"text": "Spring drop is here",
                                            "hashtags": ["#spring"], "title": "Spring drop"}}]})

    platform: PlatformIn
    caption: CaptionBody | None = None

    def payload(self) -> dict[str, Any]:
        data = super().payload()
        data["platforms"] = [data.pop("platform")]
        return data


class PublishMultiBody(Body):
    """Publish now to several platforms."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"platforms": ["tiktok", "youtube"]},
        {"platforms": ["instagram", "snapchat"],
         "caption": {"text": "Spring drop is here", "hashtags": ["#spring"]}}]})

    platforms: PlatformList
    caption: CaptionBody | None = None


class ResolveBody(Body):
    """What an operator found on the platform for a platform whose outcome is unknown."""

    model_config = ConfigDict(json_schema_extra={
        "examples": [
            {"outcome": "published", "post_id": "7301234567890123456",
             "post_url": "https://www.tiktok.com/@creator/video/7301234567890123456"},
            {"outcome": "not_published"}],
        # published needs the post's id (the service answers 400 without it)
        "if": {"properties": {"outcome": {"const": "published"}}, "required": ["outcome"]},
        "then": {"required": ["post_id"], "properties": {"post_id": {"type": "string"}}}})

    outcome: Literal["published", "not_published"] = Field(
        description="`published`: the post exists (give its id); `not_published`: it does "
                    "not, and the platform fails (a retry posts it again).")
    post_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    post_url: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class EmptyBody(Body):
    """An empty object (an empty body is read as one)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})


def parse(raw: bytes, schema: type[Body]) -> Body:
    """The body as the schema, or a 400 naming the first bad field (`details.field`) and
    listing each problem (`details.errors`)."""
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except RecursionError:
            raise InvalidRequest("the body is nested too deeply", field="body") from None
        except ValueError:  # not JSON, not UTF-8, or a number too long to convert
            raise InvalidRequest("the body is not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    try:
        body = schema.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc) from None
    return body  # NUL, which PostgreSQL cannot store as text, is refused by the patterns


def _refusal(exc: ValidationError) -> InvalidRequest | UnsupportedPlatform:
    errors = []
    for e in exc.errors(include_url=False):
        loc = [str(p) for p in e["loc"] if p != "[key]"]
        field = ".".join(loc) or "body"
        message = e["msg"]
        if e["type"] == "enum" and loc and loc[-1] == "timezone":
            message = f"unknown time zone {e['input']!r}"  # not the 600 names
        errors.append({"field": field, "message": message})
    first, raw = errors[0], exc.errors(include_url=False)[0]
    if raw["type"] == "enum" and isinstance(raw["input"], str) and _names_a_platform(raw["loc"]):
        return UnsupportedPlatform(f"platform {raw['input']!r} is not supported",
                                   field=first["field"], errors=errors,
                                   supported=[p.value for p in Platform])
    return InvalidRequest(f"{first['field']}: {first['message']}", field=first["field"],
                          errors=errors)


def _names_a_platform(loc: tuple) -> bool:
    return (loc[0] in ("platform", "platforms")
            or (len(loc) >= 3 and loc[0] == "caption" and loc[1] == "variants"
                and loc[-1] == "[key]"))


# ---------------------------------------------------------------------------------------------
# Answers. Every key is always present (nullable ones are null); date-times are RFC 3339.


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OverlayOut(Out):
    type: OverlayType
    duration_seconds: float = Field(gt=0, le=MAX_OVERLAY_SECONDS)


class CaptionTextOut(Out):
    text: str
    hashtags: list[str]
    title: str | None


class CaptionOut(CaptionTextOut):
    """The caption as given; a variant replaces the default for its platform."""

    variants: dict[Platform, CaptionTextOut]


class PlatformStatusOut(Out):
    """Where publishing to one platform stands."""

    platform: Platform
    status: PlatformState
    attempts: int = Field(ge=0)
    error: str | None = Field(description="The last error the platform (or the service) "
                                          "reported.")
    error_class: ErrorClass | None = Field(
        description="What the last failure means: `transient` (tried again after a "
                    "backoff), `quota` (tried again once the posting window resets, without "
                    "spending an attempt), `permanent`, `auth`, `media` or `policy` (failed at "
                    "once).")
    reason_code: str | None = Field(
        description="The platform's own code for the last failure (such as "
                    "`spam_risk_too_many_posts` or `quotaExceeded`), or ours (`http_503`, "
                    "`media_not_found`).")
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due (pending), or when an attempt in flight "
                    "gives up its lease (publishing).")
    post_id: str | None = Field(description="The platform's post id; a platform counts as "
                                            "published only with it.")
    post_url: str | None
    published_at: datetime | None


ITEM_EXAMPLE: dict[str, Any] = {
    "id": "clm_01HZX3J8Q9W6N4T2", "status": "scheduled", "publication": None,
    "influencer_id": "inf_42",
    "clip_id": "clip_7", "campaign_id": "cmp_3", "claimed_at": "2026-03-01T09:00:00Z",
    "claim_expires_at": "2026-03-02T09:00:00Z", "scheduled_at": "2026-03-01T17:30:00Z",
    "scheduled_at_local": "2026-03-01T18:30:00+01:00", "timezone": "Europe/Paris",
    "platforms": ["tiktok", "instagram"],
    "overlays": [{"type": "intro", "duration_seconds": 2.5}],
    "caption": {"text": "Spring drop is here", "hashtags": ["#spring", "#ad"], "title": None,
                "variants": {}},
    "platform_status": [
        {"platform": p, "status": "pending", "attempts": 0, "error": None, "error_class": None,
         "reason_code": None, "next_attempt_at": None, "post_id": None, "post_url": None,
         "published_at": None}
        for p in ("tiktok", "instagram")],
    "retry_count": 0, "failure_reason": None, "version": 3,
    "created_at": "2026-03-01T09:00:01Z", "updated_at": "2026-03-01T09:05:12Z",
}


class ItemOut(Out):
    """A distribution item."""

    model_config = ConfigDict(json_schema_extra={"examples": [ITEM_EXAMPLE]})

    id: str = Field(description="The item id, equal to M09's claim_id.")
    status: Status
    publication: Publication | None = Field(
        description="Once publishing has ended (`published` or `failed`): `published` on "
                    "every platform, `partially_published` (some platforms published, the "
                    "others failed) or `failed` on every platform; until then null.")
    influencer_id: str
    clip_id: str
    campaign_id: str
    claimed_at: datetime
    claim_expires_at: datetime = Field(description="End of the 24 h claim window.")
    scheduled_at: datetime | None = Field(description="The scheduled instant, in UTC.")
    scheduled_at_local: datetime | None = Field(
        description="The same instant in the item's zone, with that zone's offset.")
    timezone: str | None = Field(description="The IANA zone of the schedule.")
    platforms: list[Platform]
    overlays: list[OverlayOut] = Field(description="In play order: intro, then outro.")
    caption: CaptionOut | None
    platform_status: list[PlatformStatusOut]
    retry_count: int = Field(ge=0)
    failure_reason: str | None
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime


class ClipOut(Out):
    clip_id: str
    media_url: str = Field(description="Media location from M06.")
    duration_seconds: float = Field(ge=0)


class PlatformCaptionOut(Out):
    """The caption one platform gets (its variant, or the default)."""

    platform: Platform
    text: str
    hashtags: list[str]
    title: str | None
    rendered: str = Field(description="The caption as it will be posted.")


class ScheduleOut(Out):
    scheduled_at: datetime = Field(description="The UTC instant.")
    local_time: datetime | None = Field(description="The instant in the item's zone.")
    timezone: str | None


class PreviewOut(Out):
    """What will be posted: clip, overlays in play order, total duration, the caption per
    platform, the schedule in the item's zone, and each platform's status."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "item_id": ITEM_EXAMPLE["id"], "status": "scheduled",
        "clip": {"clip_id": "clip_7", "media_url": "https://media.example.com/clips/clip_7.mp4",
                 "duration_seconds": 14.2},
        "overlays": ITEM_EXAMPLE["overlays"], "total_duration_seconds": 16.7,
        "captions": [{"platform": p, "text": "Spring drop is here",
                      "hashtags": ["#spring", "#ad"], "title": None,
                      "rendered": "Spring drop is here #spring #ad"}
                     for p in ("tiktok", "instagram")],
        "schedule": {"scheduled_at": "2026-03-01T17:30:00Z",
                     "local_time": "2026-03-01T18:30:00+01:00", "timezone": "Europe/Paris"},
        "platform_status": ITEM_EXAMPLE["platform_status"]}]})

    item_id: str
    status: Status
    clip: ClipOut
    overlays: list[OverlayOut] = Field(description="In play order: intro, then outro.")
    total_duration_seconds: float = Field(ge=0, description="Clip plus overlays.")
    captions: list[PlatformCaptionOut] = Field(description="One per target platform.")
    schedule: ScheduleOut | None
    platform_status: list[PlatformStatusOut]


class DownloadLinkOut(Out):
    """A signed link to the rendered clip; following it needs no token."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "url": "https://distribution.example.com/api/v1/distribution/downloads/"
               "clm_01HZX3J8Q9W6N4T2?expires=1772385300&signature=" + "3f" * 32,
        "expires_at": "2026-03-01T17:15:00Z"}]})

    url: str = Field(json_schema_extra={"format": "uri"},
                     description="GET /api/v1/distribution/downloads/{id}?expires=&signature=")
    expires_at: datetime


class OutcomeCountsOut(Out):
    published: int = Field(ge=0)
    failed: int = Field(ge=0)


class PlatformCountsOut(Out):
    tiktok: OutcomeCountsOut
    instagram: OutcomeCountsOut
    youtube: OutcomeCountsOut
    snapchat: OutcomeCountsOut


class StatsOut(Out):
    """Published and failed outcomes per platform over the last window, counted from the
    outcome topics."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "window_seconds": 3600, "platforms": {
            "tiktok": {"published": 12, "failed": 1}, "instagram": {"published": 9, "failed": 0},
            "youtube": {"published": 4, "failed": 0}, "snapchat": {"published": 0, "failed": 2}}}]})

    window_seconds: int = Field(ge=0)
    platforms: PlatformCountsOut


#: The error codes, each answered with one HTTP status (web/errors.py).
ErrorCode = StrEnum("ErrorCode", {code: code for code in STATUS_BY_CODE})
ErrorCode.__doc__ = "; ".join(f"`{c}` {s}" for c, s in STATUS_BY_CODE.items()) + "."
ErrorCode.__module__ = __name__


class FieldErrorOut(Out):
    field: str = Field(description="Dotted path of the field, e.g. `caption.hashtags.3`.")
    message: str


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent, rather than null


class ErrorDetailsOut(BaseModel):
    """Context of the error, empty when there is none. A 400 names the (first) bad field in
    `field` and lists each problem in `errors`; other keys appear by code (for example
    `status` and `allowed_from` on `invalid_state_transition`, `retry_after_seconds` on
    `rate_limited`)."""

    model_config = ConfigDict(extra="allow")

    field: str | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)
    errors: list[FieldErrorOut] | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)


class ErrorBodyOut(Out):
    code: ErrorCode
    message: str = Field(description="For people; may change.")
    details: ErrorDetailsOut


_TOO_LONG = "Input should be less than or equal to 3"


class ErrorOut(Out):
    """The one error body of every answer of 400 or above (except the 503 of /healthz and /readyz)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": {
        "code": "invalid_request", "message": f"duration_seconds: {_TOO_LONG}",
        "details": {"field": "duration_seconds",
                    "errors": [{"field": "duration_seconds", "message": _TOO_LONG}]}}}]})

    error: ErrorBodyOut


class AccountReconnectedOut(Out):
    """What a reconnect notice changed."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"influencer_id": "inf_42", "platform": "tiktok", "released": True}]})

    influencer_id: str
    platform: Platform
    released: bool = Field(description="Whether the account was on hold: its held posts on "
                                       "the platform are due again at once.")


class HealthOut(Out):
    """Whether the process is alive: each of its loops running, its event loop not blocked."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "problems": []}]})

    status: Literal["ok", "unhealthy"]
    problems: list[str] = Field(description="What is wrong, one line each: a loop that "
                                "ended or stalled, an event loop blocked.")


class ChecksOut(Out):
    database: str = Field(description="`ok`, or `error: <type>` of the failed check.")
    broker: str = Field(description="`ok`, or `error: <type>` of the failed check.")
    commands: str = Field(description="A round trip through the command agent: `ok`, or "
                                      "`error: <type>`.")
    claims: str = Field(description="The claims consumer has joined its group (its "
                                    "partitions, perhaps none, assigned): `ok`, or "
                                    "`error: not joined yet`.")


class ReadinessOut(Out):
    """Whether the database, the broker and the command agent answer, and the claims
    consumer reads its partitions."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready", "checks": {"database": "ok", "broker": "ok", "commands": "ok",
                                       "claims": "ok"}}]})

    status: Literal["ready", "unavailable"]
    checks: ChecksOut


# ---------------------------------------------------------------------------------------------
# The operators' routes: query parameters, answers.

CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,400}={0,2}$"
#: An instant in a query: RFC 3339 with its offset (a bare number is not a time here).
INSTANT_PATTERN = f"^(?:{_DATE})T{_TIME}{_OFFSET}$"
Instant = Annotated[str, Field(pattern=INSTANT_PATTERN, max_length=SCHEDULED_AT_MAX_LENGTH,
                               examples=["2026-03-01T17:30:00Z"])]
MAX_PAGE = 200
DlqTopic = Literal[CLAIMED_DLQ, COMMANDS_DLQ]  # type: ignore[valid-type]
Id = Annotated[str, Field(min_length=1, max_length=INFLUENCER_ID_MAX_LENGTH,
                          pattern=NO_NUL_PATTERN)]


class Query(BaseModel):
    """Query parameters: each at most once, no unknown ones; numbers and enums from text."""

    model_config = ConfigDict(extra="forbid")


class ItemSearchQuery(Query):
    status: Status | None = Field(None, description="The item's status.")
    platform: Platform | None = Field(None, description="Items publishing to this platform "
                                      "(with `platform_status`: in that state there).")
    platform_status: PlatformState | None = Field(
        None, description="Items with a platform in this state (`unknown`: to settle).")
    influencer_id: Id | None = None
    campaign_id: Id | None = None
    due_from: Instant | None = Field(None, description="Scheduled at or after (RFC 3339).")
    due_before: Instant | None = Field(None, description="Scheduled before (RFC 3339).")
    limit: int = Field(50, ge=1, le=MAX_PAGE, description="Items per page.")
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN,
                               description="`next_cursor` of the previous page (one the "
                               "service did not give: 422).")


class DeadLettersQuery(Query):
    topic: DlqTopic | None = Field(None, description="One dead-letter topic (both when "
                                   "absent).")
    limit: int = Field(50, ge=1, le=MAX_PAGE, description="The latest records, per topic.")


def parse_query(query: Any, schema: type[Query]) -> Query:
    """The query string as the schema, or a 400 as for a body."""
    data: dict[str, str] = {}
    for name, value in query.items():
        if name in data:
            raise InvalidRequest(f"{name} may be given once", field=name)
        data[name] = value
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc) from None


class ItemPageOut(Out):
    """A page of the search, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [ITEM_EXAMPLE], "next_cursor": "WyIyMDI2LTAzLTAxVDE3OjMwOjAwKzAwOjAwIiwgIngiXQ=="}]})

    items: list[ItemOut]
    next_cursor: str | None = Field(description="The next page's cursor; null on the last.")


class TimelineEntryOut(Out):
    at: datetime
    entry: Literal["command", "attempt", "event"] = Field(
        description="A command applied to the item, a platform's answer, or an event sent.")
    what: str | None = Field(description="The command's kind, the answer's outcome "
                             "(published, failed, retry, unknown), or the event's type.")
    platform: Platform | None
    attempt: int | None
    error: str | None = Field(description="A refused command's error code; an answer's error.")
    error_class: str | None
    reason_code: str | None
    post_id: str | None
    topic: str | None = Field(description="The event's topic.")
    status: str | None = Field(description="The event's state in the outbox: `pending` "
                               "until the broker has it, then `published`.")


class TimelineOut(Out):
    """What happened to an item, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"item": ITEM_EXAMPLE, "entries": [
        {"at": "2026-03-01T17:30:00.120Z", "entry": "command", "what": "publish-multi",
         "platform": None, "attempt": None, "error": None, "error_class": None,
         "reason_code": None, "post_id": None, "topic": None, "status": None},
        {"at": "2026-03-01T17:30:01.400Z", "entry": "attempt", "what": "published",
         "platform": "tiktok", "attempt": 1, "error": None, "error_class": None,
         "reason_code": None, "post_id": "tt_7321", "topic": None, "status": None},
        {"at": "2026-03-01T17:30:01.450Z", "entry": "event", "what": "distribution.published",
         "platform": None, "attempt": None, "error": None, "error_class": None,
         "reason_code": None, "post_id": None, "topic": "distribution.published",
         "status": "published"}]}]})

    item: ItemOut
    entries: list[TimelineEntryOut]


DEAD_LETTER_EXAMPLE = {
    "dlq_topic": "distribution.claimed.dlq", "partition": 3, "offset": 17,
    "reason": "unknown_clip", "error": "clip clip_9 is not known and the claim has no "
    "campaign_id", "topic": "distribution.claimed", "key": "clm_01HZX3J8Q9W6N4T2",
    "value": '{"event_type": "distribution.claimed", "data": {"claim_id": "clm_01HZX3J8Q9W6N4T2"}}',
    "value_bytes": 84, "received_at": "2026-03-01T17:30:00Z",
    "redriven_at": None, "redriven_by": None}


class DeadLetterOut(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [DEAD_LETTER_EXAMPLE]})

    dlq_topic: str
    partition: int
    offset: int
    reason: str | None = Field(description="Why it was dead-lettered (`invalid_event`, "
                               "`unknown_clip`, `invalid_command`, `command_failed`, ...).")
    error: str | None
    topic: str | None = Field(description="The topic it came from.")
    key: str | None
    value: str | None = Field(description="The record as it was consumed (its first "
                              "2,000 characters).")
    value_bytes: int | None
    received_at: datetime | None = Field(description="When it was dead-lettered.")
    redriven_at: datetime | None = Field(description="When it was sent back; null if never.")
    redriven_by: str | None


class DeadLettersOut(Out):
    """The latest dead-lettered records, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"records": [DEAD_LETTER_EXAMPLE]}]})

    records: list[DeadLetterOut]


class LatenessOut(Out):
    count: int = Field(ge=0, description="Scheduled posts published in the last hour.")
    p50_seconds: float | None
    p99_seconds: float | None


class OverviewOut(Out):
    """The whole cluster at a glance, read from the database (the same on every worker)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items_by_status": {"claimed": 120, "scheduled": 40, "published": 900, "failed": 3},
        "platform_rows": {"tiktok": {"published": 500, "failed": 2, "unknown": 1}},
        "outcomes_last_hour": {"tiktok": {"published": 80, "failed": 1}},
        "lateness_last_hour": {"count": 80, "p50_seconds": 0.8, "p99_seconds": 2.4},
        "outbox_pending": 0, "outbox_oldest_pending_seconds": None,
        "oldest_overdue_item": None, "oldest_overdue_seconds": None}]})

    items_by_status: dict[str, int]
    platform_rows: dict[str, dict[str, int]] = Field(
        description="Item platforms by platform, then state.")
    outcomes_last_hour: dict[str, dict[str, int]] = Field(
        description="Published and failed outcomes of the last hour, by platform.")
    lateness_last_hour: LatenessOut
    outbox_pending: int = Field(ge=0, description="Outcome events not yet on their topic.")
    outbox_oldest_pending_seconds: float | None
    oldest_overdue_item: str | None = Field(
        description="The scheduled item most overdue without its publishing started.")
    oldest_overdue_seconds: float | None
