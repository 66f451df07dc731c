"""Item rows <-> domain objects, and the writes of one command's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.domain import events as e
from app.domain.model import (Caption, CaptionText, ErrorClass, Item, Overlay, OverlayType,
                              Platform, PlatformState, PlatformStatus, Status)

from .queries import Q
from .writes import BatchWrites


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


async def stored_items(conn: asyncpg.Connection, ids: list[str]
                       ) -> tuple[dict[str, StoredItem], datetime | None]:
    """The items that exist among `ids`, by id, and the transaction's time (None when none
    exists)."""
    rows = await conn.fetch(Q["item_aggregates"], ids)
    return ({r["id"]: StoredItem(item_from_row(r), r["created_at"], r["updated_at"])
             for r in rows}, rows[0]["transaction_time"] if rows else None)


class ItemRepository:
    """Reads items, and keeps what a batch of commands writes until `flush()`: then each
    statement goes once for all the items (asyncpg pipelines `executemany`), with what
    changed between each item as read and as last saved."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._as_stored: dict[str, Item] = {}  # as the database holds it
        self._saved: dict[str, Item] = {}  # saved since the last flush
        self._analytics: list[tuple] = []
        self._attempts: list[tuple] = []
        self._transaction_time: datetime | None = None

    async def get(self, item_id: str) -> StoredItem | None:
        return (await self._load([item_id])).get(item_id)

    async def lock_many(self, item_ids: Iterable[str]) -> dict[str, StoredItem]:
        """The items that exist, by id, their rows locked until the transaction ends."""
        ids = sorted(set(item_ids))
        await self.conn.execute(Q["lock_items"], ids)
        return await self._load(ids)

    async def _load(self, ids: list[str]) -> dict[str, StoredItem]:
        loaded, transaction_time = await stored_items(self.conn, ids)
        self._transaction_time = transaction_time or self._transaction_time
        self._as_stored.update((item_id, s.item) for item_id, s in loaded.items())
        return loaded

    async def add_claimed(self, items: list[NewItem]) -> set[str]:
        """Creates the items that do not exist yet; the ids of those it created."""
        rows = await self.conn.fetch(
            Q["insert_claims"], [i.id for i in items], [i.influencer_id for i in items],
            [i.clip_id for i in items], [i.campaign_id for i in items],
            [i.claimed_at for i in items], [i.claim_expires_at for i in items])
        return {r["id"] for r in rows}

    def save(self, stored: StoredItem, new: Item) -> StoredItem:
        """The new item, to be written at the next flush; as it will be stored."""
        if new is stored.item:
            return stored
        self._saved[new.id] = new
        # updated_at is now(): the transaction's time, read with the item
        assert self._transaction_time is not None
        return StoredItem(new, stored.created_at, self._transaction_time)

    def add_analytics(self, item_id: str, events: list[e.Event], now: datetime,
                      actor: str | None) -> None:
        """One row per platform outcome or download, naming who asked (None: the service)."""
        for ev in events:
            if isinstance(ev, e.PlatformPublished):
                row = (ev.platform.value, "published", ev.attempt, ev.post_id, None)
            elif isinstance(ev, e.PlatformFailed):
                row = (ev.platform.value, "failed", ev.attempt, None, ev.error)
            elif isinstance(ev, e.DownloadRequested):
                row = (None, "download", 0, None, None)
            else:
                continue
            self._analytics.append((item_id, *row, now, actor))

    def add_attempts(self, item: Item, events: list[e.Event]) -> None:
        """One row per platform answer the events record, with the class and reason the
        item's platform row now holds (the item's timeline)."""
        for ev in events:
            if isinstance(ev, e.PlatformPublished):
                outcome, error, post_id = "published", None, ev.post_id
            elif isinstance(ev, e.PlatformFailed):
                outcome, error, post_id = "failed", ev.error, None
            elif isinstance(ev, e.PlatformRetryScheduled):
                outcome, error, post_id = "retry", ev.error, None
            elif isinstance(ev, e.PlatformUnknown):
                outcome, error, post_id = "unknown", ev.error, None
            else:
                continue
            row = item.platform_status.get(ev.platform)
            error_class = row.error_class.value if row and row.error_class else None
            reason = ev.reason_code if isinstance(ev, e.PlatformUnknown) else (
                row.reason_code if row else None)
            self._attempts.append((item.id, ev.platform.value, ev.attempt, outcome,
                                   error_class, reason, error, post_id))

    def discard(self) -> None:
        """Forgets what was not written (its savepoint was rolled back)."""
        self._saved.clear()
        self._analytics.clear()
        self._attempts.clear()

    def write_into(self, writes: BatchWrites) -> None:
        """Hands what changed since the last flush to the batch's statement."""
        for item_id, new in self._saved.items():
            _changes(self._as_stored[item_id], new, writes)
            self._as_stored[item_id] = new
        writes.analytics.extend(self._analytics)
        writes.attempts.extend(self._attempts)
        self.discard()


def _changes(old: Item, new: Item, writes: BatchWrites) -> None:
    """The rows that take the stored item `old` to `new`, added to `writes`."""
    writes.items.append((new.id, new.status.value, new.scheduled_at, new.timezone,
                         ",".join(p.value for p in new.platforms), new.retry_count,
                         new.failure_reason, new.version))
    if new.caption is not None and new.caption != old.caption:
        c = caption_to_json(new.caption)
        writes.before("upsert_caption", new.id, c["text"], c["hashtags"], c["title"],
                      c["variants"])
    for kind, overlay in new.overlays.items():
        if old.overlays.get(kind) != overlay:
            writes.before("upsert_overlay", new.id, kind.value, overlay.duration_seconds)
    if set(old.platform_status) - set(new.platform_status):
        writes.before("delete_platform_rows", new.id, [p.value for p in new.platform_status])
    writes.platform_rows.extend(
        (new.id, r.platform.value, r.status.value, r.attempts, r.key_attempt, r.error,
         r.next_attempt_at, r.post_id, r.post_url, r.published_at, r.in_round,
         r.error_class, r.reason_code)
        for p, r in new.platform_status.items() if old.platform_status.get(p) != r)
