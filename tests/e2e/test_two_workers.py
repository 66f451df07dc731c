"""Two workers sharing the partitions (their own broker and database, so that the session's
worker is not part of their group): requests to either work for any item, and due items
are posted once per platform."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from app.embedded import Broker
from tests.service import Api, ServiceProcess, Topics, claimed_event
from tests.support import unique

ITEMS = 30


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    b = Broker(log_path=tmp_path_factory.mktemp("broker2") / "broker.log").start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
async def workers(create_database, own_broker, fake_platforms, tmp_path_factory):
    url = await create_database()
    logs = tmp_path_factory.mktemp("workers")
    env = {"DISTRIBUTION_PLATFORM_GATEWAY_URL": fake_platforms.url}
    pair = [ServiceProcess(url, own_broker.bootstrap, logs / f"worker-{i}.log", env=env).start()
            for i in (1, 2)]
    try:
        await asyncio.gather(*(w.ready() for w in pair))
        yield pair
    finally:
        for w in pair:
            w.stop()


async def test_two_workers_publish_each_due_item_once_per_platform_and_serve_any_item(
        workers, own_broker, fake_platforms):
    topics = await Topics(own_broker.bootstrap).start()
    try:
        async with aiohttp.ClientSession() as session:
            apis = [Api(w.url, session) for w in workers]
            influencer = unique("influencer")
            ids = [unique("claim") for _ in range(ITEMS)]
            for item_id in ids:
                await topics.produce("distribution.claimed",
                                     claimed_event(item_id, unique("clip"), influencer,
                                                   unique("campaign")), key=item_id)
            for i, item_id in enumerate(ids):
                await apis[i % 2].wait_for_item(item_id, influencer)

            when = (datetime.now(timezone.utc) + timedelta(seconds=4)).isoformat()
            for i, item_id in enumerate(ids):  # alternate workers: each serves any item
                code, body = await apis[i % 2].post(
                    item_id, "schedule", influencer,
                    {"platforms": ["tiktok", "instagram"], "scheduled_at": when})
                assert code == 200, body

            for i, item_id in enumerate(ids):
                await apis[(i + 1) % 2].wait_for_item(item_id, influencer,
                                                      status="published", timeout=60)
    finally:
        await topics.stop()
    for item_id in ids:
        for platform in ("tiktok", "instagram"):
            assert len(fake_platforms.posts_for(item_id, platform)) == 1
            assert len(fake_platforms.calls_for(item_id, platform)) == 1
    # both workers applied commands: the partitions were shared, not owned by one
    for worker in workers:
        assert '"message": "command applied"' in worker.log_path.read_text(), worker.log_path
