"""M06, the neighbour that knows where a clip's rendered media lives. (M09's clip ->
campaign lookup is a read of its table: app/db/clips.py.)"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, Field

from app.domain.errors import NotFound, Unavailable
from app.platforms.http import parse_retry_after


class Media(BaseModel):
    """Where a clip's rendered media lives, as M06 answers it."""

    url: str = Field(min_length=1)
    duration_seconds: float = Field(ge=0)
    size_bytes: int | None = Field(None, ge=0)
    content_type: str | None = None


class MediaLocator:
    """Where a clip's rendered media lives (M06 owner API), or a deterministic stand-in.

    A clip M06 has no media for is `NotFound`; M06 unreachable, slow, refusing or answering
    what we cannot read is `Unavailable` (with M06's `retry_after`, if it gave one)."""

    STAND_IN_SECONDS = 30.0

    def __init__(self, base_url: str | None, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def media_for(self, clip_id: str) -> Media:
        if self.base_url is None:
            name = uuid.uuid5(uuid.NAMESPACE_URL, clip_id).hex
            return Media(url=f"https://media.local/clips/{name}.mp4",
                         duration_seconds=self.STAND_IN_SECONDS)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        url = f"{self.base_url}/api/v1/clips/{quote(clip_id, safe='')}/media"
        try:
            async with self._session.get(url) as response:
                if response.status == 404:
                    raise NotFound("M06 has no media for the clip", clip_id=clip_id)
                if response.status != 200:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise Unavailable(f"M06 answered {response.status}", clip_id=clip_id,
                                      **({"retry_after": retry_after} if retry_after else {}))
                return Media.model_validate(await response.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValidationError too
            raise Unavailable("M06 cannot be reached or answered what we cannot read",
                              clip_id=clip_id, reason=type(exc).__name__) from exc
    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
