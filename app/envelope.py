"""The canonical event envelope (DESIGN §3), for every event in and out."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
