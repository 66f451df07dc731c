"""One transaction holding the repositories. Nothing is kept unless `commit()` is called:
leaving the block any other way rolls back.

The repositories of items, outbox and applied commands keep their writes until `flush()`
(or the commit, or the end of a savepoint), so that a batch of commands sends each
statement once for all of them. A read that must see them (the posting limits) flushes
first."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg

from .accounts import AccountHolds
from .clips import ClipRepository
from .items import ItemRepository
from .outbox import OutboxRepository
from .posts import AccountPosts
from .pool import CONNECTION_ERRORS, translate_errors
from .queries import Q
from .writes import BatchWrites


class CommandLog:
    """Applied commands and their replies, so that a command delivered twice acts once."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._recorded: list[tuple] = []

    async def replies_for(self, command_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The first replies of those of the commands applied before."""
        rows = await self.conn.fetch(Q["processed_commands"], list(command_ids))
        return {r["command_id"]: r["reply"] for r in rows}

    def record(self, command_id: str, item_id: str, kind: str, reply: dict[str, Any]) -> None:
        """Written at the next flush."""
        self._recorded.append((command_id, item_id, kind, reply))

    def write_into(self, writes: BatchWrites) -> None:
        writes.commands.extend(self._recorded)
        self.discard()

    def discard(self) -> None:
        self._recorded.clear()


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

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction, flushed as it ends: leaving it by an exception undoes
        only what it did, written or not."""
        try:
            async with self.conn.transaction():
                yield
                await self.flush()
        except BaseException:
            self._discard()
            raise

    async def flush(self) -> None:
        """Writes what the repositories keep, in one statement."""
        writes = BatchWrites()
        for repository in self._writers():
            repository.write_into(writes)
        await writes.send(self.conn)

    def _discard(self) -> None:
        for repository in self._writers():
            repository.discard()

    def _writers(self):
        return self.items, self.outbox, self.commands

    async def commit(self) -> None:
        await self.flush()
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
