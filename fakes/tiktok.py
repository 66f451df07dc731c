"""TikTok's Content Posting API (Direct Post, `PULL_FROM_URL`) as a real HTTP server on
loopback, as PLATFORMS.md §1 describes it: creator_info, video/init, status/fetch and
video/list, every answer in TikTok's envelope `{data:{...}, error:{code, message, log_id}}`.

    tiktok = FakeTikTok(processing_seconds=0.1); tiktok.start_in_thread()  # or `async with`
    tiktok.add_creator("act.token-1", "open-1", username="maya")
    tiktok.faults.script("init", "rate_limit_exceeded", HANG_AFTER)
    # the next init answers 429; the one after starts the publish, then says nothing
    tiktok.faults.script("processing", "video_pull_failed")  # the next publish ends FAILED
    ...
    [post] = tiktok.posts_with("Summer drop")  # every publish that completed is one post

What it does as TikTok does:
- A token it does not know answers 401 `access_token_invalid`; a creator without the
  scope a route needs answers 401 `scope_not_authorized`.
- video/init starts the publish at once and answers its `publish_id`: the point of no
  return. There is no idempotency key: a second init is a second post.
- The video is really pulled from `video_url` (aiohttp, no redirects followed) in the
  background; an unreachable URL or an HTTP error ends the publish FAILED with
  `video_pull_failed`. status/fetch answers PROCESSING_DOWNLOAD for `processing_seconds`
  after init, then PUBLISH_COMPLETE; `publicaly_available_post_id` (sic) appears
  `moderation_seconds` later, when the post also starts showing in video/list.
- video/list shows the creator's public, moderated posts only, newest first, at most 20 a
  page, paged by `cursor` (a create time in ms) and `has_more`.
- Limits: `init_calls_per_minute` per token (6, TikTok's; None turns it off) answers 429
  `rate_limit_exceeded` with Retry-After; `daily_post_cap` per creator (off by default)
  answers `spam_risk_too_many_posts`, with HTTP 200 from creator_info (TikTok does that
  on purpose) and 403 from init. `verified_url_prefixes`, when given, refuses any other
  video URL with 403 `url_ownership_unverified`; `audited=False` allows SELF_ONLY only.

Faults (`faults.script(step, ...)`), per step `creator_info`, `init`, `status`, `list`:
an error code of PLATFORMS.md §1(d) (answered with its documented HTTP status), HANG, or
HANG_AFTER (init only: the publish starts, the answer never comes), or PROXY_ERROR_AFTER
(init only: the publish starts, and a proxy in front of TikTok answers 502 with an HTML
page, not TikTok's envelope). Step `processing`
takes a `fail_reason` that the next publish started ends FAILED with.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from .platform_kit import HANG, HANG_AFTER, FakePlatform, Post

CREATOR_INFO_PATH = "/v2/post/publish/creator_info/query/"
INIT_PATH = "/v2/post/publish/video/init/"
STATUS_PATH = "/v2/post/publish/status/fetch/"
LIST_PATH = "/v2/video/list/"

PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR",
                  "SELF_ONLY")
PUBLIC = "PUBLIC_TO_EVERYONE"
ALL_SCOPES = frozenset({"user.info.basic", "video.publish", "video.list"})
TITLE_MAX_UTF16_UNITS = 2200
LIST_MAX_COUNT = 20
#: Video ids are int64s; they start where real ones look alike.
FIRST_VIDEO_ID = 7_300_000_000_000_000_001
#: The Retry-After a scripted `rate_limit_exceeded` carries.
SCRIPTED_RETRY_AFTER_SECONDS = 30
PULL_TIMEOUT_SECONDS = 30.0
PROXY_ERROR_AFTER = "proxy_error_after"

#: The HTTP status TikTok answers each error code with (PLATFORMS.md §1(d)).
ERROR_STATUS = {
    "invalid_param": 400,
    "invalid_params": 400,
    "invalid_file_upload": 400,
    "access_token_invalid": 401,
    "scope_not_authorized": 401,
    "scope_permission_missed": 401,
    "spam_risk_too_many_posts": 403,
    "reached_active_user_cap": 403,
    "spam_risk_user_banned_from_posting": 403,
    "unaudited_client_can_only_post_to_private_accounts": 403,
    "url_ownership_unverified": 403,
    "privacy_level_option_mismatch": 403,
    "rate_limit_exceeded": 429,
    "internal_error": 500,
}
#: What creator_info answers with HTTP 200 all the same ("intentional", says TikTok).
CREATOR_INFO_OK_STATUS_CODES = frozenset({"spam_risk_too_many_posts",
                                          "spam_risk_user_banned_from_posting",
                                          "reached_active_user_cap"})


@dataclass
class Creator:
    """A TikTok account, as the token that acts for it sees it."""

    open_id: str
    username: str
    privacy_level_options: tuple[str, ...] = PRIVACY_LEVELS
    max_video_post_duration_sec: int = 600
    scopes: frozenset[str] = ALL_SCOPES
    banned: bool = False


@dataclass
class Publish:
    """One video/init and what became of it."""

    publish_id: str
    open_id: str
    title: str
    video_url: str
    privacy_level: str
    started_at: float  # epoch seconds
    status: str = "PROCESSING_DOWNLOAD"
    fail_reason: str | None = None
    downloaded_bytes: int = 0
    sha256: str | None = None  # of the video, once pulled whole
    post: Post | None = None


class _Refused(Exception):
    """Ends a handler with an error answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class FakeTikTok(FakePlatform):
    def __init__(self, host: str = "127.0.0.1", processing_seconds: float = 0.2, *,
                 moderation_seconds: float = 0.0, init_calls_per_minute: int | None = 6,
                 daily_post_cap: int | None = None,
                 verified_url_prefixes: tuple[str, ...] | None = None,
                 audited: bool = True) -> None:
        super().__init__(host, processing_seconds)
        self.moderation_seconds = moderation_seconds
        self.init_calls_per_minute = init_calls_per_minute
        self.daily_post_cap = daily_post_cap
        self.verified_url_prefixes = verified_url_prefixes
        self.audited = audited
        self._creators: dict[str, Creator] = {}  # by access token
        self._publishes: dict[str, Publish] = {}
        self._init_times: dict[str, deque[float]] = defaultdict(deque)  # by token
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None

    # --- what tests set up and read ------------------------------------------------------

    def add_creator(self, access_token: str, open_id: str, username: str = "creator",
                    **settings: Any) -> Creator:
        """A creator that `access_token` acts for (settings: Creator's fields)."""
        creator = Creator(open_id, username, **settings)
        with self._lock:
            self._creators[access_token] = creator
        return creator

    def revoke(self, access_token: str) -> None:
        with self._lock:
            self._creators.pop(access_token, None)

    @property
    def publishes(self) -> list[Publish]:
        with self._lock:
            return list(self._publishes.values())

    def seed_video(self, open_id: str, title: str, *, create_time: float | None = None,
                   privacy_level: str = PUBLIC) -> Post:
        """A post made elsewhere (another app, the TikTok app): it shows in video/list."""
        created = time.time() if create_time is None else create_time
        return self.add_post(open_id, title, None, create_time=created,
                             privacy_level=privacy_level, public_at=created)

    def new_id(self, prefix: str | None = None) -> str:
        """TikTok's shapes: int64 video ids, `v_pub_url~v2.N` publish ids."""
        with self._lock:
            number = next(self._numbers)
        return f"{prefix}.{number}" if prefix else str(FIRST_VIDEO_ID + number)

    # --- server ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._refusals)
        app.router.add_post(CREATOR_INFO_PATH, self._creator_info)
        app.router.add_post(INIT_PATH, self._init)
        app.router.add_post(STATUS_PATH, self._status)
        app.router.add_post(LIST_PATH, self._list)
        app.on_shutdown.append(self._shutdown)

    @web.middleware
    async def _refusals(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refused as refused:
            return refused.response

    async def _shutdown(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- routes ----------------------------------------------------------------------------

    async def _creator_info(self, request: web.Request) -> web.StreamResponse:
        self.note_call(request, "creator_info")
        creator = self._creator(request)
        fault = self.faults.take("creator_info")
        if fault == HANG:
            return await self.hang_now()
        if fault:
            raise self._refusal(fault, status=200 if fault in CREATOR_INFO_OK_STATUS_CODES
                                else None)
        if creator.banned:
            raise self._refusal("spam_risk_user_banned_from_posting", status=200)
        if self._daily_cap_reached(creator):
            raise self._refusal("spam_risk_too_many_posts", status=200)
        return _answer({
            "creator_avatar_url": f"https://p16.tiktokcdn.example/{creator.open_id}.jpeg",
            "creator_username": creator.username,
            "creator_nickname": creator.username.title(),
            "privacy_level_options": list(creator.privacy_level_options),
            "comment_disabled": False, "duet_disabled": False, "stitch_disabled": False,
            "max_video_post_duration_sec": creator.max_video_post_duration_sec,
        })

    async def _init(self, request: web.Request) -> web.StreamResponse:
        self.note_call(request, "init")
        creator = self._creator(request, scope="video.publish")
        self._count_init(request)
        fault = self.faults.take("init")
        if fault == HANG:
            return await self.hang_now()
        if fault and fault not in (HANG_AFTER, PROXY_ERROR_AFTER):
            raise self._refusal(fault)
        body = await _json_body(request)
        post_info, source_info = body.get("post_info") or {}, body.get("source_info") or {}
        title = str(post_info.get("title") or "")
        privacy_level = post_info.get("privacy_level")
        video_url = source_info.get("video_url")
        if source_info.get("source") != "PULL_FROM_URL" or not isinstance(video_url, str):
            raise self._refusal("invalid_param",
                                "source_info: this fake supports PULL_FROM_URL with video_url")
        if len(title.encode("utf-16-le")) // 2 > TITLE_MAX_UTF16_UNITS:
            raise self._refusal("invalid_param", "title is longer than 2200 UTF-16 runes")
        if privacy_level not in creator.privacy_level_options:
            raise self._refusal("privacy_level_option_mismatch")
        if not self.audited and privacy_level != "SELF_ONLY":
            raise self._refusal("unaudited_client_can_only_post_to_private_accounts")
        if self.verified_url_prefixes is not None and not video_url.startswith(
                self.verified_url_prefixes):
            raise self._refusal("url_ownership_unverified")
        if creator.banned:
            raise self._refusal("spam_risk_user_banned_from_posting")
        if self._daily_cap_reached(creator):
            raise self._refusal("spam_risk_too_many_posts")
        publish = Publish(self.new_id("v_pub_url~v2"), creator.open_id, title, video_url,
                          privacy_level, time.time())
        with self._lock:
            self._publishes[publish.publish_id] = publish
        self._start(self._process(publish, fail_reason=self.faults.take("processing")))
        if fault == HANG_AFTER:
            return await self.hang_now()
        if fault == PROXY_ERROR_AFTER:
            return web.Response(status=502, content_type="text/html",
                                text="<html><body>502 Bad Gateway</body></html>")
        return _answer({"publish_id": publish.publish_id})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        self.note_call(request, "status")
        creator = self._creator(request, scope="video.publish")
        fault = self.faults.take("status")
        if fault == HANG:
            return await self.hang_now()
        if fault:
            raise self._refusal(fault)
        publish_id = (await _json_body(request)).get("publish_id")
        with self._lock:
            publish = self._publishes.get(publish_id)
        if publish is None or publish.open_id != creator.open_id:
            raise self._refusal("invalid_param", f"publish_id {publish_id!r} not found")
        post_ids = []  # a public post's id, once moderated; a post not public never has one
        if publish.post is not None and _listable(publish.post):
            post_ids = [int(publish.post.post_id)]
        return _answer({"status": publish.status, "fail_reason": publish.fail_reason or "",
                        "publicaly_available_post_id": post_ids, "uploaded_bytes": 0,
                        "downloaded_bytes": publish.downloaded_bytes})

    async def _list(self, request: web.Request) -> web.StreamResponse:
        self.note_call(request, "list")
        creator = self._creator(request, scope="video.list")
        fault = self.faults.take("list")
        if fault == HANG:
            return await self.hang_now()
        if fault:
            raise self._refusal(fault)
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        if not fields:
            raise self._refusal("invalid_params", "fields is required")
        body = await _json_body(request)
        max_count = body.get("max_count", 10)
        if not isinstance(max_count, int) or not 0 < max_count <= LIST_MAX_COUNT:
            raise self._refusal("invalid_params", "max_count must be 1..20")
        cursor = body.get("cursor")
        videos = sorted((p for p in self.posts
                         if p.account_id == creator.open_id and _listable(p)
                         and (cursor is None or _create_time_ms(p) < cursor)),
                        key=_create_time_ms, reverse=True)
        page = videos[:max_count]
        return _answer({
            "videos": [_video(p, creator, fields) for p in page],
            "cursor": _create_time_ms(page[-1]) if page else cursor or 0,
            "has_more": len(videos) > len(page),
        })

    # --- the publish, in the background ------------------------------------------------

    async def _process(self, publish: Publish, fail_reason: str | None) -> None:
        """Pull the video, take `processing_seconds` in all, then post (or fail)."""
        pull_failure = await self._pull(publish)
        remaining = publish.started_at + self.processing_seconds - time.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        reason = pull_failure or fail_reason
        if reason:
            publish.fail_reason, publish.status = reason, "FAILED"
            return
        completed = time.time()
        publish.post = self.add_post(
            publish.open_id, publish.title, publish.video_url, publish_id=publish.publish_id,
            privacy_level=publish.privacy_level, create_time=completed,
            public_at=completed + self.moderation_seconds, sha256=publish.sha256)
        publish.status = "PUBLISH_COMPLETE"

    async def _pull(self, publish: Publish) -> str | None:
        """GET the video as TikTok does; the fail_reason when it cannot."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PULL_TIMEOUT_SECONDS))
        digest = hashlib.sha256()
        try:
            async with self._session.get(publish.video_url, allow_redirects=False) as response:
                if response.status != 200:
                    return "video_pull_failed"
                if not response.content_type.startswith("video/"):
                    return "file_format_check_failed"
                async for chunk in response.content.iter_chunked(64 * 1024):
                    digest.update(chunk)
                    publish.downloaded_bytes += len(chunk)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return "video_pull_failed"
        publish.sha256 = digest.hexdigest()
        return None

    def _start(self, work) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- checks ----------------------------------------------------------------------------

    def _creator(self, request: web.Request, scope: str | None = None) -> Creator:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        with self._lock:
            creator = self._creators.get(token)
        if creator is None:
            raise self._refusal("access_token_invalid",
                                "The access token is invalid or not found in the request.")
        if scope and scope not in creator.scopes:
            raise self._refusal("scope_not_authorized",
                                f"The user did not authorize the scope required: {scope}")
        return creator

    def _count_init(self, request: web.Request) -> None:
        """TikTok's per-token limit of init calls in a sliding minute."""
        if self.init_calls_per_minute is None:
            return
        token = request.headers["Authorization"]
        now = time.monotonic()
        with self._lock:
            times = self._init_times[token]
            while times and times[0] <= now - 60:
                times.popleft()
            if len(times) >= self.init_calls_per_minute:
                wait = max(1, round(times[0] + 60 - now))
                raise self._refusal("rate_limit_exceeded", headers={"Retry-After": str(wait)})
            times.append(now)

    def _daily_cap_reached(self, creator: Creator) -> bool:
        if self.daily_post_cap is None:
            return False
        since = time.time() - 86_400
        with self._lock:
            started = [p for p in self._publishes.values()
                       if p.open_id == creator.open_id and p.started_at >= since
                       and p.status != "FAILED"]
        return len(started) >= self.daily_post_cap

    def _refusal(self, code: str, message: str | None = None, *, status: int | None = None,
                 headers: dict[str, str] | None = None) -> _Refused:
        if code == "rate_limit_exceeded" and headers is None:
            headers = {"Retry-After": str(SCRIPTED_RETRY_AFTER_SECONDS)}
        status = status if status is not None else ERROR_STATUS.get(code, 400)
        return _Refused(_answer({}, code, message or code.replace("_", " "), status=status,
                                headers=headers))


def _answer(data: dict[str, Any], code: str = "ok", message: str = "", *, status: int = 200,
            headers: dict[str, str] | None = None) -> web.Response:
    """TikTok's envelope around every answer."""
    log_id = hashlib.sha1(f"{time.time_ns()}".encode()).hexdigest()[:32].upper()
    return web.json_response({"data": data,
                              "error": {"code": code, "message": message, "log_id": log_id}},
                             status=status, headers=headers)


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Refused(_answer({}, "invalid_params", "the body is not a JSON object",
                               status=400))
    return body


def _create_time(post: Post) -> float:
    return post.extra.get("create_time", post.created_at)


def _create_time_ms(post: Post) -> int:
    return int(_create_time(post) * 1000)


def _is_public_now(post: Post) -> bool:
    """Moderated: TikTok shows a post's id, and lists it, only after moderation."""
    return post.extra.get("public_at", post.created_at) <= time.time()


def _listable(post: Post) -> bool:
    return post.extra.get("privacy_level") == PUBLIC and _is_public_now(post)


def _video(post: Post, creator: Creator, fields: list[str]) -> dict[str, Any]:
    every = {"id": post.post_id, "create_time": int(_create_time(post)), "title": post.text,
             "video_description": post.text,
             "share_url": f"https://www.tiktok.com/@{creator.username}/video/{post.post_id}"}
    return {name: every[name] for name in fields if name in every}
