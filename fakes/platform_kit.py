"""What the four platform fakes share: the posts they created (what a test counts: no
(item, platform) may be posted twice), the calls they received, and faults scripted per
step of their flow, consumed one per call:

    fake.faults.script("init", "rate_limit_exceeded", HANG_AFTER)
    # the next init answers the platform's rate-limit error; the one after creates the
    # post, then says nothing (a hang after the point of no return)

A fault is a name the fake knows (its platform's error codes, from PLATFORMS.md) or one of
HANG (say nothing, do nothing) and HANG_AFTER (do the step, then say nothing).
None of the fakes recognises a repeated post: a second create is a second post.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from app.loopback import LoopbackServer

HANG = "hang"
HANG_AFTER = "hang_after"
#: How long a hang lasts: longer than any client's timeout; stopping the server ends it.
HANG_SECONDS = 120.0


@dataclass(frozen=True)
class Post:
    post_id: str
    account_id: str
    text: str  # the caption, title or description as posted
    media_url: str | None
    created_at: float  # epoch seconds
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    step: str


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Any]] = {}

    def script(self, step: str, *faults: Any) -> None:
        with self._lock:
            self._queues.setdefault(step, deque()).extend(faults)

    def take(self, step: str) -> Any | None:
        with self._lock:
            queue = self._queues.get(step)
            return queue.popleft() if queue else None

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()


class FakePlatform(LoopbackServer):
    """Base of the platform fakes. `processing_seconds`: how long the platform's
    asynchronous work (pulling, transcoding, moderation) takes."""

    id_prefix = "post"

    def __init__(self, host: str = "127.0.0.1", processing_seconds: float = 0.2) -> None:
        super().__init__(host)
        self.processing_seconds = processing_seconds
        self.faults = Faults()
        self._lock = threading.Lock()
        self._posts: list[Post] = []
        self._calls: list[Call] = []
        self._ids = itertools.count(1)

    def new_id(self, prefix: str | None = None) -> str:
        with self._lock:
            return f"{prefix or self.id_prefix}-{next(self._ids)}"

    def note_call(self, request: web.Request, step: str) -> None:
        with self._lock:
            self._calls.append(Call(request.method, request.path, step))

    def add_post(self, account_id: str, text: str, media_url: str | None,
                 **extra: Any) -> Post:
        post = Post(self.new_id(), account_id, text, media_url, time.time(), extra)
        with self._lock:
            self._posts.append(post)
        return post

    @property
    def posts(self) -> list[Post]:
        with self._lock:
            return list(self._posts)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, step: str) -> list[Call]:
        return [c for c in self.calls if c.step == step]

    def posts_with(self, text_part: str) -> list[Post]:
        return [p for p in self.posts if text_part in p.text]

    async def hang_now(self) -> web.Response:
        await self.hang(HANG_SECONDS)
        return web.Response(status=504)
