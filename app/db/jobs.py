"""Work the timers take from the database: due items, and platform attempts to make."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.domain.model import Platform

from .items import caption_from_json
from .pool import translate_errors
from .queries import Q


@dataclass(frozen=True)
class DueItem:
    item_id: str
    scheduled_at: datetime


@dataclass(frozen=True)
class PlatformAttempt:
    item_id: str
    platform: str
    attempts: int
    key_attempt: int
    influencer_id: str
    clip_id: str
    caption: dict[str, Any]
    overlays: list[dict[str, Any]]


async def claim_due_items(pool: asyncpg.Pool, now: datetime, limit: int,
                          requeue_after: timedelta) -> list[DueItem]:
    async with translate_errors(), pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(Q["claim_due_items"], now, limit, now - requeue_after)
    return [DueItem(r["id"], r["scheduled_at"]) for r in rows]


def _caption_for(data: dict[str, Any] | None, platform: str) -> dict[str, Any]:
    caption = caption_from_json(data)
    if caption is None:
        return {"text": "", "hashtags": []}
    text = caption.for_platform(Platform(platform))
    body = {"text": text.text, "hashtags": list(text.hashtags)}
    if text.title is not None:
        body["title"] = text.title
    return body


async def claim_platform_attempts(pool: asyncpg.Pool, now: datetime, limit: int,
                                  lease: timedelta) -> list[PlatformAttempt]:
    """Record the attempts before the calls; a crash leaves them to be taken after the lease."""
    async with translate_errors(), pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(Q["claim_platform_attempts"], now, limit, now + lease)
    return [PlatformAttempt(r["item_id"], r["platform"], r["attempts"], r["key_attempt"],
                            r["influencer_id"], r["clip_id"],
                            _caption_for(r["caption"], r["platform"]), r["overlays"])
            for r in rows]
