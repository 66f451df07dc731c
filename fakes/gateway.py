"""A real HTTP server on loopback that speaks the platform gateway protocol (DESIGN §3).

    async with FakePlatformServer() as fake:          # in the test's own event loop
        fake.script("instagram", Answer.status(429, retry_after=1), Answer.ok())
        gateway = HttpGateway(fake.url, timeout_seconds=2)
        ...

    fake = FakePlatformServer(); url = fake.start_in_thread()   # for a service in another
    ...                                                          # process, or a blocking test
    fake.stop_thread()

Every call is recorded in `calls`; every post created in `posts`. Each platform has a queue
of scripted answers, consumed one per call in order; when it is empty the server answers
201 and creates a post. A key it has already posted answers 409 with the same post id and
url and creates nothing. Scripting, `calls` and `posts` are safe from any thread.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from app.loopback import LoopbackServer

PLATFORMS = ("tiktok", "instagram", "youtube", "snapchat")
POSTS_ROUTE = "/v1/platforms/{platform}/posts"


@dataclass(frozen=True)
class Answer:
    """One scripted answer. Build with the class methods."""

    kind: str  # "ok" | "status" | "hang" | "posted_then_fail"
    code: int = 201
    retry_after: float | str | datetime | None = None
    message: str | None = None
    body: Any = None
    seconds: float = 0.0
    posts: bool = False

    @classmethod
    def ok(cls) -> Answer:
        """201 with a new post (409 with the earlier post if the key was posted before)."""
        return cls("ok")

    @classmethod
    def status(cls, code: int, *, retry_after: float | str | datetime | None = None,
               message: str | None = None, body: Any = None) -> Answer:
        """Answer `code` without posting. `retry_after` (seconds, an HTTP-date string or a
        datetime) sets the Retry-After header; `body` (JSON value, or str for plain text)
        replaces the default `{"message": ...}`."""
        return cls("status", code=code, retry_after=retry_after, message=message, body=body)

    @classmethod
    def hang(cls, seconds: float = 30.0, *, posts: bool = False) -> Answer:
        """Say nothing for `seconds` (longer than the client's timeout), then answer 504.
        With `posts=True` the post is created before hanging: posted, answer never came."""
        return cls("hang", code=504, seconds=seconds, posts=posts)

    @classmethod
    def posted_then_fail(cls, code: int = 500, message: str | None = None) -> Answer:
        """Create the post, then answer `code`: posted, but the answer was lost."""
        return cls("posted_then_fail", code=code, message=message)


@dataclass(frozen=True)
class Call:
    platform: str
    idempotency_key: str | None
    body: Any
    at: float          # time.time() when it arrived
    monotonic: float   # time.monotonic() when it arrived
    status: int | None  # what it was answered (None: hung)
    answer: str         # the kind of answer given: ok, repeat, status, hang, posted_then_fail, invalid

    @property
    def item_id(self) -> str | None:
        return self.body.get("item_id") if isinstance(self.body, dict) else None


@dataclass(frozen=True)
class Post:
    platform: str
    idempotency_key: str
    post_id: str
    url: str
    body: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0

    @property
    def item_id(self) -> str | None:
        return self.body.get("item_id")


class FakePlatformServer(LoopbackServer):
    def __init__(self, host: str = "127.0.0.1", platforms: tuple[str, ...] = PLATFORMS) -> None:
        super().__init__(host)
        self.platforms = tuple(platforms)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._scripts: dict[str, deque[Answer]] = {}
        self._calls: list[Call] = []
        self._posts: list[Post] = []
        self._by_key: dict[str, Post] = {}
        self._ids = itertools.count(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(POSTS_ROUTE, self._handle)

    # ---- programming and inspection (any thread) ---------------------------------------

    def script(self, platform: str, *answers: Answer) -> None:
        """Queue answers for the next calls to `platform`, in order."""
        for answer in answers:
            if not isinstance(answer, Answer):
                raise TypeError(f"expected an Answer, got {answer!r}")
        with self._lock:
            self._scripts.setdefault(platform, deque()).extend(answers)

    def scripted_left(self, platform: str) -> int:
        with self._lock:
            return len(self._scripts.get(platform, ()))

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def posts(self) -> list[Post]:
        with self._lock:
            return list(self._posts)

    def calls_for(self, item_id: str, platform: str | None = None) -> list[Call]:
        return [c for c in self.calls
                if c.item_id == item_id and (platform is None or c.platform == platform)]

    def posts_for(self, item_id: str, platform: str | None = None) -> list[Post]:
        return [p for p in self.posts
                if p.item_id == item_id and (platform is None or p.platform == platform)]

    def wait_for_calls(self, count: int, timeout: float = 10.0) -> list[Call]:
        """Block until at least `count` calls arrived (woken by each call, no polling).
        Only from a thread other than the server's loop: use `await_calls` in the same loop."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._calls) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._calls)} platform calls after {timeout}s, expected {count}")
            return list(self._calls)

    async def await_calls(self, count: int, timeout: float = 10.0) -> list[Call]:
        """`wait_for_calls` for async tests, without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for_calls, count, timeout)

    # ---- the gateway ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        platform = request.match_info["platform"]
        key = request.headers.get("Idempotency-Key")
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        with self._changed:
            answer, response = self._decide(platform, key, body)
            self._changed.notify_all()
        if answer is not None and answer.kind == "hang":
            await self.hang(answer.seconds)
        return response

    def _decide(self, platform: str, key: str | None,
                body: Any) -> tuple[Answer | None, web.Response]:
        """Under the lock: pick the answer, create any post, record the call."""
        now, mono = time.time(), time.monotonic()

        def record(status: int | None, kind: str) -> None:
            self._calls.append(Call(platform, key, body, now, mono, status, kind))

        if platform not in self.platforms:
            record(404, "invalid")
            return None, _json(404, {"error": {"message": f"unknown platform {platform!r}"}})
        if not key:
            record(400, "invalid")
            return None, _json(400, {"message": "missing Idempotency-Key header"})
        if not isinstance(body, dict):
            record(400, "invalid")
            return None, _json(400, {"message": "body must be a JSON object"})

        queue = self._scripts.get(platform)
        answer = queue.popleft() if queue else Answer.ok()
        if answer.kind == "ok":
            known = self._by_key.get(key)
            if known is not None:
                record(409, "repeat")
                return answer, _json(409, {"post_id": known.post_id, "url": known.url,
                                           "message": "already posted with this key"})
            post = self._create_post(platform, key, body, now)
            record(201, "ok")
            return answer, _json(201, {"post_id": post.post_id, "url": post.url})
        if answer.kind == "posted_then_fail" or (answer.kind == "hang" and answer.posts):
            if key not in self._by_key:
                self._create_post(platform, key, body, now)
        if answer.kind == "hang":
            record(None, "hang")
            return answer, _json(504, {"message": "the fake hung up"})
        record(answer.code, answer.kind)
        return answer, _status_response(answer)

    def _create_post(self, platform: str, key: str, body: dict[str, Any], now: float) -> Post:
        post_id = f"fake-{platform}-{next(self._ids)}"
        post = Post(platform, key, post_id, f"https://{platform}.example/posts/{post_id}",
                    body, now)
        self._posts.append(post)
        self._by_key[key] = post
        return post


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload),
                        content_type="application/json", headers=headers)


def _status_response(answer: Answer) -> web.Response:
    headers: dict[str, str] = {}
    if answer.retry_after is not None:
        value = answer.retry_after
        if isinstance(value, datetime):
            headers["Retry-After"] = format_datetime(value, usegmt=True)
        elif isinstance(value, (int, float)):
            headers["Retry-After"] = str(int(value)) if float(value).is_integer() else str(value)
        else:
            headers["Retry-After"] = str(value)
    if isinstance(answer.body, str):
        return web.Response(status=answer.code, text=answer.body, headers=headers)
    payload = answer.body if answer.body is not None else {
        "message": answer.message or f"scripted {answer.code}"}
    return _json(answer.code, payload, headers)
