"""Item and preview reads for the GET routes, and the item as the API shows it."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from app.domain.model import Item
from app.domain.rules import rendered_caption
from app.envelope import rfc3339

from .items import ItemRepository, StoredItem, caption_to_json
from .pool import translate_errors
from .queries import Q


def _time(value) -> str | None:
    return rfc3339(value) if value is not None else None


def local_time(item: Item) -> str | None:
    if item.scheduled_at is None or item.timezone is None:
        return None
    return item.scheduled_at.astimezone(ZoneInfo(item.timezone)).isoformat()


def platform_status_json(item: Item) -> list[dict[str, Any]]:
    return [{"platform": r.platform.value, "status": r.status.value, "attempts": r.attempts,
             "error": r.error, "error_class": r.error_class, "reason_code": r.reason_code,
             "next_attempt_at": _time(r.next_attempt_at),
             "post_id": r.post_id, "post_url": r.post_url,
             "published_at": _time(r.published_at)}
            for r in item.platform_status.values()]


def item_json(stored: StoredItem) -> dict[str, Any]:
    item = stored.item
    return {
        "id": item.id, "status": item.status.value,
        "publication": item.publication.value if item.publication else None,
        "influencer_id": item.influencer_id,
        "clip_id": item.clip_id, "campaign_id": item.campaign_id,
        "claimed_at": _time(item.claimed_at), "claim_expires_at": _time(item.claim_expires_at),
        "scheduled_at": _time(item.scheduled_at), "scheduled_at_local": local_time(item),
        "timezone": item.timezone, "platforms": [p.value for p in item.platforms],
        "overlays": [{"type": o.type.value, "duration_seconds": o.duration_seconds}
                     for o in item.overlays_in_play_order()],
        "caption": caption_to_json(item.caption) if item.caption else None,
        "platform_status": platform_status_json(item),
        "retry_count": item.retry_count, "failure_reason": item.failure_reason,
        "version": item.version,
        "created_at": _time(stored.created_at), "updated_at": _time(stored.updated_at),
    }


def preview_json(item: Item, media_url: str, clip_seconds: float) -> dict[str, Any]:
    overlays = item.overlays_in_play_order()
    captions = []
    if item.caption is not None:
        for platform in item.platforms:
            text = item.caption.for_platform(platform)
            captions.append({"platform": platform.value, "text": text.text,
                             "hashtags": list(text.hashtags), "title": text.title,
                             "rendered": rendered_caption(text.text, text.hashtags)})
    schedule = None
    if item.scheduled_at is not None:
        schedule = {"scheduled_at": _time(item.scheduled_at), "local_time": local_time(item),
                    "timezone": item.timezone}
    return {
        "item_id": item.id, "status": item.status.value,
        "clip": {"clip_id": item.clip_id, "media_url": media_url,
                 "duration_seconds": clip_seconds},
        "overlays": [{"type": o.type.value, "duration_seconds": o.duration_seconds}
                     for o in overlays],
        "total_duration_seconds": round(clip_seconds + sum(o.duration_seconds
                                                           for o in overlays), 3),
        "captions": captions,
        "schedule": schedule,
        "platform_status": platform_status_json(item),
    }


async def read_item(pool: asyncpg.Pool, item_id: str) -> StoredItem | None:
    async with translate_errors(), pool.acquire() as conn:
        return await ItemRepository(conn).get(item_id)


async def item_owner(pool: asyncpg.Pool, item_id: str) -> str | None:
    """The influencer owning an item, or None when there is no such item."""
    async with translate_errors(), pool.acquire() as conn:
        return await conn.fetchval(Q["item_owner"], item_id)
