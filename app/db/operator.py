"""The operators' reads: the item search (newest first, by cursor), an item's timeline, and
the bookkeeping of dead-letter re-drives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .items import StoredItem, stored_items
from .pool import translate_errors
from .queries import Q


@dataclass(frozen=True)
class ItemFilter:
    """What an item search matches; None matches everything."""

    status: str | None = None
    platform: str | None = None
    platform_status: str | None = None
    influencer_id: str | None = None
    campaign_id: str | None = None
    due_from: datetime | None = None
    due_before: datetime | None = None


#: Where a page of the search ends: the last item's (created_at, id).
Cursor = tuple[datetime, str]


async def search_items(pool: asyncpg.Pool, where: ItemFilter, after: Cursor | None,
                       limit: int) -> tuple[list[StoredItem], Cursor | None]:
    """A page of the items that match, newest first, and the cursor of the next page (None
    when this one is the last)."""
    created, last_id = after if after is not None else (None, None)
    async with translate_errors(), pool.acquire() as conn:
        rows = await conn.fetch(
            Q["search_items"], where.status, where.platform, where.platform_status,
            where.influencer_id, where.campaign_id, where.due_from, where.due_before,
            created, last_id, limit + 1)  # one more tells whether a next page exists
        page = rows[:limit]
        found, _ = await stored_items(conn, [r["id"] for r in page])
    # an item deleted between the two statements is left out
    items = [found[r["id"]] for r in page if r["id"] in found]
    more = len(rows) > limit
    return items, (page[-1]["created_at"], page[-1]["id"]) if more else None


async def item_timeline(pool: asyncpg.Pool, item_id: str) -> list[dict[str, Any]]:
    """The item's commands, platform answers and events, oldest first."""
    async with translate_errors():
        rows = await pool.fetch(Q["item_timeline"], item_id)
    return [dict(r) for r in rows]


async def redrives(pool: asyncpg.Pool, dlq_topic: str) -> dict[tuple[int, int], dict[str, Any]]:
    """(partition, offset) -> who re-drove that record of the DLQ topic, and when."""
    async with translate_errors():
        rows = await pool.fetch(Q["redrives"], dlq_topic)
    return {(r["dlq_partition"], r["dlq_offset"]): {"operator": r["operator"],
                                                    "redriven_at": r["redriven_at"]}
            for r in rows}
