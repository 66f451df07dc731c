"""M06 (the media module) as a real HTTP server on loopback: `GET
/api/v1/clips/{clip_id}/media` answers where a clip's rendered media lives, as M06's owner
API does. Every clip has media unless a test scripts otherwise:

    media = FakeMediaServer(); media.start_in_thread()
    media.script("clip-1", 503, 503)      # the next two lookups fail, then media again
    media.script("clip-2", 404)           # M06 knows no media for this clip
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from .loopback import LoopbackServer

ROUTE = "/api/v1/clips/{clip_id}/media"
#: What M06 says of every clip it has media for.
DURATION_SECONDS, SIZE_BYTES, CONTENT_TYPE = 30.0, 7_340_032, "video/mp4"


@dataclass(frozen=True)
class Lookup:
    clip_id: str
    status: int


class FakeMediaServer(LoopbackServer):
    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[int]] = {}
        self._lookups: list[Lookup] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(ROUTE, self._media)

    def script(self, clip_id: str, *statuses: int) -> None:
        """The next lookups of the clip answer these statuses in order (then 200 again)."""
        with self._lock:
            self._scripts.setdefault(clip_id, deque()).extend(statuses)

    def lookups_for(self, clip_id: str) -> list[Lookup]:
        with self._lock:
            return [lookup for lookup in self._lookups if lookup.clip_id == clip_id]

    @staticmethod
    def media_url(clip_id: str) -> str:
        return f"https://media.example/clips/{clip_id}.mp4"

    async def _media(self, request: web.Request) -> web.Response:
        clip_id = request.match_info["clip_id"]
        with self._lock:
            queue = self._scripts.get(clip_id)
            status = queue.popleft() if queue else 200
            self._lookups.append(Lookup(clip_id, status))
        if status == 200:
            return web.json_response({"url": self.media_url(clip_id),
                                      "duration_seconds": DURATION_SECONDS,
                                      "size_bytes": SIZE_BYTES, "content_type": CONTENT_TYPE})
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        return web.json_response({"error": {"message": f"scripted {status}"}}, status=status,
                                 headers=headers)
