"""YouTube: `videos.insert` through the resumable upload protocol (PLATFORMS.md §3).

1. `POST /upload/youtube/v3/videos?uploadType=resumable` starts a session (nothing visible
   exists yet) and answers its URI in `Location`; recorded as "session_created" with the
   URI and the byte total.
2. "uploading" is recorded before the first PUT: any PUT may deliver the last byte, and the
   last byte makes the video (the point of no return). The bytes are streamed from the
   media URL into the PUT, never held whole. The 201 carries the video: "uploaded".
3. The video is published once its processing ended (`videos.list`, status).

Reconciling: a lease that finds "session_created" or "uploading" asks the session what it
holds (`PUT`, `Content-Range: bytes */TOTAL`): the original 201 (the video exists: take
its id), 308 (send only what is missing) or 404 (the session expired). After a 404,
"session_created" means no byte was ever sent: start afresh. "uploading" means the video
may exist: it is looked for in the channel's uploads playlist, and when it is not there the
outcome is unknown (never uploaded again).

A definite answer that no video exists (the session's final answer is an error, or
processing failed or rejected it) is recorded as "not_posted": the next lease with the
same key starts afresh.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from app.domain.model import ErrorClass, Outcome
from app.domain.rules import rendered_caption

from .direct import DirectAttempt, FlowStopped, Reply
from .gateway import PublishOutcome, failure, in_progress, published, unknown

# Ledger steps (besides "started", which a new entry has).
STARTED = "started"
SESSION_CREATED = "session_created"  # handles: session_uri, total
UPLOADING = "uploading"              # a PUT may have delivered the last byte
UPLOADED = "uploaded"                # handles: video_id
NOT_POSTED = "not_posted"            # a definite answer: no video; the next lease starts afresh

UPLOAD_PATH = "/upload/youtube/v3/videos"
CHANNELS_PATH = "/youtube/v3/channels"
PLAYLIST_ITEMS_PATH = "/youtube/v3/playlistItems"
VIDEOS_PATH = "/youtube/v3/videos"
WATCH_URL = "https://www.youtube.com/watch?v={}"

MAX_TITLE_CHARS = 100
UNTITLED = "Untitled"
#: How far back of the entry's start a video found in the uploads playlist may be dated
#: (our clock and Google's differ).
CLOCK_SKEW = timedelta(minutes=5)
#: Pages of the uploads playlist read (newest first) before giving up on finding the video.
MAX_PLAYLIST_PAGES = 4
PLAYLIST_PAGE_SIZE = 50
#: The slowest upload rate a PUT is given time for; a PUT never gets less than one call's
#: timeout.
MIN_UPLOAD_BYTES_PER_SECOND = 1 << 20
MEDIA_CHUNK_BYTES = 256 * 1024
QUOTA_TIME_ZONE = ZoneInfo("America/Los_Angeles")  # quotas reset at midnight Pacific Time

_RANGE = re.compile(r"^bytes=0-(\d+)$")


# --- error mapping (pure) -----------------------------------------------------------------

#: The class of each error reason of §3(d).
REASON_CLASSES: dict[str, ErrorClass] = {
    **dict.fromkeys(("invalidTitle", "invalidDescription", "invalidTags", "invalidCategoryId",
                     "invalidPublishAt", "invalidVideoMetadata", "mediaBodyRequired",
                     "defaultLanguageNotSet", "forbiddenPrivacySetting",
                     "forbiddenLicenseSetting"), ErrorClass.PERMANENT),
    **dict.fromkeys(("uploadLimitExceeded", "quotaExceeded"), ErrorClass.QUOTA),
    **dict.fromkeys(("rateLimitExceeded", "userRateLimitExceeded", "backendError",
                     "internalError"), ErrorClass.TRANSIENT),
    **dict.fromkeys(("authError", "forbidden", "insufficientPermissions"), ErrorClass.AUTH),
    **dict.fromkeys(("authenticatedUserAccountSuspended", "authenticatedUserAccountClosed"),
                    ErrorClass.POLICY),
}
#: How a video's processing can fail after the upload (`status.failureReason` /
#: `status.rejectionReason`): the media itself, or YouTube refusing the content.
PROCESSING_ENDS = {"failed": ("failureReason", ErrorClass.MEDIA),
                   "rejected": ("rejectionReason", ErrorClass.POLICY)}


def error_reason(body: Any) -> tuple[str | None, str | None]:
    """(reason, message) of Google's error shape {error:{message, errors:[{reason}]}}."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    errors = error.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and \
        isinstance(errors[0], dict) else {}
    return first.get("reason"), error.get("message") or first.get("message")


def class_of_status(status: int) -> ErrorClass:
    """The class of an error whose reason the table does not name."""
    if status == 401:
        return ErrorClass.AUTH
    if status in (408, 429) or status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def seconds_until_quota_reset(now: datetime) -> float:
    """Seconds from `now` (aware) to the next midnight in Pacific Time."""
    tomorrow = now.astimezone(QUOTA_TIME_ZONE).date() + timedelta(days=1)
    midnight = datetime.combine(tomorrow, time(0), tzinfo=QUOTA_TIME_ZONE)
    return (midnight.astimezone(timezone.utc) - now).total_seconds()


def classify_error(status: int, body: Any, retry_after: float | None,
                   now: datetime) -> PublishOutcome:
    """The failure an error answer means; its reason code is YouTube's `reason`."""
    reason, message = error_reason(body)
    error_class = REASON_CLASSES.get(reason or "") or class_of_status(status)
    wait = None
    if error_class is ErrorClass.QUOTA:
        wait = seconds_until_quota_reset(now)
    elif error_class is ErrorClass.TRANSIENT:
        wait = retry_after
    code = reason or f"http_{status}"
    return failure(error_class, code, f"HTTP {status} {code}: {message or 'no message'}",
                   retry_after=wait)


def processing_outcome(video: dict[str, Any], poll_seconds: float) -> PublishOutcome:
    """What a video's `status` says: processed (published), still processing, failed or
    rejected (nothing public), deleted."""
    status = video.get("status") or {}
    upload_status = status.get("uploadStatus")
    video_id = str(video["id"])
    if upload_status == "processed":
        return published(video_id, WATCH_URL.format(video_id))
    if upload_status == "uploaded":
        return in_progress("processing", f"video {video_id} is being processed", poll_seconds)
    if upload_status in PROCESSING_ENDS:
        field, error_class = PROCESSING_ENDS[upload_status]
        reason = status.get(field) or upload_status
        return failure(error_class, reason, f"video {video_id} {upload_status}: {reason}")
    return unknown(f"video_{upload_status or 'status_unknown'}",
                   f"video {video_id} has upload status {upload_status!r}")


# --- what is posted (pure) ----------------------------------------------------------------

def video_title(caption: dict[str, Any]) -> str:
    """The caption's title, else its text; at most 100 characters, no < or >, never empty."""
    title = caption.get("title") or caption.get("text") or ""
    title = title.replace("<", "").replace(">", "").strip()[:MAX_TITLE_CHARS].strip()
    return title or UNTITLED


def video_description(caption: dict[str, Any]) -> str:
    return rendered_caption(caption.get("text") or "", tuple(caption.get("hashtags") or ()))


def video_metadata(caption: dict[str, Any]) -> dict[str, Any]:
    return {"snippet": {"title": video_title(caption),
                        "description": video_description(caption)},
            "status": {"privacyStatus": "public"}}


def upload_content_type(content_type: str | None) -> str:
    return content_type if content_type and content_type.startswith("video/") \
        else "application/octet-stream"


def resume_offset(reply: Reply) -> int:
    """The first byte the session is missing, from a 308's `Range: bytes=0-N`."""
    match = _RANGE.match(reply.headers.get("Range", "").strip())
    return int(match[1]) + 1 if match else 0


# --- the flow -----------------------------------------------------------------------------

async def publish(attempt: DirectAttempt) -> PublishOutcome:
    """Reconcile from the ledger, then upload, then wait for processing."""
    entry = attempt.entry
    if entry.step == UPLOADED:
        video_id = entry.handles["video_id"]
    elif entry.step in (SESSION_CREATED, UPLOADING):
        video_id = await _resume(attempt)
    else:  # started, or not_posted: nothing of this attempt exists
        video_id = await _upload_afresh(attempt)
    return await _check_processing(attempt, video_id)


async def _upload_afresh(attempt: DirectAttempt) -> str:
    total = attempt.media.size_bytes
    if total is None:
        total = await _media_size(attempt)
    if total == 0:
        raise FlowStopped(failure(ErrorClass.MEDIA, "emptyFile", "the clip's media is empty"))
    reply = await _call(attempt, "POST", UPLOAD_PATH,
                        params={"uploadType": "resumable", "part": "snippet,status"},
                        headers={"X-Upload-Content-Length": str(total),
                                 "X-Upload-Content-Type": _content_type(attempt)},
                        json=video_metadata(attempt.request.caption))
    if reply.status != 200:
        raise FlowStopped(_error(attempt, reply))
    session_uri = reply.headers.get("Location")
    if not session_uri:
        raise FlowStopped(failure(ErrorClass.TRANSIENT, "no_session_uri",
                                  "the session start answered no Location"))
    await attempt.ledger.record(SESSION_CREATED, session_uri=session_uri, total=total)
    return await _upload_from(attempt, 0)


async def _resume(attempt: DirectAttempt) -> str:
    """Ask the session what it holds, and finish from there."""
    total = attempt.entry.handles["total"]
    reply = await _call(attempt, "PUT", attempt.entry.handles["session_uri"],
                        headers={"Content-Length": "0", "Content-Range": f"bytes */{total}"})
    if reply.status == 308:
        if reply.retry_after:
            raise FlowStopped(failure(ErrorClass.TRANSIENT, "resume_later",
                                      "the session asked to wait before resuming",
                                      retry_after=reply.retry_after))
        return await _upload_from(attempt, resume_offset(reply))
    return await _upload_result(attempt, reply)


async def _upload_from(attempt: DirectAttempt, offset: int) -> str:
    """PUT the bytes offset..total-1 to the session, streamed from the media URL."""
    total = attempt.entry.handles["total"]
    async with _media_stream(attempt, offset) as media:
        if attempt.entry.step != UPLOADING:
            await attempt.ledger.record(UPLOADING)
        reply = await _call(
            attempt, "PUT", attempt.entry.handles["session_uri"],
            timeout_seconds=max(attempt.api.timeout_seconds,
                                (total - offset) / MIN_UPLOAD_BYTES_PER_SECOND),
            headers={"Content-Length": str(total - offset),
                     "Content-Type": _content_type(attempt),
                     "Content-Range": f"bytes {offset}-{total - 1}/{total}"},
            data=_chunks(media))
    return await _upload_result(attempt, reply)


async def _upload_result(attempt: DirectAttempt, reply: Reply) -> str:
    """The video id of a session's final answer; otherwise stop the flow with what the
    answer means for the next lease."""
    body = reply.body
    if reply.status in (200, 201) and isinstance(body, dict) and body.get("id"):
        video_id = str(body["id"])
        await attempt.ledger.record(UPLOADED, video_id=video_id)
        return video_id
    if reply.status == 308:  # bytes are missing: the next lease resumes
        raise FlowStopped(failure(ErrorClass.TRANSIENT, "upload_incomplete",
                                  f"the session holds {resume_offset(reply)} bytes",
                                  retry_after=reply.retry_after))
    if reply.status == 404:
        return await _after_session_expired(attempt)
    outcome = _error(attempt, reply)
    if outcome.error_class not in (ErrorClass.TRANSIENT, ErrorClass.AUTH):
        # The session's final answer is an error: the upload made no video.
        await attempt.ledger.record(NOT_POSTED)
    raise FlowStopped(outcome)


async def _after_session_expired(attempt: DirectAttempt) -> str:
    """A 404 from the session URI: it expired, holding whatever it held."""
    if attempt.entry.step == SESSION_CREATED:
        # The ledger is written before the first PUT: no byte was sent, no video exists.
        await attempt.ledger.record(NOT_POSTED)
        return await _upload_afresh(attempt)
    video_id = await _find_in_uploads(attempt)
    if video_id is None:
        raise FlowStopped(unknown("session_expired_outcome_unknown",
                                  "the upload session expired after bytes were sent, and "
                                  "the video is not in the uploads playlist"))
    await attempt.ledger.record(UPLOADED, video_id=video_id)
    return video_id


async def _find_in_uploads(attempt: DirectAttempt) -> str | None:
    """Our video in the channel's uploads playlist (newest first): same title and
    description, dated no earlier than this attempt's start."""
    reply = await _call(attempt, "GET", CHANNELS_PATH,
                        params={"part": "contentDetails", "mine": "true"})
    if reply.status != 200:
        raise FlowStopped(_read_error(attempt, reply))
    playlist_id = _uploads_playlist(reply.body)
    if playlist_id is None:
        raise FlowStopped(unknown("no_uploads_playlist",
                                  "the token's channel names no uploads playlist to look in"))
    title = video_title(attempt.request.caption)
    description = video_description(attempt.request.caption)
    since = attempt.entry.started_at - CLOCK_SKEW
    params = {"part": "snippet,status", "playlistId": playlist_id,
              "maxResults": str(PLAYLIST_PAGE_SIZE)}
    for _ in range(MAX_PLAYLIST_PAGES):
        reply = await _call(attempt, "GET", PLAYLIST_ITEMS_PATH, params=params)
        if reply.status != 200:
            raise FlowStopped(_read_error(attempt, reply))
        page = reply.body or {}
        for item in page.get("items") or []:
            snippet = item.get("snippet") or {}
            if _parse_time(snippet.get("publishedAt")) < since:
                return None  # newest first: the rest is older still
            video_id = (snippet.get("resourceId") or {}).get("videoId")
            if video_id and snippet.get("title") == title \
                    and snippet.get("description") == description:
                return str(video_id)
        if not page.get("nextPageToken"):
            return None
        params["pageToken"] = page["nextPageToken"]
    raise FlowStopped(unknown("uploads_not_searched_through",
                              f"no match in the newest {MAX_PLAYLIST_PAGES} pages of uploads"))


async def _check_processing(attempt: DirectAttempt, video_id: str) -> PublishOutcome:
    reply = await _call(attempt, "GET", VIDEOS_PATH,
                        params={"id": video_id, "part": "status,processingDetails"})
    if reply.status != 200:
        return _read_error(attempt, reply)
    videos = (reply.body or {}).get("items") or []
    if not videos:
        return unknown("video_not_found", f"video {video_id} was uploaded but is not listed")
    outcome = processing_outcome(videos[0], attempt.poll_seconds)
    if outcome.outcome is Outcome.REJECTED:  # failed or rejected: no public video
        await attempt.ledger.record(NOT_POSTED)
    return outcome


# --- calls --------------------------------------------------------------------------------

async def _call(attempt: DirectAttempt, method: str, path: str, *,
                headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
    auth = {"Authorization": f"Bearer {attempt.credentials.access_token}"}
    return await attempt.api.call(method, path, headers={**auth, **(headers or {})}, **kwargs)


def _error(attempt: DirectAttempt, reply: Reply) -> PublishOutcome:
    return classify_error(reply.status, reply.body, reply.retry_after, attempt.now())


def _read_error(attempt: DirectAttempt, reply: Reply) -> PublishOutcome:
    """An error to a read about a video that may exist: waiting (transient, quota) or a new
    token (auth) may help; any other refusal must not fail an item that may be posted."""
    outcome = _error(attempt, reply)
    if outcome.error_class in (ErrorClass.TRANSIENT, ErrorClass.QUOTA, ErrorClass.AUTH):
        return outcome
    return unknown(outcome.reason_code or f"http_{reply.status}", outcome.error or "")


def _uploads_playlist(body: Any) -> str | None:
    """`items[0].contentDetails.relatedPlaylists.uploads` of a channels.list answer."""
    items = body.get("items") if isinstance(body, dict) else None
    channel = items[0] if isinstance(items, list) and items else {}
    playlists = (channel.get("contentDetails") or {}).get("relatedPlaylists") or {}
    return playlists.get("uploads")


def _content_type(attempt: DirectAttempt) -> str:
    return upload_content_type(attempt.media.content_type)


async def _media_size(attempt: DirectAttempt) -> int:
    """The clip's size from a HEAD of its URL, when M06 did not say it."""
    reply = await attempt.api.call("HEAD", attempt.media.url)
    length = reply.headers.get("Content-Length")
    if reply.status != 200 or not (length or "").isdigit():
        raise FlowStopped(_media_failure(reply.status, "HEAD gave no size"))
    return int(length)


def _media_failure(status: int, what: str) -> PublishOutcome:
    error_class = ErrorClass.TRANSIENT if status in (408, 429) or status >= 500 \
        else ErrorClass.MEDIA
    return failure(error_class, "media_unavailable",
                   f"the clip's media URL: HTTP {status}, {what}")


@asynccontextmanager
async def _media_stream(attempt: DirectAttempt,
                        offset: int) -> AsyncIterator[aiohttp.ClientResponse]:
    """The media URL's bytes from `offset` on (a Range GET), open for a PUT to stream."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    expected = 206 if offset else 200
    seconds = attempt.api.timeout_seconds
    try:
        response = await attempt.api.session.get(
            attempt.media.url, headers=headers,
            timeout=aiohttp.ClientTimeout(sock_connect=seconds, sock_read=seconds))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise FlowStopped(failure(ErrorClass.TRANSIENT, "media_unavailable",
                                  f"the clip's media URL: {type(exc).__name__}: {exc}"))
    try:
        if response.status != expected:
            raise FlowStopped(_media_failure(response.status,
                                             f"expected {expected} from byte {offset}"))
        yield response
    finally:
        response.release()


async def _chunks(media: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The media body piece by piece: the whole file is never in memory."""
    async for chunk in media.content.iter_chunked(MEDIA_CHUNK_BYTES):
        yield chunk


def _parse_time(value: Any) -> datetime:
    """An RFC 3339 time of the Data API; unreadable ones sort as the oldest."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
