"""One transaction holding the repositories. Nothing is kept unless `commit()` is called:
leaving the block any other way rolls back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from .accounts import AccountHolds
from .clips import ClipRepository
from .items import ItemRepository
from .outbox import OutboxRepository
from .posts import AccountPosts
from .pool import CONNECTION_ERRORS, translate_errors
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


class UnitOfWork:
    def __init__(self, conn: asyncpg.Connection, transaction) -> None:
        self.conn = conn
        self.items = ItemRepository(conn)
        self.outbox = OutboxRepository(conn)
        self.commands = CommandLog(conn)
        self.clips = ClipRepository(conn)
        self.posts = AccountPosts(conn)
        self.accounts = AccountHolds(conn)
        self._transaction = transaction
        self.committed = False

    def savepoint(self):
        """A nested transaction: leaving it by an exception undoes only what it did."""
        return self.conn.transaction()

    async def commit(self) -> None:
        await self._transaction.commit()
        self.committed = True


@contextlib.asynccontextmanager
async def unit_of_work(pool: asyncpg.Pool) -> AsyncIterator[UnitOfWork]:
    async with translate_errors(), pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        uow = UnitOfWork(conn, transaction)
        try:
            yield uow
        finally:
            if not uow.committed:
                # a lost connection has rolled back already; its error is the one to report
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await transaction.rollback()
