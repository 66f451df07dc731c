"""M06 (the media module) as a real HTTP server on loopback.

`GET /api/v1/clips/{clip_id}/media` answers where a clip's rendered media lives, as M06's
owner API does, and the media itself is served from this server too (`GET
/files/{clip_id}.mp4`, with `Range` support), so that adapters that stream bytes and fakes
that pull from a URL read real bytes. Every clip has media unless a test scripts otherwise:

    media = FakeMediaServer(size_bytes=300_000); media.start_in_thread()
    media.script("clip-1", 503, 503)      # the next two lookups fail, then media again
    media.script("clip-2", 404)           # M06 knows no media for this clip
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from app.loopback import LoopbackServer

ROUTE = "/api/v1/clips/{clip_id}/media"
FILE_ROUTE = "/files/{clip_id}.mp4"
#: What M06 says of every clip it has media for.
DURATION_SECONDS, SIZE_BYTES, CONTENT_TYPE = 30.0, 1_048_576, "video/mp4"
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class Lookup:
    clip_id: str
    status: int


def media_bytes(clip_id: str, start: int, end: int) -> bytes:
    """Bytes start..end-1 of the clip's media: deterministic, different per clip."""
    block = hashlib.sha256(clip_id.encode()).digest() * 128  # 4 KiB
    first = start // len(block)
    last = (end + len(block) - 1) // len(block)
    whole = block * (last - first)
    offset = start - first * len(block)
    return whole[offset:offset + (end - start)]


def media_digest(clip_id: str, size: int) -> str:
    """SHA-256 of the clip's whole media (what an uploaded copy must hash to)."""
    digest, step = hashlib.sha256(), 1 << 20
    for start in range(0, size, step):
        digest.update(media_bytes(clip_id, start, min(size, start + step)))
    return digest.hexdigest()


class FakeMediaServer(LoopbackServer):
    def __init__(self, host: str = "127.0.0.1", size_bytes: int = SIZE_BYTES) -> None:
        super().__init__(host)
        self.size_bytes = size_bytes
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[int]] = {}
        self._lookups: list[Lookup] = []
        self.bytes_served = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(ROUTE, self._media)
        app.router.add_get(FILE_ROUTE, self._file)

    def script(self, clip_id: str, *statuses: int) -> None:
        """The next lookups of the clip answer these statuses in order (then 200 again)."""
        with self._lock:
            self._scripts.setdefault(clip_id, deque()).extend(statuses)

    def lookups_for(self, clip_id: str) -> list[Lookup]:
        with self._lock:
            return [lookup for lookup in self._lookups if lookup.clip_id == clip_id]

    def media_url(self, clip_id: str) -> str:
        return f"{self.url}/files/{clip_id}.mp4"

    async def _media(self, request: web.Request) -> web.Response:
        clip_id = request.match_info["clip_id"]
        with self._lock:
            queue = self._scripts.get(clip_id)
            status = queue.popleft() if queue else 200
            self._lookups.append(Lookup(clip_id, status))
        if status == 200:
            return web.json_response({"url": self.media_url(clip_id),
                                      "duration_seconds": DURATION_SECONDS,
                                      "size_bytes": self.size_bytes,
                                      "content_type": CONTENT_TYPE})
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        return web.json_response({"error": {"message": f"scripted {status}"}}, status=status,
                                 headers=headers)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        clip_id, size = request.match_info["clip_id"], self.size_bytes
        start, end, status = 0, size, 200
        wanted = request.headers.get("Range")
        if wanted:
            match = _RANGE.match(wanted.strip())
            if not match or int(match[1]) >= size:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
            start = int(match[1])
            end = min(size, int(match[2]) + 1) if match[2] else size
            status = 206
        headers = {"Content-Type": CONTENT_TYPE, "Content-Length": str(end - start),
                   "Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        step = 256 * 1024
        for offset in range(start, end, step):
            chunk = media_bytes(clip_id, offset, min(end, offset + step))
            await response.write(chunk)
            with self._lock:
                self.bytes_served += len(chunk)
        await response.write_eof()
        return response
