"""Item rows <-> domain objects, and the writes of one command's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.domain import events as e
from app.domain.model import (Caption, CaptionText, ErrorClass, Item, Overlay, OverlayType,
                              Platform, PlatformState, PlatformStatus, Status)

from .queries import Q


def _ts(value: Any) -> datetime | None:
    """Timestamps nested in jsonb arrive as text."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def caption_from_json(data: dict[str, Any] | None) -> Caption | None:
    if not data:
        return None

    def text(d: dict[str, Any]) -> CaptionText:
        return CaptionText(d.get("text") or "", tuple(d.get("hashtags") or ()), d.get("title"))

    variants = {Platform(p): text(v) for p, v in (data.get("variants") or {}).items()}
    return Caption(text(data), variants)


def caption_to_json(caption: Caption) -> dict[str, Any]:
    def text(t: CaptionText) -> dict[str, Any]:
        return {"text": t.text, "hashtags": list(t.hashtags), "title": t.title}

    return {**text(caption.default),
            "variants": {p.value: text(t) for p, t in caption.variants.items()}}


def platform_status_from_row(row: dict[str, Any]) -> PlatformStatus:
    return PlatformStatus(
        platform=Platform(row["platform"]), status=PlatformState(row["status"]),
        attempts=row["attempts"], key_attempt=row.get("key_attempt", 1),
        error=row.get("last_error"),
        error_class=ErrorClass(row["error_class"]) if row.get("error_class") else None,
        reason_code=row.get("reason_code"), next_attempt_at=_ts(row.get("next_attempt_at")),
        post_id=row.get("post_id"), post_url=row.get("post_url"),
        published_at=_ts(row.get("published_at")), in_round=row.get("in_round", True))


@dataclass(frozen=True)
class StoredItem:
    """An item as stored: the domain object and the row's own bookkeeping times."""

    item: Item
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewItem:
    """An item to create in `claimed` from an M09 claim."""

    id: str
    influencer_id: str
    clip_id: str
    campaign_id: str
    claimed_at: datetime
    claim_expires_at: datetime


def stored_item_from_row(row: asyncpg.Record) -> StoredItem:
    return StoredItem(item_from_row(row), row["created_at"], row["updated_at"])


def item_from_row(row: asyncpg.Record) -> Item:
    overlays = {OverlayType(o["type"]): Overlay(OverlayType(o["type"]), o["duration_seconds"])
                for o in row["overlays"]}
    rows = [platform_status_from_row(p) for p in row["platform_rows"]]
    return Item(
        id=row["id"], influencer_id=row["influencer_id"], clip_id=row["clip_id"],
        campaign_id=row["campaign_id"], status=Status(row["status"]),
        claimed_at=row["claimed_at"], claim_expires_at=row["claim_expires_at"],
        scheduled_at=row["scheduled_at"], timezone=row["timezone"],
        platforms=tuple(Platform(p) for p in row["platforms"]), overlays=overlays,
        caption=caption_from_json(row["caption"]),
        platform_status={r.platform: r for r in rows},
        retry_count=row["retry_count"], failure_reason=row["failure_reason"],
        version=row["version"])


class ItemRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def get(self, item_id: str) -> StoredItem | None:
        row = await self.conn.fetchrow(Q["item_aggregate"], item_id)
        return stored_item_from_row(row) if row is not None else None

    async def lock(self, item_id: str) -> StoredItem | None:
        """The item, its row locked until the transaction ends."""
        if await self.conn.fetchval(Q["lock_item"], item_id) is None:
            return None
        return await self.get(item_id)

    async def add_claimed(self, items: list[NewItem]) -> set[str]:
        """Creates the items that do not exist yet; the ids of those it created."""
        rows = await self.conn.fetch(
            Q["insert_claims"], [i.id for i in items], [i.influencer_id for i in items],
            [i.clip_id for i in items], [i.campaign_id for i in items],
            [i.claimed_at for i in items], [i.claim_expires_at for i in items])
        return {r["id"] for r in rows}

    async def save(self, stored: StoredItem, new: Item) -> StoredItem:
        """Writes what changed from the stored item to the new one; the new one as stored."""
        old = stored.item
        if new is old:
            return stored
        updated_at = await self.conn.fetchval(
            Q["update_item"], new.id, new.status.value, new.scheduled_at, new.timezone,
            [p.value for p in new.platforms], new.retry_count, new.failure_reason, new.version)
        if new.caption is not None and new.caption != old.caption:
            c = caption_to_json(new.caption)
            await self.conn.execute(Q["upsert_caption"], new.id, c["text"], c["hashtags"],
                                    c["title"], c["variants"])
        for kind, overlay in new.overlays.items():
            if old.overlays.get(kind) != overlay:
                await self.conn.execute(Q["upsert_overlay"], new.id, kind.value,
                                        overlay.duration_seconds)
        if new.platform_status != old.platform_status:
            await self._save_platform_rows(old, new)
        return StoredItem(new, stored.created_at, updated_at)

    async def _save_platform_rows(self, old: Item, item: Item) -> None:
        if set(old.platform_status) - set(item.platform_status):
            await self.conn.execute(Q["delete_platform_rows"], item.id,
                                    [p.value for p in item.platform_status])
        rows = [r for p, r in item.platform_status.items() if old.platform_status.get(p) != r]
        await self.conn.execute(
            Q["upsert_platform_rows"], item.id,
            [r.platform.value for r in rows], [r.status.value for r in rows],
            [r.attempts for r in rows], [r.key_attempt for r in rows], [r.error for r in rows],
            [r.next_attempt_at for r in rows], [r.post_id for r in rows],
            [r.post_url for r in rows], [r.published_at for r in rows],
            [r.in_round for r in rows], [r.error_class for r in rows],
            [r.reason_code for r in rows])

    async def add_analytics(self, item_id: str, events: list[e.Event], now: datetime,
                            actor: str | None) -> None:
        """One row per platform outcome or download, naming who asked (None: the service)."""
        rows = []
        for ev in events:
            if isinstance(ev, e.PlatformPublished):
                rows.append((ev.platform.value, "published", ev.attempt, ev.post_id, None))
            elif isinstance(ev, e.PlatformFailed):
                rows.append((ev.platform.value, "failed", ev.attempt, None, ev.error))
            elif isinstance(ev, e.DownloadRequested):
                rows.append((None, "download", 0, None, None))
        if rows:
            cols = list(zip(*rows))
            await self.conn.execute(Q["insert_analytics"], item_id, *map(list, cols),
                                    [now] * len(rows), actor)
