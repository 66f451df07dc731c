"""Instagram Reels through the Graph API's content publishing (PLATFORMS.md §2).

A post takes two calls: `POST /{ig-user-id}/media` makes a container (Meta pulls the video
from our URL and processes it; nothing is visible), then `POST /{ig-user-id}/media_publish`
turns a FINISHED container into a post. Only the second can post, and Meta has no
idempotency key, so the ledger holds the container id before it and `publish_sent_at` just
before sending it. The container's `status_code` is the recovery check: PUBLISHED means the
post is out (do not publish again: Meta may well post a second time), FINISHED means it is
not (publishing is safe: Meta publishes synchronously), ERROR or EXPIRED means a new
container. The container does not name its media id, so after a lost publish answer the
media is found by listing the account's media and matching caption and time.

Ledger steps (handles):
    started            nothing yet (or only the quota check); start afresh
    container_created  ig_user_id, container_id, container_created_at, quota_total
    publish_sending    publish_sent_at: media_publish may have reached Meta
    publish_refused    publish_error: Meta answered media_publish with an error
    published          media_id, post_url
    not_posted         why (quota_full, container_error, container_expired): start afresh
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.model import ErrorClass
from app.domain.rules import rendered_caption

from .direct import DirectAttempt, FlowStopped, Reply
from .gateway import PublishOutcome, failure, in_progress, published, unknown

PLATFORM = "instagram"
#: The base URL setting's default (Facebook Login host); paths are `/{ig-user-id}/...`.
DEFAULT_BASE_URL = "https://graph.facebook.com/v21.0"

# --- ledger steps ------------------------------------------------------------------------
STARTED = "started"  # the ledger's own name for a new entry
CONTAINER_CREATED = "container_created"
PUBLISH_SENDING = "publish_sending"  # the point of no return is the call after this record
PUBLISH_REFUSED = "publish_refused"
PUBLISHED = "published"
NOT_POSTED = "not_posted"

#: Steps that hold a container whose status decides what comes next.
_CONTAINER_STEPS = (CONTAINER_CREATED, PUBLISH_SENDING, PUBLISH_REFUSED)

# --- timing ------------------------------------------------------------------------------
#: The publishing limit is a rolling 24 h window: a slot frees when the oldest post in it
#: turns 24 h old, which the limit endpoint does not say. Looking again after an hour is
#: at most an hour late.
QUOTA_WINDOW_RETRY_SECONDS = 3600.0
#: Call throttling (codes 4, 17, 32, 613, BUC) without a usage header to say how long.
THROTTLE_RETRY_SECONDS = 300.0
#: Our clock against Meta's when matching a listed media's timestamp to publish_sent_at.
CLOCK_SKEW_SECONDS = 300.0
#: How long a PUBLISHED container's media may stay missing from the media list (listing
#: lag) before the outcome is declared unknown.
LISTING_GRACE_SECONDS = 600.0
#: Pages of `/media` read when looking for the media (25 per page, newest first, since
#: publish_sent_at: ours is on the first page unless the account posts a lot meanwhile).
MAX_LIST_PAGES = 10

_LIST_FIELDS = "id,caption,media_product_type,timestamp,permalink"

# --- error mapping (PLATFORMS.md §2(d)) --------------------------------------------------
#: The subcode decides when there is one: the same code (24, -2, 4) means different things.
SUBCODE_CLASSES: Mapping[int, ErrorClass] = {
    2207042: ErrorClass.QUOTA,  # daily publishing limit reached
    2207027: ErrorClass.TRANSIENT,  # media not ready
    2207008: ErrorClass.TRANSIENT,  # container not found or expired (yet): retry
    2207006: ErrorClass.AUTH,  # media not found: permission or expired token
    2207001: ErrorClass.TRANSIENT,  # server error (recreate the container)
    2207032: ErrorClass.TRANSIENT,  # create failed
    2207053: ErrorClass.TRANSIENT,  # unknown upload error
    2207003: ErrorClass.TRANSIENT,  # download timeout
    2207020: ErrorClass.PERMANENT,  # container expired (a new one is needed)
    2207051: ErrorClass.POLICY,  # suspected spam
    2207050: ErrorClass.POLICY,  # account restricted or checkpointed
    2207026: ErrorClass.MEDIA,  # unsupported video format
    2207052: ErrorClass.MEDIA,  # cannot fetch the video URL
    2207004: ErrorClass.MEDIA,  # image size
    2207005: ErrorClass.MEDIA,  # image format
    2207009: ErrorClass.MEDIA,  # aspect ratio
    2207057: ErrorClass.PERMANENT,  # thumb_offset out of range
    2207023: ErrorClass.PERMANENT,  # invalid parameters ...
    2207028: ErrorClass.PERMANENT,
    2207035: ErrorClass.PERMANENT,
    2207036: ErrorClass.PERMANENT,
    2207037: ErrorClass.PERMANENT,
    2207040: ErrorClass.PERMANENT,  # more than 20 @ tags
    2207010: ErrorClass.PERMANENT,  # caption too long
    **{subcode: ErrorClass.AUTH for subcode in (458, 459, 460, 463, 464, 467)},  # token
}
CODE_CLASSES: Mapping[int, ErrorClass] = {
    1: ErrorClass.TRANSIENT, 2: ErrorClass.TRANSIENT,  # unknown / service error
    -1: ErrorClass.TRANSIENT, -2: ErrorClass.TRANSIENT,  # server error / download timeout
    9007: ErrorClass.TRANSIENT,  # media not ready
    24: ErrorClass.TRANSIENT,  # container not found (yet)
    4: ErrorClass.QUOTA, 17: ErrorClass.QUOTA, 32: ErrorClass.QUOTA, 613: ErrorClass.QUOTA,
    **{code: ErrorClass.QUOTA for code in range(80000, 80015)},  # Business Use Case limits
    9: ErrorClass.QUOTA,  # publishing limit
    190: ErrorClass.AUTH,  # token invalid or expired
    10: ErrorClass.AUTH, **{code: ErrorClass.AUTH for code in range(200, 300)},  # permission
    25: ErrorClass.POLICY, 368: ErrorClass.POLICY,  # restricted / temporarily blocked
    352: ErrorClass.MEDIA, 9004: ErrorClass.MEDIA,  # video format / cannot fetch URL
    36000: ErrorClass.MEDIA, 36001: ErrorClass.MEDIA, 36003: ErrorClass.MEDIA,
    100: ErrorClass.PERMANENT, 36004: ErrorClass.PERMANENT,  # invalid parameter / caption
}
#: media_publish's "not ready yet": the container is still processing.
NOT_READY = {(9007, 2207027), (None, 2207027), (9007, None)}
_THROTTLE_CODES = {4, 17, 32, 613, *range(80000, 80015)}
_PUBLISHING_LIMIT_SUBCODE = 2207042


def error_class(code: int | None, subcode: int | None, http_status: int = 400,
                is_transient: bool = False) -> ErrorClass:
    """The class of a Graph error: by subcode, else by code, else Meta's `is_transient`
    flag and the HTTP status (5xx is transient, anything else unknown is permanent)."""
    if subcode in SUBCODE_CLASSES:
        return SUBCODE_CLASSES[subcode]
    if code in CODE_CLASSES:
        return CODE_CLASSES[code]
    if is_transient or http_status >= 500 or http_status == 429:
        return ErrorClass.TRANSIENT
    return ErrorClass.AUTH if http_status in (401, 403) else ErrorClass.PERMANENT


def throttle_seconds(headers: Mapping[str, str]) -> float | None:
    """The longest `estimated_time_to_regain_access` (minutes) in Meta's usage headers."""
    minutes = []
    for name in ("X-Business-Use-Case-Usage", "X-App-Usage", "X-Ad-Account-Usage"):
        try:
            usage = json.loads(headers.get(name) or "null")
        except ValueError:
            continue
        for entries in (usage.values() if isinstance(usage, dict) else ()):
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict):
                    minutes.append(entry.get("estimated_time_to_regain_access") or 0)
    longest = max((m for m in minutes if isinstance(m, (int, float))), default=0)
    return longest * 60.0 if longest > 0 else None


@dataclass(frozen=True)
class GraphError:
    """One Graph API error answer, `{error:{message, type, code, error_subcode, ...}}`."""

    http_status: int
    code: int | None
    subcode: int | None
    message: str
    is_transient: bool = False
    retry_after: float | None = None  # what the answer's headers say

    @property
    def reason_code(self) -> str:
        """The subcode when there is one, else the code; ours (`http_502`) for neither."""
        if self.subcode is not None:
            return str(self.subcode)
        return str(self.code) if self.code is not None else f"http_{self.http_status}"

    @property
    def error_class(self) -> ErrorClass:
        return error_class(self.code, self.subcode, self.http_status, self.is_transient)

    @property
    def not_ready(self) -> bool:
        return (self.code, self.subcode) in NOT_READY

    def outcome(self) -> PublishOutcome:
        cls = self.error_class
        retry_after = None
        if cls is ErrorClass.TRANSIENT:
            retry_after = self.retry_after
        elif cls is ErrorClass.QUOTA:
            retry_after = (QUOTA_WINDOW_RETRY_SECONDS
                           if self.subcode == _PUBLISHING_LIMIT_SUBCODE or self.code == 9
                           else self.retry_after or THROTTLE_RETRY_SECONDS)
        return failure(cls, self.reason_code, f"instagram: {self.message}", retry_after)


def graph_error(reply: Reply) -> GraphError | None:
    """The error a reply carries (None for a success): Graph's error shape, or any non-2xx."""
    body = reply.body
    error = body.get("error") if isinstance(body, dict) else None
    if 200 <= reply.status < 300 and error is None and isinstance(body, dict):
        return None
    retry_after = throttle_seconds(reply.headers) or reply.retry_after
    if not isinstance(error, dict):
        text = reply.raw[:200].decode("utf-8", "replace")
        return GraphError(reply.status, None, None, f"HTTP {reply.status}: {text}",
                          retry_after=retry_after)
    return GraphError(reply.status, _int(error.get("code")), _int(error.get("error_subcode")),
                      str(error.get("error_user_msg") or error.get("message") or "error"),
                      bool(error.get("is_transient")), retry_after)


_SUBCODE_IN_STATUS = re.compile(r"\b(\d{4,})\b")


def container_error(status: str | None) -> PublishOutcome:
    """An ERROR container's outcome: its `status` text carries the subcode ("... error code
    2207026"); without one the container failed for a reason of Meta's own, so a new
    container is worth trying (transient)."""
    found = _SUBCODE_IN_STATUS.findall(status or "")
    if not found:
        return failure(ErrorClass.TRANSIENT, "container_error",
                       f"instagram: container error: {status}")
    return GraphError(200, None, int(found[-1]), f"container error: {status}").outcome()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- the flow ----------------------------------------------------------------------------

async def publish(attempt: DirectAttempt) -> PublishOutcome:
    """Reconcile from what earlier leases recorded, then advance as far as possible."""
    entry = attempt.entry
    if entry.step == PUBLISHED:
        return await _published(attempt, entry.handles["media_id"],
                                entry.handles.get("post_url"))
    if entry.step in _CONTAINER_STEPS:
        return await _advance(attempt, entry.handles["container_id"])
    return await _start(attempt)  # STARTED or NOT_POSTED: nothing of ours is out


async def _start(attempt: DirectAttempt) -> PublishOutcome:
    """A new container, after checking the publishing limit has room."""
    ig_user_id = attempt.credentials.platform_account_id
    quota_total = await _check_publishing_limit(attempt)
    body = await _graph(attempt, "POST", f"/{ig_user_id}/media", data={
        "media_type": "REELS", "video_url": attempt.media.url,
        "caption": _caption(attempt), "share_to_feed": "true"}, refused_step=NOT_POSTED)
    if not body.get("id"):
        raise FlowStopped(failure(ErrorClass.TRANSIENT, "no_container_id",
                                  "instagram: the container was made without an id"))
    container_id = str(body["id"])
    # publish_sent_at and listing_missed_since belonged to an earlier container, if any.
    await attempt.ledger.record(CONTAINER_CREATED, ig_user_id=ig_user_id,
                                container_id=container_id, container_created_at=attempt.now(),
                                quota_total=quota_total, publish_sent_at=None,
                                listing_missed_since=None)
    return await _advance(attempt, container_id)


async def _check_publishing_limit(attempt: DirectAttempt) -> int | None:
    """`config.quota_total` (50 or 100: read at run time); stops the flow when the rolling
    24 h window is full."""
    ig_user_id = attempt.credentials.platform_account_id
    body = await _graph(attempt, "GET", f"/{ig_user_id}/content_publishing_limit",
                        params={"fields": "quota_usage,config"})
    limit = (body.get("data") or [{}])[0]
    usage, total = limit.get("quota_usage"), (limit.get("config") or {}).get("quota_total")
    if isinstance(usage, int) and isinstance(total, int) and usage >= total:
        await attempt.ledger.record(NOT_POSTED, why="quota_full", quota_total=total)
        raise FlowStopped(failure(
            ErrorClass.QUOTA, str(_PUBLISHING_LIMIT_SUBCODE),
            f"instagram: {usage} of {total} posts published in the last 24 h",
            QUOTA_WINDOW_RETRY_SECONDS))
    return total


async def _advance(attempt: DirectAttempt, container_id: str) -> PublishOutcome:
    """What the container's status says to do next (the recovery check)."""
    body = await _graph(attempt, "GET", f"/{container_id}",
                        params={"fields": "status_code,status"}, reading_container=True)
    status_code, status = body.get("status_code"), body.get("status")
    if status_code == "IN_PROGRESS":
        return in_progress("IN_PROGRESS", f"instagram: container {container_id}: {status}",
                           attempt.poll_seconds)
    if status_code == "FINISHED":  # not published: a publish that reached Meta says so
        return await _publish(attempt, container_id)
    if status_code == "PUBLISHED":
        return await _find_published_media(attempt)
    if status_code == "ERROR":
        outcome = container_error(status)
        await attempt.ledger.record(NOT_POSTED, why="container_error",
                                    container_error=outcome.reason_code)
        return outcome
    if status_code == "EXPIRED":  # never published within its 24 h
        await attempt.ledger.record(NOT_POSTED, why="container_expired")
        return await _start(attempt)
    return failure(ErrorClass.TRANSIENT, "unexpected_status",
                   f"instagram: container {container_id} status {status_code!r}")


async def _publish(attempt: DirectAttempt, container_id: str) -> PublishOutcome:
    """The point of no return: recorded before it is sent."""
    ig_user_id = attempt.credentials.platform_account_id
    await attempt.ledger.record(PUBLISH_SENDING, publish_sent_at=attempt.now())
    reply = await _call(attempt, "POST", f"/{ig_user_id}/media_publish",
                        params={"creation_id": container_id})
    error = graph_error(reply)
    if error is not None:
        # Whether the container is still publishable, its status says on the next lease
        # (a new container only if it went ERROR or EXPIRED). An answer in Graph's error
        # shape is Meta's own refusal; a bare 5xx from a proxy may hide a publish.
        if error.code is not None or error.subcode is not None:
            await attempt.ledger.record(PUBLISH_REFUSED, publish_error=error.reason_code)
        if error.not_ready:
            return in_progress(error.reason_code, f"instagram: {error.message}",
                               attempt.poll_seconds)
        return error.outcome()
    media_id = reply.body.get("id")
    if not media_id:  # an answer without an id: the container's status will tell
        return failure(ErrorClass.TRANSIENT, "no_media_id",
                       "instagram: media_publish answered without a media id")
    await attempt.ledger.record(PUBLISHED, media_id=str(media_id))
    return await _published(attempt, str(media_id), None)


async def _published(attempt: DirectAttempt, media_id: str,
                     post_url: str | None) -> PublishOutcome:
    """The media is out; its permalink is read once and kept. A permalink that cannot be
    read leaves the URL empty rather than failing a post that exists."""
    if post_url is None:
        try:
            body = await _graph(attempt, "GET", f"/{media_id}", params={"fields": "permalink"})
        except FlowStopped:
            return published(media_id, None)
        post_url = body.get("permalink")
        if post_url:
            await attempt.ledger.record(PUBLISHED, post_url=post_url)
    return published(media_id, post_url)


async def _find_published_media(attempt: DirectAttempt) -> PublishOutcome:
    """A PUBLISHED container whose media id we lack: the account's media since the publish
    was sent, matched on caption. Missing from the list: wait for the listing to catch up,
    then unknown (it exists, but which one is ours cannot be told)."""
    handles = attempt.entry.handles
    sent_at = datetime.fromisoformat(handles.get("publish_sent_at")
                                     or handles["container_created_at"])
    earliest = sent_at - timedelta(seconds=CLOCK_SKEW_SECONDS)
    matches = matching_media(await _media_since(attempt, earliest), _caption(attempt),
                             earliest)
    if len(matches) == 1:
        media = matches[0]
        await attempt.ledger.record(PUBLISHED, media_id=str(media["id"]),
                                    post_url=media.get("permalink"))
        return published(str(media["id"]), media.get("permalink"))
    if len(matches) > 1:
        return unknown("ambiguous_media", f"instagram: {len(matches)} media match the caption "
                       f"since {earliest.isoformat()}: "
                       + ", ".join(str(m.get("id")) for m in matches))
    now = attempt.now()
    missed_since = handles.get("listing_missed_since")
    if missed_since is None:
        await attempt.ledger.record(attempt.entry.step, listing_missed_since=now)
        missed_since = now.isoformat()
    if (now - datetime.fromisoformat(missed_since)).total_seconds() > LISTING_GRACE_SECONDS:
        return unknown("media_not_listed", "instagram: the container is PUBLISHED but no "
                       f"media with its caption is listed since {earliest.isoformat()}")
    return in_progress("media_not_listed", "instagram: published, media not listed yet",
                       attempt.poll_seconds)


async def _media_since(attempt: DirectAttempt, since: datetime) -> list[dict[str, Any]]:
    """The account's media since `since`, newest first, following `paging.next`."""
    ig_user_id = attempt.credentials.platform_account_id
    found: list[dict[str, Any]] = []
    path: str | None = f"/{ig_user_id}/media"
    params: dict[str, Any] | None = {"fields": _LIST_FIELDS, "since": int(since.timestamp())}
    for _ in range(MAX_LIST_PAGES):
        body = await _graph(attempt, "GET", path, params=params)
        found.extend(m for m in body.get("data") or [] if isinstance(m, dict))
        path = (body.get("paging") or {}).get("next")
        if not path:
            break
        params = None  # the next URL carries them (and the token)
    return found


# --- calls -------------------------------------------------------------------------------

async def _call(attempt: DirectAttempt, method: str, path: str, *,
                params: Mapping[str, Any] | None = None,
                data: Mapping[str, Any] | None = None) -> Reply:
    """One Graph call with the token in the `access_token` parameter (a `paging.next` URL
    already carries it)."""
    query = dict(params or {})
    if params is not None or not path.startswith(("http://", "https://")):
        query["access_token"] = attempt.credentials.access_token
    return await attempt.api.call(method, path, params=query or None, data=data)


async def _graph(attempt: DirectAttempt, method: str, path: str, *,
                 params: Mapping[str, Any] | None = None,
                 data: Mapping[str, Any] | None = None, refused_step: str | None = None,
                 reading_container: bool = False) -> dict[str, Any]:
    """The JSON body of a successful call; an error answer stops the flow with its class.
    `refused_step` is recorded first (a definite "nothing was made"). A container that
    cannot be read once media_publish was sent leaves the post unknowable."""
    reply = await _call(attempt, method, path, params=params, data=data)
    error = graph_error(reply)
    if error is None:
        return reply.body
    if refused_step is not None:
        await attempt.ledger.record(refused_step, why=error.reason_code)
    if (reading_container and attempt.entry.step in (PUBLISH_SENDING, PUBLISH_REFUSED)
            and error.error_class in (ErrorClass.PERMANENT, ErrorClass.MEDIA,
                                      ErrorClass.POLICY)):
        raise FlowStopped(unknown(error.reason_code, "instagram: media_publish was sent and "
                                  f"the container cannot be read: {error.message}"))
    raise FlowStopped(error.outcome())


def _caption(attempt: DirectAttempt) -> str:
    caption = attempt.request.caption
    return rendered_caption(caption.get("text") or "", tuple(caption.get("hashtags") or ()))


def matching_media(media: list[dict[str, Any]], caption: str,
                   earliest: datetime) -> list[dict[str, Any]]:
    """The listed media that can be ours: our caption, published at `earliest` or later."""
    def ours(item: Mapping[str, Any]) -> bool:
        published_at = _timestamp(item)
        return (published_at is not None and published_at >= earliest
                and (item.get("caption") or "").strip() == caption.strip())
    return [item for item in media if ours(item)]


def _timestamp(media: Mapping[str, Any]) -> datetime | None:
    """A Graph timestamp, `2026-11-29T10:00:00+0000`."""
    try:
        return datetime.strptime(media.get("timestamp") or "", "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
