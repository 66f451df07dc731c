"""Posting limits checked by the handlers on the real database: an account's published,
publishing and scheduled posts count; a plan that does not fit is refused (409
quota_exceeded) with the earliest time that would, and changes nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from app import handlers
from app.db.posts import record_account_cap
from app.domain.model import Platform
from app.domain.quota import QuotaRule, Window
from app.domain.rules import Policy
from app.wire import make_command
from tests.factories import claim_data, unique
from tests.support import apply_in_process

H = timedelta(hours=1)
POLICY = Policy(min_schedule_lead=timedelta(0),
                quotas={Platform.INSTAGRAM: QuotaRule(2, Window.ROLLING_24H)})


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


async def items_of(pool, influencer: str, count: int, now: datetime) -> list[str]:
    claims = [claim_data(influencer_id=influencer, claimed_at=now - timedelta(minutes=1))
              for _ in range(count)]
    assert len((await handlers.ingest_claims(pool, claims)).created) == count
    return [cl.claim_id for cl in claims]


async def send(pool, item_id: str, influencer: str | None, kind: str, payload: dict,
               now: datetime) -> dict:
    command = make_command(kind, item_id, unique("cmd"), payload, actor=influencer)
    return await apply_in_process(pool, command, now, POLICY)


def schedule(when: datetime, platforms=("instagram",)) -> dict:
    return {"platforms": list(platforms), "scheduled_at": when.isoformat()}


async def test_a_schedule_past_the_cap_is_refused_with_the_earliest_time_that_fits(pool):
    now, influencer = utcnow(), unique("inf")
    first, second, third = await items_of(pool, influencer, 3, now)
    assert (await send(pool, first, influencer, "schedule", schedule(now + H), now))["ok"]
    assert (await send(pool, second, influencer, "schedule", schedule(now + 2 * H), now))["ok"]

    refused = await send(pool, third, influencer, "schedule", schedule(now + 3 * H), now)

    assert refused["error"]["code"] == "quota_exceeded"
    earliest = datetime.fromisoformat(refused["error"]["details"]["earliest"])
    assert earliest == now + 25 * H  # when the first scheduled post leaves the window
    assert refused["error"]["details"]["platform"] == "instagram"
    row = await pool.fetchrow("SELECT status, version FROM distribution_items WHERE id = $1",
                              third)
    assert (row["status"], row["version"]) == ("claimed", 1)  # nothing changed
    # at the time it named, it fits; and a platform without a limit never counts
    assert (await send(pool, third, influencer, "schedule", schedule(earliest), now))["ok"]


async def test_published_and_publishing_posts_count_and_other_accounts_do_not(pool):
    now, influencer = utcnow(), unique("inf")
    published, publishing, planned = await items_of(pool, influencer, 3, now)
    await send(pool, published, influencer, "publish", {"platforms": ["instagram"]}, now)
    assert (await send(pool, published, None, "platform-result", {
        "platform": "instagram", "key_attempt": 1, "outcome": "published", "post_id": "ig-1",
        "post_url": "https://instagram.example/ig-1"}, now))["item"]["status"] == "published"
    assert (await send(pool, publishing, influencer, "publish",
                       {"platforms": ["instagram"]}, now))["ok"]

    refused = await send(pool, planned, influencer, "publish",
                         {"platforms": ["snapchat", "instagram"]}, now)
    assert refused["error"]["code"] == "quota_exceeded"

    someone_else = unique("inf")
    [other] = await items_of(pool, someone_else, 1, now)
    assert (await send(pool, other, someone_else, "publish", {"platforms": ["instagram"]},
                       now))["ok"]


async def test_a_reschedule_is_checked_without_counting_the_item_itself(pool):
    now, influencer = utcnow(), unique("inf")
    first, second = await items_of(pool, influencer, 2, now)
    await send(pool, first, influencer, "schedule", schedule(now + H), now)
    await send(pool, second, influencer, "schedule", schedule(now + 30 * H), now)
    # moving the second post next to the first: two in a day, still within the cap of 2
    moved = await send(pool, second, influencer, "reschedule",
                       {"scheduled_at": (now + 2 * H).isoformat()}, now)
    assert moved["ok"], moved


async def test_concurrent_plans_of_one_account_never_exceed_the_cap(pool):
    now, influencer = utcnow(), unique("inf")
    ids = await items_of(pool, influencer, 6, now)
    replies = await asyncio.gather(*(send(pool, item_id, influencer, "schedule",
                                          schedule(now + H), now) for item_id in ids))
    assert sum(1 for r in replies if r["ok"]) == 2
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"quota_exceeded"}


async def test_the_cap_instagram_said_for_the_account_replaces_the_configured_one(pool):
    now = utcnow()
    lower, higher = unique("inf"), unique("inf")
    await record_account_cap(pool, lower, "instagram", 1)   # configured: 2
    await record_account_cap(pool, higher, "instagram", 3)
    first, second = await items_of(pool, lower, 2, now)
    assert (await send(pool, first, lower, "schedule", schedule(now + H), now))["ok"]
    refused = await send(pool, second, lower, "schedule", schedule(now + 2 * H), now)
    assert refused["error"]["code"] == "quota_exceeded"
    assert refused["error"]["details"]["cap"] == 1
    ids = await items_of(pool, higher, 3, now)
    for n, item_id in enumerate(ids, start=1):  # the third fits under Instagram's own 3
        assert (await send(pool, item_id, higher, "schedule", schedule(now + n * H),
                           now))["ok"], n


async def test_in_one_batch_a_plan_counts_the_posts_planned_before_it(pool):
    """A batch keeps its writes until its end, but a posting-limit check reads them first:
    the third schedule of the batch finds the two before it."""
    now, influencer = utcnow(), unique("inf")
    items = await items_of(pool, influencer, 3, now)
    batch = [make_command("schedule", item, unique("cmd"), schedule(now + (n + 1) * H),
                          actor=influencer)
             for n, item in enumerate(items)]
    results = await handlers.handle_batch(pool, batch, now, POLICY)
    assert [r.reply["ok"] for r in results] == [True, True, False]
    assert results[2].reply["error"]["code"] == "quota_exceeded"
