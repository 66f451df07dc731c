"""Test data: unique ids, claimed events as M09 sends them, and rows written straight into
a test's database for the in-process tests of queries, handlers and constraints."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from app.claims_out import claimed_event

__all__ = ["claim", "claim_data", "claimed_event", "make_item", "make_platform_row", "new_claimed_event",
           "unique"]


def unique(prefix: str) -> str:
    """An id no other test uses, so that tests sharing a database or topic never meet."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_claimed_event(influencer: str | None = None) -> dict:
    """A claim of a new item and clip in a new campaign (by a new influencer unless given)."""
    return claimed_event(unique("claim"), unique("clip"), influencer or unique("influencer"),
                         unique("campaign"))


def claim_data(**fields):
    """A claim of a new item (`app.wire.ClaimData`), claimed now unless `fields` say else."""
    from app.wire import ClaimData  # here, so that importing ids and events stays light

    return ClaimData(**{"claim_id": unique("claim"), "clip_id": unique("clip"),
                        "influencer_id": unique("inf"), "campaign_id": unique("camp"),
                        "claimed_at": datetime.now(timezone.utc).replace(microsecond=0),
                        **fields})


async def claim(pool, now: datetime | None = None):
    """A claimed item, ingested as the claims agent does it (`handlers.ingest_claims`), one
    minute before `now`; its claim (`app.wire.ClaimData`)."""
    from app import handlers

    now = now or datetime.now(timezone.utc).replace(microsecond=0)
    claimed = claim_data(claimed_at=now - timedelta(minutes=1))
    result = await handlers.ingest_claims(pool, [claimed])
    assert result.created == [claimed.claim_id]
    return claimed


async def make_item(conn, status: str | None = None, scheduled_at: datetime | None = None,
                    due_enqueued_at: datetime | None = None,
                    platforms: Sequence[str] = ("tiktok",), **fields) -> str:
    """An item row inserted with SQL (no command, no event), for tests of queries and
    constraints; its id. Without `status`, an item with a `scheduled_at` (zone UTC) is
    `scheduled`, one without is `claimed`. `fields` set any other column, or override one
    (`id`, `influencer_id`, `clip_id`, `campaign_id`, `timezone`, ...)."""
    now = datetime.now(timezone.utc)
    item_id = fields.pop("id", None) or unique("item")
    row = {"id": item_id, "influencer_id": f"inf-{item_id}", "clip_id": f"clip-{item_id}",
           "campaign_id": "camp",
           "status": status or ("scheduled" if scheduled_at is not None else "claimed"),
           "claimed_at": now, "claim_expires_at": now + timedelta(days=1),
           "scheduled_at": scheduled_at, "timezone": "UTC" if scheduled_at is not None else None,
           "platforms": list(platforms), "due_enqueued_at": due_enqueued_at, **fields}
    await _insert(conn, "distribution_items", row)
    return item_id


async def make_platform_row(conn, item_id: str, platform: str, status: str = "pending",
                            next_attempt_at: datetime | None = None, attempts: int = 0,
                            key_attempt: int = 1, post_id: str | None = None) -> None:
    """One platform's publishing row of an item, inserted with SQL."""
    await _insert(conn, "distribution_platform_status",
                  {"item_id": item_id, "platform": platform, "status": status,
                   "attempts": attempts, "key_attempt": key_attempt,
                   "next_attempt_at": next_attempt_at, "post_id": post_id})


async def _insert(conn, table: str, row: dict) -> None:
    marks = ", ".join(f"${n}" for n in range(1, len(row) + 1))
    await conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})",
                       *row.values())
