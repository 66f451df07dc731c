"""Servers started once per test session: PostgreSQL (a fresh database on the server at
DATABASE_URL, or an embedded one), the Tansu broker on a free port, and, for the
end-to-end tests, the service itself as a real worker process."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from app.cli import migrate_database
from app.embedded import Broker, start_postgres
from app.db.pool import create_pool
from tests.support import DOWNLOAD_SECRET, JWT_SECRET

# Every command the tests run (workers, `distribution replay`) gets real-length secrets.
os.environ.setdefault("DISTRIBUTION_JWT_SECRET", JWT_SECRET)
os.environ.setdefault("DISTRIBUTION_DOWNLOAD_SECRET", DOWNLOAD_SECRET)



def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def database_server(tmp_path_factory):
    """The URL of a PostgreSQL server we may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    server, uri = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield uri
    server.cleanup()


@pytest.fixture(scope="session")
async def empty_database(database_server):
    """Makes empty databases (no migrations, no `clips`); drops them at the end."""
    made: list[str] = []

    async def make(prefix: str = "distribution_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(database_server)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        made.append(name)
        return _with_database(database_server, name)

    yield make
    admin = await asyncpg.connect(database_server)
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def create_database(empty_database):
    """Makes fresh migrated databases with M09's `clips` stand-in."""

    async def make(prefix: str = "distribution_test") -> str:
        url = await empty_database(prefix)
        await migrate_database(url, stand_in_clips=True)
        return url

    return make


@pytest.fixture(scope="session")
async def database_url(create_database) -> str:
    """The session's database."""
    return await create_database()


@pytest.fixture(scope="session")
async def pool(database_url):
    p = await create_pool(database_url, 1, 8)
    yield p
    await p.close()


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = Broker(log_path=tmp_path_factory.mktemp("broker") / "broker.log").start()
    yield b
    b.stop()
