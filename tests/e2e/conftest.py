"""One worker process for the end-to-end tests, against the session's database and broker,
posting to a fake platform server (a real HTTP server on loopback)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes.platform_server import FakePlatformServer
from tests.service import Api, ServiceProcess, Topics, claimed_event
from tests.support import unique


@pytest.fixture(scope="session")
def fake_platforms():
    fake = FakePlatformServer()
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture(scope="session")
async def service(database_url, broker, fake_platforms, tmp_path_factory):
    proc = ServiceProcess(database_url, broker.bootstrap,
                          tmp_path_factory.mktemp("worker") / "worker.log",
                          env={"DISTRIBUTION_PLATFORM_GATEWAY_URL": fake_platforms.url,
                               "DISTRIBUTION_PLATFORM_TIMEOUT_SECONDS": "2"}).start()
    try:
        await proc.ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
async def topics(broker):
    t = await Topics(broker.bootstrap).start()
    yield t
    await t.stop()


@pytest.fixture
async def api(service):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Api(service.url, session)


@pytest.fixture
async def claimed_item(api, topics):
    """A new item in `claimed`, once the service shows it: (item id, influencer)."""
    item_id, influencer = unique("claim"), unique("influencer")
    event = claimed_event(item_id, unique("clip"), influencer, unique("campaign"))
    await topics.produce("distribution.claimed", event, key=item_id)
    await api.wait_for_item(item_id, influencer)
    return item_id, influencer
