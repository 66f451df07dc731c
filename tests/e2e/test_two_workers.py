"""Two workers sharing the partitions (their own broker and database, so that the session's
worker is not part of their group): requests to either work for any item, and due items
are posted once per platform."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from tests.clients import claim_all_and_wait
from tests.factories import new_claimed_event, unique
from tests.stack import NO_POSTING_LIMITS, open_stack

ITEMS = 30


@pytest.fixture(scope="module")
async def two_workers(database_server, fake_platforms, tmp_path_factory):
    async with open_stack(tmp_path_factory.mktemp("two-workers"),
                          database_server=database_server, platforms=fake_platforms) as stack:
        # one account posts every item: no posting limit (those have tests of their own)
        pair = [stack.worker(**NO_POSTING_LIMITS), stack.worker(**NO_POSTING_LIMITS)]
        await asyncio.gather(*(w.ready() for w in pair))
        yield stack


async def test_two_workers_publish_each_due_item_once_per_platform_and_serve_any_item(
        two_workers, fake_platforms):
    workers = two_workers.workers
    apis = [two_workers.api(w) for w in workers]
    influencer = unique("influencer")
    claimed = await claim_all_and_wait(two_workers.topics, apis,
                                       [new_claimed_event(influencer) for _ in range(ITEMS)])
    ids = [c.item_id for c in claimed]

    when = (datetime.now(timezone.utc) + timedelta(seconds=6)).isoformat()
    # at once, so that the last one is applied before the 2 s lead is gone (4 s for all of
    # them on a loaded machine); alternate workers: each serves any item
    answers = await asyncio.gather(*(
        apis[i % 2].post(item_id, "schedule", influencer,
                         {"platforms": ["tiktok", "instagram"], "scheduled_at": when})
        for i, item_id in enumerate(ids)))
    assert [code for code, _ in answers] == [200] * ITEMS, answers

    for i, item_id in enumerate(ids):
        await apis[(i + 1) % 2].wait_for_item(item_id, influencer,
                                              status="published", timeout=60)
    for item_id in ids:
        for platform in ("tiktok", "instagram"):
            assert len(fake_platforms.posts_for(item_id, platform)) == 1
            assert len(fake_platforms.calls_for(item_id, platform)) == 1
    # both workers applied commands: the partitions were shared, not owned by one
    for worker in workers:
        assert '"message": "command applied"' in worker.log_path.read_text(), worker.log_path
