"""The asyncpg pool, its JSON codecs, and driver errors turned into ours."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import orjson

from app.domain.errors import Unavailable

#: What a lost or refused database connection looks like to asyncpg.
CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.ConnectionDoesNotExistError,
    TimeoutError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        # orjson reads what the server sends several times faster than json (items' JSON
        # columns, replies: ~5 % of due publishing's samples); writing stays with json,
        # which takes any integer
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=orjson.loads,
                                  schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is (an open transaction is still rolled
    back): the service sets no session state and takes only transaction-scoped advisory
    locks, so asyncpg's reset query would be a round trip per transaction for nothing."""


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection,
        reset=_keep_session, command_timeout=30, timeout=5,
        max_inactive_connection_lifetime=60)


@contextlib.asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """A database that cannot be reached becomes `Unavailable` (HTTP 503)."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise Unavailable("the database cannot be reached", reason=type(exc).__name__) from exc


async def delete_in_batches(pool: asyncpg.Pool, query: str, cutoff: datetime,
                            batch: int) -> int:
    """Run a `DELETE ... LIMIT $2` query until it deletes fewer than `batch` rows; the count.
    Each batch is a short transaction of its own, so pruning never holds many locks."""
    total = 0
    while True:
        async with translate_errors(), pool.acquire() as conn:
            status = await conn.execute(query, cutoff, batch)
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch:
            return total


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, timeout=10)
    await _init_connection(conn)
    return conn
