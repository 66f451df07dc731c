"""One worker process for all the end-to-end tests (starting one takes seconds), on a
database of its own cloned from the template, the session's broker, a fake platform
server and a fake M06 (real HTTP servers on loopback)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.clients import Api, claim_and_wait
from fakes.gateway import FakePlatformServer
from tests.stack import open_stack


@pytest.fixture(scope="session")
def fake_platforms():
    fake = FakePlatformServer()
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture(scope="session")
async def service_stack(database_server, broker, fake_platforms, tmp_path_factory):
    async with open_stack(tmp_path_factory.mktemp("service"), database_server=database_server,
                          broker=broker, platforms=fake_platforms) as stack:
        # a low YouTube limit, so that a full Pacific day takes three posts (test_lifecycle)
        await stack.started_worker(DISTRIBUTION_QUOTA_YOUTUBE_UPLOADS_PER_PACIFIC_DAY="2")
        yield stack


@pytest.fixture(scope="session")
def service(service_stack):
    """The session's worker process."""
    return service_stack.workers[0]


@pytest.fixture(scope="session")
def pool(service_stack):
    """Here, the service's database: one for the session, since the worker is started
    once (the tests keep apart by unique ids), not the fresh one per test of the root
    conftest."""
    return service_stack.pool


@pytest.fixture(scope="session")
def fake_media(service_stack):
    """M06 as the session's worker reaches it."""
    return service_stack.media


@pytest.fixture(scope="session")
def topics(service_stack):
    return service_stack.topics


@pytest.fixture
async def api(service):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Api(service.url, session)


@pytest.fixture
async def claimed_item(api, topics):
    """A new item in `claimed`, once the service shows it: (item id, influencer)."""
    claimed = await claim_and_wait(topics, api)
    return claimed.item_id, claimed.influencer
