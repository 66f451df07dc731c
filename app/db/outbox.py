"""Outcome events written beside the state change, and the relay's batches."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from app.domain import events as e
from app.domain.model import Item
from app.envelope import make_envelope, rfc3339

from .queries import Q

PUBLISHED_TOPIC = "distribution.published"
FAILED_TOPIC = "distribution.failed"


def platform_json(row) -> dict[str, Any]:
    return {"platform": row.platform.value, "status": row.status.value,
            "post_id": row.post_id, "post_url": row.post_url, "attempts": row.attempts,
            "error": row.error}


def outcome_data(item: Item) -> dict[str, Any]:
    rows = list(item.platform_status.values())
    return {
        "item_id": item.id, "influencer_id": item.influencer_id, "clip_id": item.clip_id,
        "campaign_id": item.campaign_id, "status": item.status.value,
        "platforms": [platform_json(r) for r in rows],
        "results": [platform_json(r) for r in rows if r.in_round],
        "retry_count": item.retry_count,
        "scheduled_at": rfc3339(item.scheduled_at) if item.scheduled_at else None,
    }


#: Event ids derive from the command that caused them, so a replay repeats the same ids.
EVENT_ID_NAMESPACE = uuid.UUID("5b0c3f8e-3d4a-4f0e-9a61-6f1d2c8b7a90")


def outcome_envelopes(item: Item, events: list[e.Event], now: datetime,
                      trace_id: str | None, cause: str | None = None
                      ) -> list[tuple[str, dict[str, Any]]]:
    """(topic, envelope) for each outcome among the events; `cause` is the command id."""
    out = []
    for ev in events:
        if isinstance(ev, e.ItemPublished):
            topic, data = PUBLISHED_TOPIC, outcome_data(item)
        elif isinstance(ev, e.ItemFailed):
            topic, data = FAILED_TOPIC, {**outcome_data(item), "reason": ev.reason}
        else:
            continue
        event_id = uuid.uuid5(EVENT_ID_NAMESPACE, f"{cause}:{topic}") if cause else None
        out.append((topic, make_envelope(topic, item.id, data, now, trace_id, event_id)))
    return out


class OutboxRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def add(self, topic: str, envelope: dict[str, Any]) -> None:
        await self.conn.execute(Q["insert_outbox"], uuid.UUID(envelope["event_id"]), topic,
                                envelope["partition_key"], envelope)

    async def try_lead(self) -> bool:
        """True when this transaction is the one relay allowed to run now."""
        return await self.conn.fetchval(Q["try_relay_lock"])

    async def pending(self, limit: int) -> list[asyncpg.Record]:
        return await self.conn.fetch(Q["pending_outbox"], limit)

    async def mark_published(self, ids: list[int]) -> None:
        await self.conn.execute(Q["mark_outbox_published"], ids)

    async def note_failure(self, ids: list[int], error: str) -> None:
        await self.conn.execute(Q["note_outbox_failure"], ids, error[:500])
