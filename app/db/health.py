"""Whether the database answers (the readiness check's database part)."""

from __future__ import annotations

import asyncpg

from app.db.queries import Q


async def ping(pool: asyncpg.Pool, timeout: float) -> None:
    """Returns once the database answered a trivial query; raises when no connection or no
    answer came within `timeout` seconds (each)."""
    async with pool.acquire(timeout=timeout) as conn:
        await conn.fetchval(Q["ping"], timeout=timeout)
