"""Plain builders for the domain unit tests: items in each status, commands, a fixed clock.

Nothing here does I/O; every helper returns new immutable objects.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from app.domain import commands as c
from app.domain.model import Actor, Item, Outcome, Platform, PlatformState, Status
from app.domain.rules import Policy, claim_expires_at
from app.domain.transitions import Decision, decide

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
OWNER = "influencer-1"
STRANGER = "influencer-2"
POLICY = Policy()
LEASE = timedelta(minutes=2)


def claimed_item(claimed_at: datetime = NOW, **changes) -> Item:
    item = Item(id="claim-1", influencer_id=OWNER, clip_id="clip-1", campaign_id="campaign-1",
                status=Status.CLAIMED, claimed_at=claimed_at,
                claim_expires_at=claim_expires_at(claimed_at))
    return replace(item, **changes) if changes else item


def apply(item: Item, command: object, now: datetime = NOW, actor: str | None = OWNER,
          policy: Policy = POLICY, operator: bool = False) -> Decision:
    return decide(item, Actor(actor, operator) if actor is not None else None, command, now,
                  policy)


def scheduled_item(platforms: tuple[str, ...] = ("tiktok", "instagram"),
                   at: datetime = NOW + timedelta(hours=1)) -> Item:
    return apply(claimed_item(), c.Schedule(list(platforms), at.isoformat())).item


def publishing_item(platforms: tuple[str, ...] = ("tiktok", "instagram"),
                    now: datetime = NOW) -> Item:
    return apply(claimed_item(), c.Publish(list(platforms)), now=now).item


def lease_attempt(item: Item, platform: str, now: datetime = NOW) -> Item:
    """What leasing an attempt does before the call (the lease rule: app/db/queue.py).

    It is a row-level update outside the state machine (status `publishing`, attempts + 1,
    next_attempt_at = lease expiry), so the item's version is untouched.
    """
    p = Platform(platform)
    row = item.platform_status[p]
    row = replace(row, status=PlatformState.PUBLISHING, attempts=row.attempts + 1,
                  next_attempt_at=now + LEASE)
    return replace(item, platform_status={**item.platform_status, p: row})


def result(platform: str, outcome: str, key: int = 1, **fields) -> c.RecordPlatformResult:
    if outcome == "published":
        fields.setdefault("post_id", f"{platform}-post-{key}")
        fields.setdefault("post_url", f"https://{platform}.example/p/{platform}-post-{key}")
    return c.RecordPlatformResult(platform=platform, key_attempt=key, outcome=Outcome(outcome),
                                  **fields)


def answer(item: Item, platform: str, outcome: str, now: datetime = NOW, **fields) -> Decision:
    """Lease an attempt for the platform, then record the platform's answer to it."""
    item = lease_attempt(item, platform, now)
    key = item.platform_status[Platform(platform)].key_attempt
    return apply(item, result(platform, outcome, key, **fields), now=now)


def published_item(platforms: tuple[str, ...] = ("tiktok", "instagram")) -> Item:
    item = publishing_item(platforms)
    for p in platforms:
        item = answer(item, p, "published").item
    assert item.status is Status.PUBLISHED
    return item


def failed_item() -> Item:
    """TikTok published, Instagram refused for good: the item failed."""
    item = publishing_item(("tiktok", "instagram"))
    item = answer(item, "tiktok", "published").item
    item = answer(item, "instagram", "rejected", error="caption rejected").item
    assert item.status is Status.FAILED
    return item


def item_in(status: Status) -> Item:
    return {
        Status.CLAIMED: claimed_item,
        Status.SCHEDULED: scheduled_item,
        Status.PUBLISHING: publishing_item,
        Status.PUBLISHED: published_item,
        Status.FAILED: failed_item,
    }[status]()
