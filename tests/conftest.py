"""Servers started once per test session: PostgreSQL (the server at DATABASE_URL, or an
embedded one) with a template database migrated once, and the Tansu broker on a free port.
Each test that asks for `database_url` or `pool` gets a database of its own holding what the
template holds; the end-to-end tests share one for their worker (tests/e2e/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.embedded import Broker
from tests.databases import DatabaseServer, EmbeddedPostgres
from tests.support import DOWNLOAD_SECRET, JWT_SECRET

# Every command the tests run (workers, `distribution replay`) gets real-length secrets.
os.environ.setdefault("DISTRIBUTION_JWT_SECRET", JWT_SECRET)
os.environ.setdefault("DISTRIBUTION_DOWNLOAD_SECRET", DOWNLOAD_SECRET)


@pytest.fixture(scope="session")
async def database_server(tmp_path_factory) -> AsyncIterator[DatabaseServer]:
    """The PostgreSQL server the session makes its databases on (DATABASE_URL, or an
    embedded one); they are dropped at the end."""
    embedded = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        embedded = await EmbeddedPostgres(tmp_path_factory.mktemp("postgres")).start()
        url = embedded.uri
    server = DatabaseServer(url)
    try:
        yield server
    finally:
        await server.close()
        if embedded is not None:
            embedded.cleanup()


@pytest.fixture(scope="session")
def create_database(database_server):
    """`await create_database(prefix)`: a fresh migrated database, with M09's `clips`
    stand-in, cloned from the template; its URL. Dropped at the end of the session."""
    return database_server.clone


@pytest.fixture(scope="session")
def empty_database(database_server):
    """`await empty_database(prefix)`: a database without migrations or `clips`; its URL."""
    return database_server.empty


@pytest.fixture
async def database_url(database_server) -> AsyncIterator[str]:
    """This test's own migrated database, holding what a fresh clone of the template holds
    (see `DatabaseServer.lease`); no other test uses it while this one runs."""
    url = await database_server.lease()
    yield url
    await database_server.give_back(url)


@pytest.fixture
async def pool(database_server, database_url) -> asyncpg.Pool:
    """A pool on this test's own database (8 connections at most). It serves the next test
    that gets the same database too: close it only if the test must."""
    return await database_server.pool_on(database_url)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = Broker(log_path=tmp_path_factory.mktemp("broker") / "broker.log").start()
    yield b
    b.stop()
