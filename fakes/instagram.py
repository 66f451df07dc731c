"""Instagram's Graph API content publishing (PLATFORMS.md §2) as a real HTTP server on
loopback, for the direct flow (app/platforms/instagram.py). Its URL stands for the base URL
`https://graph.facebook.com/v21.0`, so the routes are the documented paths:

    GET  /{ig-user-id}/content_publishing_limit   quota_usage over the rolling 24 h
    POST /{ig-user-id}/media                      a REELS container; the video is pulled
    GET  /{container-id}?fields=status_code,status
    POST /{ig-user-id}/media_publish?creation_id= the post (only from a FINISHED container)
    GET  /{ig-user-id}/media                      the account's media, newest first, paged
    GET  /{media-id}?fields=permalink

    async with FakeInstagram(processing_seconds=0.05, quota_total=50) as instagram:
        base_url = instagram.url                   # the flow's base URL setting
        instagram.faults.script("media_publish", HANG_AFTER)  # posts, then says nothing
        instagram.faults.script("processing", "2207026")      # next container goes ERROR
        instagram.faults.script("create_container", "80002")  # a named error (FAULTS)
        instagram.advance(86_401)                  # a day later: containers EXPIRED

Containers really GET their `video_url` (an unreachable or non-200 URL makes the container
ERROR with subcode 2207052), stay IN_PROGRESS for `processing_seconds` after the download,
then FINISHED; EXPIRED after `container_ttl_seconds` unless published. media_publish on an
already PUBLISHED container publishes AGAIN (`republish_published`): Meta does not say what
it does, and this is the case only our ledger protects against. Every error answers
Graph's shape `{error:{message, type, code, error_subcode, is_transient, fbtrace_id}}`.
Steps for faults: content_publishing_limit, create_container, container_status,
media_publish, media_list, media (a media node read), and processing (a subcode: the next
container ends in ERROR with it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp
from aiohttp import web

from .platform_kit import HANG, HANG_AFTER, FakePlatform

DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class ErrorSpec:
    http_status: int
    code: int
    subcode: int | None
    message: str
    is_transient: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def _buc_usage(minutes: int) -> dict[str, str]:
    """Meta's Business Use Case usage header, saying when calls are allowed again."""
    usage = {"17841400000000000": [{"type": "instagram", "call_count": 100, "total_cputime": 30,
                                    "total_time": 30, "estimated_time_to_regain_access": minutes}]}
    return {"X-Business-Use-Case-Usage": json.dumps(usage)}


#: The errors a test can script, named by the flow's reason code (subcode, else code): one
#: or more per row of PLATFORMS.md §2(d).
FAULTS: dict[str, ErrorSpec] = {str(spec.subcode or spec.code): spec
                                for spec in (
    ErrorSpec(500, 1, None, "An unknown error occurred", True),
    ErrorSpec(503, 2, None, "Service temporarily unavailable", True, {"Retry-After": "7"}),
    ErrorSpec(400, 4, None, "Application request limit reached", True),
    ErrorSpec(400, 17, None, "User request limit reached", True),
    ErrorSpec(400, 32, None, "Page request limit reached", True),
    ErrorSpec(400, 613, None, "Calls to this api have exceeded the rate limit", True),
    ErrorSpec(400, 80002, None, "There have been too many calls to this Instagram account",
              True, _buc_usage(2)),
    ErrorSpec(400, 9, 2207042, "You reached maximum number of posts that is allowed to be "
              "published by Content Publishing API."),
    ErrorSpec(400, 9007, 2207027, "Media ID is not available"),
    ErrorSpec(400, 190, None, "Invalid OAuth access token - Cannot parse access token"),
    ErrorSpec(400, 190, 463, "Error validating access token: Session has expired"),
    ErrorSpec(400, 190, 460, "Error validating access token: the password was changed"),
    ErrorSpec(403, 10, None, "Application does not have permission for this action"),
    ErrorSpec(403, 200, None, "Requires instagram_content_publish permission"),
    ErrorSpec(400, 24, 2207008, "The media container does not exist or has expired", True),
    ErrorSpec(400, 24, 2207006, "The media was not found (permission or expired token)"),
    ErrorSpec(500, -1, 2207001, "Server error: please try again", True),
    ErrorSpec(500, -1, 2207032, "Create media failed, please try again", True),
    ErrorSpec(500, -1, 2207053, "An unknown error occurred during upload", True),
    ErrorSpec(400, -2, 2207003, "Timed out while downloading the media", True),
    ErrorSpec(400, -2, 2207020, "The media container has expired; create a new one"),
    ErrorSpec(400, 4, 2207051, "We restrict certain activity to protect our community"),
    ErrorSpec(400, 25, 2207050, "The Instagram account is restricted"),
    ErrorSpec(400, 368, None, "You are temporarily blocked from performing this action"),
    ErrorSpec(400, 352, 2207026, "The video format is not supported"),
    ErrorSpec(400, 9004, 2207052, "The media could not be fetched from this URI"),
    ErrorSpec(400, 36000, 2207004, "The image is too large"),
    ErrorSpec(400, 36001, 2207005, "The image format is not supported"),
    ErrorSpec(400, 36003, 2207009, "The aspect ratio is not supported"),
    ErrorSpec(400, 1, 2207057, "The thumbnail offset is out of range"),
    ErrorSpec(400, 100, 2207023, "The media type is unknown"),
    ErrorSpec(400, 100, 2207028, "The carousel is invalid"),
    ErrorSpec(400, 100, 2207035, "Product tags are not supported on this media"),
    ErrorSpec(400, 100, 2207040, "Cannot use more than 20 tags per media"),
    ErrorSpec(400, 36004, 2207010, "The caption is too long"),
)}
_NOT_FOUND = ErrorSpec(400, 100, 33, "Unsupported get request. Object with ID '{id}' does not "
                       "exist, cannot be loaded due to missing permissions, or does not "
                       "support this operation")
_NO_TOKEN = ErrorSpec(400, 190, None, "An access token is required to request this resource.")
_CONTAINER_CAP = ErrorSpec(400, 9, None, "Too many media containers created in 24 hours")
_STATUS_TEXT = {"IN_PROGRESS": "In Progress: Media is still being processed.",
                "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
                "PUBLISHED": "Published: Media has been published.",
                "EXPIRED": "Expired: Media was not published within 24 hours."}


#: A step's own work, given the request and its parameters (query and body merged).
Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.Response]]


@dataclass
class Container:
    id: str
    account_id: str
    video_url: str
    caption: str
    created_at: float  # the fake's clock
    ready_at: float | None = None  # download done + processing; None while downloading
    error_subcode: int | None = None
    media_ids: list[str] = field(default_factory=list)  # more than one: a duplicate
    downloaded_bytes: int = 0


class FakeInstagram(FakePlatform):
    id_prefix = "media"

    def __init__(self, host: str = "127.0.0.1", processing_seconds: float = 0.2, *,
                 quota_total: int = 50, container_ttl_seconds: float = DAY_SECONDS,
                 container_limit: int = 400, republish_published: bool = True,
                 listing_delay_seconds: float = 0.0, page_size: int = 25) -> None:
        super().__init__(host, processing_seconds)
        self.quota_total = quota_total
        self.container_ttl_seconds = container_ttl_seconds
        self.container_limit = container_limit
        self.republish_published = republish_published
        #: Media younger than this are left out of the media list (the listing's lag).
        self.listing_delay_seconds = listing_delay_seconds
        self.page_size = page_size
        self._state = threading.Lock()
        self._containers: dict[str, Container] = {}
        self._offset = 0.0
        self._pulls: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None

    # --- what tests look at and turn -----------------------------------------------------

    @property
    def containers(self) -> list[Container]:
        with self._state:
            return list(self._containers.values())

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on (containers expire, posts leave the 24 h window)."""
        with self._state:
            self._offset += seconds

    def now(self) -> float:
        return time.time() + self._offset

    def status_of(self, container: Container) -> str:
        if container.media_ids:
            return "PUBLISHED"
        if self.now() - container.created_at >= self.container_ttl_seconds:
            return "EXPIRED"
        if container.error_subcode is not None:
            return "ERROR"
        if container.ready_at is None or self.now() < container.ready_at:
            return "IN_PROGRESS"
        return "FINISHED"

    def quota_usage(self, account_id: str) -> int:
        since = self.now() - DAY_SECONDS
        return sum(1 for p in self.posts if p.account_id == account_id and p.created_at >= since)

    # --- server --------------------------------------------------------------------------

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return await super().start()

    async def stop(self) -> None:
        for task in list(self._pulls):
            task.cancel()
        await asyncio.gather(*self._pulls, return_exceptions=True)
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{user}/content_publishing_limit",
                           self._step("content_publishing_limit", self._publishing_limit))
        app.router.add_post("/{user}/media", self._step("create_container", self._create))
        app.router.add_get("/{user}/media", self._step("media_list", self._list))
        app.router.add_post("/{user}/media_publish", self._step("media_publish", self._publish))
        app.router.add_get("/{node}", self._node)

    def _step(self, step: str, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
        """Token check, the call noted, then the step's scripted fault or the step itself."""
        async def handle(request: web.Request) -> web.StreamResponse:
            params = await _params(request)
            self.note_call(request, step)
            if not params.get("access_token"):
                return _error(_NO_TOKEN)
            fault = self.faults.take(step)
            if fault == HANG:
                return await self.hang_now()
            if fault is not None and fault != HANG_AFTER:
                return _error(FAULTS[fault])
            response = await handler(request, params)
            if fault == HANG_AFTER:
                return await self.hang_now()
            return response
        return handle

    async def _node(self, request: web.Request) -> web.StreamResponse:
        """A container or a media, by id (Graph has one path for both)."""
        node = request.match_info["node"]
        with self._state:
            is_container = node in self._containers
        step = "container_status" if is_container else "media"
        handler = self._container_status if is_container else self._media
        return await self._step(step, handler)(request)

    async def _publishing_limit(self, request: web.Request, params: dict) -> web.Response:
        usage = self.quota_usage(request.match_info["user"])
        return web.json_response({"data": [{"quota_usage": usage, "config": {
            "quota_total": self.quota_total, "quota_duration": int(DAY_SECONDS)}}]})

    async def _create(self, request: web.Request, params: dict) -> web.Response:
        account = request.match_info["user"]
        if params.get("media_type") != "REELS" or not params.get("video_url"):
            return _error(FAULTS["2207023"])
        if len(params.get("caption", "")) > 2200:
            return _error(FAULTS["2207010"])
        since = self.now() - DAY_SECONDS
        with self._state:
            made = sum(1 for c in self._containers.values()
                       if c.account_id == account and c.created_at >= since)
        if made >= self.container_limit:
            return _error(_CONTAINER_CAP)
        container = Container(self.new_id("container"), account, params["video_url"],
                              params.get("caption", ""), self.now())
        scripted = self.faults.take("processing")
        with self._state:
            self._containers[container.id] = container
        task = asyncio.create_task(self._pull(container, scripted))
        self._pulls.add(task)
        task.add_done_callback(self._pulls.discard)
        return web.json_response({"id": container.id})

    async def _pull(self, container: Container, scripted_subcode: str | None) -> None:
        """Meta fetches the video (it must be public); then processing takes its time."""
        assert self._session is not None
        try:
            async with self._session.get(container.video_url) as response:
                if response.status != 200:
                    raise aiohttp.ClientResponseError(response.request_info, (),
                                                      status=response.status)
                async for chunk in response.content.iter_chunked(1 << 16):
                    container.downloaded_bytes += len(chunk)
        except (aiohttp.ClientError, OSError, TimeoutError):
            container.error_subcode = 2207052
            return
        if scripted_subcode is not None:
            container.error_subcode = int(scripted_subcode)
            return
        container.ready_at = self.now() + self.processing_seconds

    async def _container_status(self, request: web.Request, params: dict) -> web.Response:
        with self._state:
            container = self._containers[request.match_info["node"]]
        status_code = self.status_of(container)
        status = (f"Error: Media upload has failed with error code {container.error_subcode}"
                  if status_code == "ERROR" else _STATUS_TEXT[status_code])
        return web.json_response({"status_code": status_code, "status": status,
                                  "id": container.id})

    async def _publish(self, request: web.Request, params: dict) -> web.Response:
        account = request.match_info["user"]
        with self._state:
            container = self._containers.get(params.get("creation_id", ""))
        if container is None or container.account_id != account:
            return _error(FAULTS["2207008"])
        status = self.status_of(container)
        if status == "EXPIRED":
            return _error(FAULTS["2207020"])
        if status == "PUBLISHED" and not self.republish_published:
            return web.json_response({"id": container.media_ids[0]})
        if status in ("IN_PROGRESS", "ERROR"):
            return _error(FAULTS["2207027"])
        if self.quota_usage(account) >= self.quota_total:
            return _error(FAULTS["2207042"])
        post = self.add_post(account, container.caption, container.video_url,
                             container_id=container.id, media_product_type="REELS",
                             shortcode=secrets.token_urlsafe(8))
        with self._state:
            container.media_ids.append(post.post_id)
        return web.json_response({"id": post.post_id})

    async def _list(self, request: web.Request, params: dict) -> web.Response:
        account = request.match_info["user"]
        since, until = _unix(params.get("since")), _unix(params.get("until"))
        listed_before = self.now() - self.listing_delay_seconds
        media = sorted((p for p in self.posts if p.account_id == account
                        and p.created_at <= listed_before
                        and (since is None or p.created_at >= since)
                        and (until is None or p.created_at <= until)),
                       key=lambda p: p.created_at, reverse=True)
        offset = _cursor_offset(params.get("after"))
        limit = min(int(params.get("limit") or self.page_size), 100)
        page = media[offset:offset + limit]
        fields = (params.get("fields") or "id").split(",")
        body: dict[str, Any] = {"data": [_media_fields(p, fields) for p in page]}
        if page:
            body["paging"] = {"cursors": {"before": _cursor(offset),
                                          "after": _cursor(offset + len(page))}}
            if offset + len(page) < len(media):
                query = {k: v for k, v in request.query.items() if k != "after"}
                body["paging"]["next"] = str(request.url.with_query(
                    {**query, "after": _cursor(offset + len(page))}))
        return web.json_response(body)

    async def _media(self, request: web.Request, params: dict) -> web.Response:
        node = request.match_info["node"]
        post = next((p for p in self.posts if p.post_id == node), None)
        if post is None:
            return _error(_NOT_FOUND, id=node)
        fields = (params.get("fields") or "id").split(",")
        return web.json_response(_media_fields(post, fields))


# --- answers -----------------------------------------------------------------------------

def _error(spec: ErrorSpec, **values: str) -> web.Response:
    error: dict[str, Any] = {"message": spec.message.format(**values), "type": "OAuthException",
                             "code": spec.code, "is_transient": spec.is_transient,
                             "fbtrace_id": secrets.token_urlsafe(12)}
    if spec.subcode is not None:
        error["error_subcode"] = spec.subcode
        error["error_user_title"] = spec.message
        error["error_user_msg"] = spec.message
    return web.json_response({"error": error}, status=spec.http_status, headers=spec.headers)


def permalink(post) -> str:
    return f"https://www.instagram.com/reel/{post.extra.get('shortcode', post.post_id)}/"


def _media_fields(post, fields: list[str]) -> dict[str, Any]:
    values = {"id": post.post_id, "caption": post.text, "media_type": "VIDEO",
              "media_product_type": post.extra.get("media_product_type", "REELS"),
              "timestamp": datetime.fromtimestamp(post.created_at, timezone.utc)
              .strftime("%Y-%m-%dT%H:%M:%S+0000"),
              "permalink": permalink(post)}
    return {name: values[name] for name in ["id", *fields] if name in values}


async def _params(request: web.Request) -> dict[str, str]:
    """Graph takes parameters in the query, a form body or a JSON body alike; the token may
    also come as `Authorization: Bearer|OAuth`."""
    params = dict(request.query)
    if request.content_type == "application/json" and request.can_read_body:
        params.update({k: str(v) for k, v in (await request.json()).items()})
    elif request.can_read_body:
        params.update({k: str(v) for k, v in (await request.post()).items()})
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme in ("Bearer", "OAuth") and token and "access_token" not in params:
        params["access_token"] = token
    return params


def _unix(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _cursor_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1])
    except (ValueError, IndexError):
        return 0
