"""YouTube Data API v3 as a real HTTP server on loopback: `videos.insert` through the
resumable upload protocol, and the reads a publisher reconciles with (PLATFORMS.md §3).

    async with FakeYouTube(processing_seconds=0.1) as youtube:   # base URL: youtube.url
        youtube.faults.script("insert", "quotaExceeded")       # the next session start: 403
        youtube.faults.script("upload", DropAfter(100_000))    # the next PUT: cut after 100 KB
        youtube.faults.script("upload", HANG_AFTER)            # the video is made, no answer
        youtube.faults.script("processing", "duplicate")       # the next video is rejected
        youtube.expire_sessions()                              # every session URI: 404
        [video] = youtube.posts                                # text = the title as posted
        video.extra["sha256"]                                  # of the bytes received

Like YouTube it knows no idempotency key: every session whose last byte arrives is a new
video. Starting a session creates nothing visible; the session URI (`Location`) takes PUTs
with `Content-Range`, keeps each contiguous byte received (a block that does not start
where the received bytes end stores nothing), answers the resume probe (`Content-Range:
bytes */TOTAL`) with 308 and `Range: bytes=0-N` (no `Range` before any byte) or with the
original final answer, and 404 once expired (`session_ttl_seconds`, or `expire_sessions`).
The fake never holds the bytes: it hashes them as they arrive.

Steps for `faults.script`: "insert", "probe", "upload", "channels", "playlist_items",
"videos" take an error reason of `ERRORS` (answered in Google's error shape), HANG or, for
"upload", HANG_AFTER (the last byte makes the video, the answer never comes), DropAfter(n)
(the connection is cut once n more bytes arrived) or ErrorAfter(n, reason) (n bytes kept,
the rest read and dropped, then the error). "processing" takes a `failureReason` or a
`rejectionReason`: how the next video's processing ends instead of `processed`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from .platform_kit import HANG, HANG_AFTER, FakePlatform, Post

UPLOAD_ROUTE = "/upload/youtube/v3/videos"
CHANNELS_ROUTE = "/youtube/v3/channels"
PLAYLIST_ITEMS_ROUTE = "/youtube/v3/playlistItems"
VIDEOS_ROUTE = "/youtube/v3/videos"

#: reason -> (HTTP status, domain, message), as the Data API answers them (§3(d)).
ERRORS: dict[str, tuple[int, str, str]] = {
    "invalidTitle": (400, "youtube.video",
                     "The request metadata specifies an invalid video title."),
    "invalidDescription": (400, "youtube.video",
                           "The request metadata specifies an invalid video description."),
    "invalidVideoMetadata": (400, "youtube.video", "The request metadata is invalid."),
    "mediaBodyRequired": (400, "youtube.video", "The request does not include the video content."),
    "badRequest": (400, "global", "Bad Request"),
    "uploadLimitExceeded": (400, "youtube.video",
                            "The user has exceeded the number of videos they may upload."),
    "authError": (401, "global", "Invalid Credentials"),
    "quotaExceeded": (403, "youtube.quota", "The request cannot be completed because you have "
                      "exceeded your quota."),
    "userRateLimitExceeded": (403, "usageLimits", "User Rate Limit Exceeded"),
    "rateLimitExceeded": (429, "usageLimits", "Rate Limit Exceeded"),
    "forbidden": (403, "global", "Forbidden"),
    "insufficientPermissions": (403, "global", "Insufficient Permission"),
    "authenticatedUserAccountSuspended": (403, "youtube.common",
                                          "The authenticated user's account is suspended."),
    "forbiddenPrivacySetting": (403, "youtube.video", "The privacy setting is not allowed."),
    "notFound": (404, "global", "Not Found"),
    "playlistNotFound": (404, "youtube.playlistItem", "The playlist cannot be found."),
    "backendError": (503, "global", "Backend Error"),
}
#: Reasons answered with a Retry-After header.
RETRY_LATER = {"rateLimitExceeded", "userRateLimitExceeded", "backendError"}
RETRY_AFTER_SECONDS = "1"

FAILURE_REASONS = {"codec", "conversion", "emptyFile", "invalidFile", "tooSmall", "uploadAborted"}
REJECTION_REASONS = {"claim", "copyright", "duplicate", "inappropriate", "legal", "length",
                     "termsOfUse", "trademark", "uploaderAccountClosed",
                     "uploaderAccountSuspended"}

PRIVACY_STATUSES = {"public", "private", "unlisted"}
MAX_TITLE_CHARS, MAX_DESCRIPTION_BYTES = 100, 5000
_BYTE_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_PROBE_RANGE = re.compile(r"^bytes \*/(\d+)$")


@dataclass(frozen=True)
class DropAfter:
    """Cut the connection once `bytes` more bytes of this PUT arrived (they are kept)."""

    bytes: int


@dataclass(frozen=True)
class ErrorAfter:
    """Keep `bytes` bytes of this PUT, read and drop the rest, then answer `reason`."""

    bytes: int
    reason: str = "backendError"


@dataclass
class UploadSession:
    upload_id: str
    channel_id: str
    total: int
    content_type: str
    snippet: dict[str, Any]
    status: dict[str, Any]
    created_at: float
    received: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    expired: bool = False
    video: dict[str, Any] | None = None  # the original final answer, once the last byte came


@dataclass(frozen=True)
class UploadPut:
    """One PUT with bytes: where it started and how many of its bytes the session kept."""

    upload_id: str
    start: int
    kept: int


@dataclass
class Video:
    post: Post
    privacy_status: str
    processing_end: str | None  # a failureReason or rejectionReason; None: processed


class FakeYouTube(FakePlatform):
    id_prefix = "yt"

    def __init__(self, host: str = "127.0.0.1", processing_seconds: float = 0.2,
                 session_ttl_seconds: float = 86_400.0) -> None:
        super().__init__(host, processing_seconds)
        self.session_ttl_seconds = session_ttl_seconds
        self._sessions: dict[str, UploadSession] = {}
        self._videos: dict[str, Video] = {}
        self._puts: list[UploadPut] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(UPLOAD_ROUTE, self._start_session)
        app.router.add_put(UPLOAD_ROUTE, self._put)
        app.router.add_get(CHANNELS_ROUTE, self._channels)
        app.router.add_get(PLAYLIST_ITEMS_ROUTE, self._playlist_items)
        app.router.add_get(VIDEOS_ROUTE, self._videos_list)

    # --- for tests ---------------------------------------------------------------------

    @staticmethod
    def channel_for(token: str) -> str:
        """The channel a token belongs to (one channel per token)."""
        return "UC" + hashlib.sha256(token.encode()).hexdigest()[:22]

    @staticmethod
    def uploads_playlist(channel_id: str) -> str:
        return "UU" + channel_id[2:]

    def expire_sessions(self) -> None:
        """Every session URI given so far answers 404 from now on."""
        with self._lock:
            for session in self._sessions.values():
                session.expired = True

    @property
    def puts(self) -> list[UploadPut]:
        """Every PUT with bytes that continued its session, in order."""
        with self._lock:
            return list(self._puts)

    # --- videos.insert: session start ---------------------------------------------------

    async def _start_session(self, request: web.Request) -> web.StreamResponse:
        self.note_call(request, "insert")
        channel_id = self._channel(request)
        if channel_id is None:
            return error_response("authError")
        if (faulted := await self._fault("insert")) is not None:
            return faulted
        if request.query.get("uploadType") != "resumable":
            return error_response("badRequest", "uploadType must be resumable here")
        try:
            total = int(request.headers["X-Upload-Content-Length"])
            body = await request.json()
        except (KeyError, ValueError):
            return error_response("badRequest", "X-Upload-Content-Length and a JSON body needed")
        content_type = request.headers.get("X-Upload-Content-Type", "")
        if total < 0 or not isinstance(body, dict) or not (content_type.startswith("video/")
                             or content_type == "application/octet-stream"):
            return error_response("badRequest", "invalid upload length, body or content type")
        snippet, status = body.get("snippet") or {}, body.get("status") or {}
        if (problem := metadata_problem(snippet, status)) is not None:
            return error_response(problem)
        session = UploadSession(secrets.token_urlsafe(12), channel_id, total, content_type,
                                snippet, status, time.time())
        with self._lock:
            self._sessions[session.upload_id] = session
        location = (f"{self.url}{UPLOAD_ROUTE}?uploadType=resumable&part=snippet,status"
                    f"&upload_id={session.upload_id}")
        return web.Response(status=200, headers={"Location": location})

    # --- the session URI: upload and resume probe ---------------------------------------

    async def _put(self, request: web.Request) -> web.StreamResponse:
        content_range = request.headers.get("Content-Range", "").strip()
        probe = _PROBE_RANGE.match(content_range)
        step = "probe" if probe else "upload"
        self.note_call(request, step)
        if self._channel(request) is None:
            await discard(request)
            return error_response("authError")
        with self._lock:
            session = self._sessions.get(request.query.get("upload_id", ""))
        if session is None or session.expired or \
                time.time() - session.created_at > self.session_ttl_seconds:
            await discard(request)
            return error_response("notFound", "The upload session does not exist or expired.")
        if session.video is not None:  # finished: the original final answer, again
            await discard(request)
            return web.json_response(session.video, status=201)
        fault = self.faults.take(step)
        if fault == HANG:
            return await self.hang_now()
        if fault in ERRORS:
            await discard(request)
            return error_response(fault)
        if probe:
            return incomplete(session)
        return await self._receive(request, session, content_range, fault)

    async def _receive(self, request: web.Request, session: UploadSession,
                       content_range: str, fault: Any) -> web.StreamResponse:
        """Keeps the PUT's bytes when they continue the session's, up to a scripted cut."""
        if content_range:
            match = _BYTE_RANGE.match(content_range)
            if not match or int(match[3]) != session.total:
                await discard(request)
                return error_response("badRequest", f"bad Content-Range {content_range!r}")
            start = int(match[1])
        else:
            start = 0
        if start != session.received:  # not contiguous: nothing is stored
            await discard(request)
            return incomplete(session)
        keep = session.total - session.received
        if isinstance(fault, (DropAfter, ErrorAfter)):
            keep = min(keep, fault.bytes)
        try:
            async for chunk in request.content.iter_any():
                kept = chunk[:keep]
                if kept:
                    session.digest.update(kept)
                    session.received += len(kept)
                    keep -= len(kept)
                if keep == 0 and isinstance(fault, DropAfter):
                    return await self._drop(request)
        finally:
            with self._lock:
                self._puts.append(UploadPut(session.upload_id, start,
                                            session.received - start))
        if isinstance(fault, ErrorAfter):
            return error_response(fault.reason)
        if session.received < session.total:
            return incomplete(session)
        session.video = self._make_video(session)
        if fault == HANG_AFTER:
            return await self.hang_now()
        return web.json_response(session.video, status=201)

    def _make_video(self, session: UploadSession) -> dict[str, Any]:
        """The last byte arrived: the video exists (a new one, whatever came before)."""
        post = self.add_post(session.channel_id, session.snippet.get("title", ""), None,
                             description=session.snippet.get("description", ""),
                             sha256=session.digest.hexdigest(), size=session.received,
                             upload_id=session.upload_id)
        end = self.faults.take("processing")
        video = Video(post, session.status.get("privacyStatus", "public"),
                      end if end in FAILURE_REASONS | REJECTION_REASONS else None)
        with self._lock:
            self._videos[post.post_id] = video
        return {"kind": "youtube#video", "id": post.post_id,
                "snippet": {**session.snippet, "channelId": session.channel_id,
                            "publishedAt": rfc3339(post.created_at)},
                "status": {"uploadStatus": "uploaded",
                           "privacyStatus": video.privacy_status}}

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        """Cut the connection mid-body: the client sees it reset, with no answer."""
        if request.transport is not None:
            request.transport.abort()
        return await self.hang_now()

    # --- reads ---------------------------------------------------------------------------

    async def _channels(self, request: web.Request) -> web.StreamResponse:
        self.note_call(request, "channels")
        channel_id = self._channel(request)
        if channel_id is None:
            return error_response("authError")
        if (faulted := await self._fault("channels")) is not None:
            return faulted
        if request.query.get("mine") != "true":
            return error_response("badRequest", "only mine=true is served here")
        return web.json_response({
            "kind": "youtube#channelListResponse",
            "items": [{"kind": "youtube#channel", "id": channel_id,
                       "contentDetails": {"relatedPlaylists": {
                           "likes": "LL", "uploads": self.uploads_playlist(channel_id)}}}]})

    async def _playlist_items(self, request: web.Request) -> web.StreamResponse:
        """The uploads playlist of the caller's channel, newest first, paged."""
        self.note_call(request, "playlist_items")
        channel_id = self._channel(request)
        if channel_id is None:
            return error_response("authError")
        if (faulted := await self._fault("playlist_items")) is not None:
            return faulted
        playlist_id = request.query.get("playlistId", "")
        if playlist_id != self.uploads_playlist(channel_id):
            return error_response("playlistNotFound")
        try:
            size = min(50, max(0, int(request.query.get("maxResults", "5"))))
            offset = int(request.query.get("pageToken") or 0)
        except ValueError:
            return error_response("badRequest", "bad maxResults or pageToken")
        uploads = sorted((p for p in self.posts if p.account_id == channel_id),
                         key=lambda p: p.created_at, reverse=True)
        page = uploads[offset:offset + size]
        body: dict[str, Any] = {
            "kind": "youtube#playlistItemListResponse",
            "pageInfo": {"totalResults": len(uploads), "resultsPerPage": size},
            "items": [{"kind": "youtube#playlistItem", "id": f"pi-{post.post_id}",
                       "snippet": {"publishedAt": rfc3339(post.created_at),
                                   "channelId": channel_id, "title": post.text,
                                   "description": post.extra.get("description", ""),
                                   "playlistId": playlist_id, "position": offset + i,
                                   "resourceId": {"kind": "youtube#video",
                                                  "videoId": post.post_id}},
                       "status": {"privacyStatus": self._videos[post.post_id].privacy_status}}
                      for i, post in enumerate(page)]}
        if offset + size < len(uploads):
            body["nextPageToken"] = str(offset + size)
        return web.json_response(body)

    async def _videos_list(self, request: web.Request) -> web.StreamResponse:
        """Each video's upload and processing status (`processing_seconds` after upload)."""
        self.note_call(request, "videos")
        if self._channel(request) is None:
            return error_response("authError")
        if (faulted := await self._fault("videos")) is not None:
            return faulted
        ids = [i for i in request.query.get("id", "").split(",") if i]
        with self._lock:
            videos = [self._videos[i] for i in ids if i in self._videos]
        return web.json_response({"kind": "youtube#videoListResponse",
                                  "items": [self._video_status(v) for v in videos]})

    def _video_status(self, video: Video) -> dict[str, Any]:
        status: dict[str, Any] = {"privacyStatus": video.privacy_status}
        if time.time() - video.post.created_at < self.processing_seconds:
            status["uploadStatus"], processing = "uploaded", "processing"
        elif video.processing_end in FAILURE_REASONS:
            status.update(uploadStatus="failed", failureReason=video.processing_end)
            processing = "failed"
        elif video.processing_end in REJECTION_REASONS:
            status.update(uploadStatus="rejected", rejectionReason=video.processing_end)
            processing = "succeeded"
        else:
            status["uploadStatus"], processing = "processed", "succeeded"
        return {"kind": "youtube#video", "id": video.post.post_id, "status": status,
                "processingDetails": {"processingStatus": processing}}

    # --- shared --------------------------------------------------------------------------

    @staticmethod
    def _channel(request: web.Request) -> str | None:
        """The caller's channel, from its bearer token; None without one."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return FakeYouTube.channel_for(token.strip()) if scheme == "Bearer" and \
            token.strip() else None

    async def _fault(self, step: str) -> web.StreamResponse | None:
        """The scripted answer of a read or of the session start, if any."""
        fault = self.faults.take(step)
        if fault == HANG:
            return await self.hang_now()
        return error_response(fault) if fault in ERRORS else None


def metadata_problem(snippet: dict[str, Any], status: dict[str, Any]) -> str | None:
    """The reason YouTube refuses the video's metadata with, if it does."""
    title = snippet.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_CHARS \
            or "<" in title or ">" in title:
        return "invalidTitle"
    description = snippet.get("description", "")
    if not isinstance(description, str) or len(description.encode()) > MAX_DESCRIPTION_BYTES \
            or "<" in description or ">" in description:
        return "invalidDescription"
    if status.get("privacyStatus", "public") not in PRIVACY_STATUSES:
        return "invalidVideoMetadata"
    return None


def error_response(reason: str, message: str | None = None) -> web.Response:
    """Google's error shape: {error: {code, message, errors: [{message, domain, reason}]}}."""
    status, domain, default = ERRORS[reason]
    message = message or default
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if reason in RETRY_LATER else None
    return web.json_response({"error": {"code": status, "message": message, "errors": [
        {"message": message, "domain": domain, "reason": reason}]}},
        status=status, headers=headers)


def incomplete(session: UploadSession) -> web.Response:
    """308 Resume Incomplete: `Range` says what was kept (none before the first byte)."""
    headers = {"Range": f"bytes=0-{session.received - 1}"} if session.received else {}
    return web.Response(status=308, headers=headers)


async def discard(request: web.Request) -> None:
    """Read a body that is not kept, so the answer is not mistaken for a cut connection."""
    async for _ in request.content.iter_any():
        pass


def rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
