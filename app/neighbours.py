"""M06, the neighbour that knows where a clip's rendered media lives. (M09's clip ->
campaign lookup is a read of its table: app/db/clips.py.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp

from app.domain.errors import NotFound, Unavailable


@dataclass(frozen=True)
class Media:
    url: str
    duration_seconds: float


class MediaLocator:
    """Where a clip's rendered media lives (M06 owner API), or a deterministic stand-in."""

    STAND_IN_SECONDS = 30.0

    def __init__(self, base_url: str | None, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def media_for(self, clip_id: str) -> Media:
        if self.base_url is None:
            name = uuid.uuid5(uuid.NAMESPACE_URL, clip_id).hex
            return Media(f"https://media.local/clips/{name}.mp4", self.STAND_IN_SECONDS)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.get(f"{self.base_url}/api/v1/clips/{clip_id}/media") as r:
                if r.status == 404:
                    raise NotFound("the clip's media is not known", clip_id=clip_id)
                r.raise_for_status()
                body = await r.json()
                return Media(body["url"], float(body.get("duration_seconds") or 0))
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            raise Unavailable("the media service cannot be reached", reason=str(exc)) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
