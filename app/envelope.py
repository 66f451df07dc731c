"""The canonical event envelope (DESIGN §3), for every event in and out, and the outcome
events we emit in it."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain import events as e
from app.domain.model import Item, PlatformStatus
from app.topics import ACCOUNTS, FAILED, PUBLISHED, UNKNOWN

SOURCE = "M31"
EVENT_VERSION = 1


class Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_id: uuid.UUID
    event_type: str = Field(min_length=1)
    event_version: int | str
    occurred_at: datetime
    source: str
    partition_key: str
    trace_id: str
    data: dict[str, Any]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def make_envelope(event_type: str, partition_key: str, data: dict[str, Any],
                  occurred_at: datetime, trace_id: str | None = None,
                  event_id: uuid.UUID | None = None, source: str = SOURCE) -> dict[str, Any]:
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": event_type,
        "event_version": EVENT_VERSION,
        "occurred_at": rfc3339(occurred_at),
        "source": source,
        "partition_key": partition_key,
        "trace_id": trace_id or uuid.uuid4().hex,
        "data": data,
    }


def platform_json(row: PlatformStatus) -> dict[str, Any]:
    return {"platform": row.platform.value, "status": row.status.value,
            "post_id": row.post_id, "post_url": row.post_url, "attempts": row.attempts,
            "error": row.error, "error_class": row.error_class, "reason_code": row.reason_code}


def outcome_data(item: Item) -> dict[str, Any]:
    rows = list(item.platform_status.values())
    return {
        "item_id": item.id, "influencer_id": item.influencer_id, "clip_id": item.clip_id,
        "campaign_id": item.campaign_id, "status": item.status.value,
        "publication": item.publication.value if item.publication else None,
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
            topic, data = PUBLISHED, outcome_data(item)
        elif isinstance(ev, e.ItemFailed):
            topic, data = FAILED, {**outcome_data(item), "reason": ev.reason}
        elif isinstance(ev, e.PlatformUnknown):
            topic, data = UNKNOWN, {**outcome_data(item), "platform": ev.platform.value,
                                    "reason_code": ev.reason_code, "reason": ev.error}
        else:
            continue
        event_id = uuid.uuid5(EVENT_ID_NAMESPACE, f"{cause}:{topic}") if cause else None
        out.append((topic, make_envelope(topic, item.id, data, now, trace_id, event_id)))
    return out


def account_envelope(event_type: str, influencer_id: str, platform: str, now: datetime,
                     reason_code: str | None = None, error: str | None = None,
                     trace_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """(topic, envelope) of an account's change: needs reconnecting, or reconnected."""
    data = {"influencer_id": influencer_id, "platform": platform, "reason_code": reason_code,
            "error": error}
    return ACCOUNTS, make_envelope(event_type, f"{influencer_id}:{platform}", data, now,
                                   trace_id)
