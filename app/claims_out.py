"""What M09 sends when an influencer claims a clip: the `distribution.claimed` envelope.

Tests, benchmarks and the `distribution claim` command produce claims with it;
the service itself only reads these (app/wire.py)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone


def claimed_event(claim_id: str, clip_id: str, influencer_id: str,
                  campaign_id: str | None, claimed_at: str | None = None) -> dict:
    """The event as JSON-ready data; without `campaign_id` the service looks the clip up in
    M09's `clips` table."""
    data = {"claim_id": claim_id, "clip_id": clip_id, "influencer_id": influencer_id,
            "claimed_at": claimed_at or datetime.now(timezone.utc).isoformat()}
    if campaign_id is not None:
        data["campaign_id"] = campaign_id
    return {"event_id": str(uuid.uuid4()), "event_type": "distribution.claimed",
            "event_version": 1, "occurred_at": data["claimed_at"], "source": "M09",
            "partition_key": claim_id, "trace_id": uuid.uuid4().hex, "data": data}
