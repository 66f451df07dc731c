"""One worker in direct mode for the session: it publishes through fakes of the four
platforms' own APIs (none of which recognises a repeated post), takes tokens from a fake
M10 and media from a fake M06, on a broker and a database of its own (a worker of another
stack on the same broker would share its consumer groups, and take its claims)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.clients import Api
from tests.stack import open_stack


@pytest.fixture(scope="session")
async def direct_stack(database_server, tmp_path_factory):
    async with open_stack(tmp_path_factory.mktemp("direct"), database_server=database_server,
                          direct=True) as stack:
        await stack.started_worker()
        yield stack


@pytest.fixture(scope="session")
def fakes(direct_stack):
    return direct_stack.direct


@pytest.fixture(scope="session")
def pool(direct_stack):
    return direct_stack.pool


@pytest.fixture(scope="session")
def topics(direct_stack):
    return direct_stack.topics


@pytest.fixture
async def api(direct_stack):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Api(direct_stack.workers[0].url, session)
