"""One transaction holding the repositories: commits when the block ends, rolls back on error."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from .items import ItemRepository
from .outbox import OutboxRepository
from .pool import translate_errors
from .queries import Q


class CommandLog:
    """Applied commands and their replies, so that a command delivered twice acts once."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def reply_for(self, command_id: str) -> dict[str, Any] | None:
        return await self.conn.fetchval(Q["processed_command"], command_id)

    async def record(self, command_id: str, item_id: str, kind: str,
                     reply: dict[str, Any]) -> None:
        await self.conn.execute(Q["record_processed_command"], command_id, item_id, kind, reply)


@dataclass
class UnitOfWork:
    conn: asyncpg.Connection

    def __post_init__(self) -> None:
        self.items = ItemRepository(self.conn)
        self.outbox = OutboxRepository(self.conn)
        self.commands = CommandLog(self.conn)


@contextlib.asynccontextmanager
async def unit_of_work(pool: asyncpg.Pool) -> AsyncIterator[UnitOfWork]:
    async with translate_errors(), pool.acquire() as conn, conn.transaction():
        yield UnitOfWork(conn)
