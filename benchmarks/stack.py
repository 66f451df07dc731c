"""The real stack a run measures: PostgreSQL (embedded, or a fresh database on the server
given), the broker (embedded Tansu, or the one given) and worker processes started with the
benchmark's settings. Also the helpers the workloads share: tokens, HTTP, bulk rows."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from tqdm import tqdm

from app.cli import migrate_database
from app.embedded import Broker, WorkerProcess, start_postgres
from app.settings import Settings
from benchmarks.cpu import CpuMeter, postmaster_of
from web.auth import issue_token

ROOT = Path(__file__).resolve().parents[1]
JWT_SECRET = secrets.token_urlsafe(32)
OPERATOR_SCOPE = Settings.model_fields["operator_scope"].default

#: Every worker's settings: fresh secrets; no rate limit and no posting limits in the way
#: (one process plays every caller, and thousands of posts go out in seconds); the
#: simulated platforms (in-process, no network); the production timers otherwise, so that
#: lateness is what a deployment would see.
WORKER_SETTINGS = {
    "DISTRIBUTION_JWT_SECRET": JWT_SECRET,
    "DISTRIBUTION_OPERATOR_SCOPE": OPERATOR_SCOPE,  # whatever the caller's environment says
    "DISTRIBUTION_DOWNLOAD_SECRET": secrets.token_urlsafe(32),
    "DISTRIBUTION_RATE_LIMIT_PER_SECOND": "1000000",
    "DISTRIBUTION_RATE_LIMIT_BURST": "1000000",
    "DISTRIBUTION_QUOTA_INSTAGRAM_POSTS_PER_24H": "0",
    "DISTRIBUTION_QUOTA_TIKTOK_POSTS_PER_24H": "0",
    "DISTRIBUTION_QUOTA_YOUTUBE_UPLOADS_PER_PACIFIC_DAY": "0",
    "DISTRIBUTION_PLATFORM_MODE": "simulated",
    "DISTRIBUTION_TOPIC_PARTITIONS": "8",
    "DISTRIBUTION_LOG_LEVEL": "WARNING",
    "DISTRIBUTION_LOG_JSON": "true",
}


@functools.lru_cache(maxsize=4096)
def token(influencer: str) -> str:
    return issue_token(influencer, JWT_SECRET)


def operator_token() -> str:
    """A token with the operator scope the workers are given."""
    return issue_token("bench-operator", JWT_SECRET, scope=OPERATOR_SCOPE)


@dataclass
class Stack:
    """What `open_stack` assembled. `run_id` prefixes every id a run makes, so a shared
    broker's leftovers never count."""

    database_url: str
    bootstrap: str
    server_url: str  # where the run makes databases (`database()`)
    pool: asyncpg.Pool
    session: aiohttp.ClientSession
    workdir: Path
    postgres_version: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: list[WorkerProcess] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # "worker-1" -> MB
    #: The processes whose CPU time a workload reads, with their descendants: "PostgreSQL"
    #: and "broker" when they run on this machine (`cpu_meter`).
    servers: dict[str, int] = field(default_factory=dict)
    started_workers: int = 0  # names each new worker (worker-1, worker-2, ...) for good

    async def start_worker(self, database_url: str | None = None) -> WorkerProcess:
        """One more worker process (on the run's database unless told), ready (its /readyz
        answered)."""
        self.started_workers += 1
        n = self.started_workers
        worker = WorkerProcess(database_url or self.database_url, self.bootstrap,
                               self.workdir / f"worker-{n}.log", cwd=ROOT,
                               env={**WORKER_SETTINGS,
                                    "DISTRIBUTION_DATA_DIR": str(self.workdir / f"worker-{n}")})
        self.workers.append(worker.start())
        return await worker.ready()

    def stop_worker(self, worker: WorkerProcess) -> None:
        self.note_rss()
        worker.stop()
        self.workers.remove(worker)

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """Another migrated database on the run's server, dropped on the way out."""
        url = await _fresh_database(self.server_url)
        try:
            await migrate_database(url)
            yield url
        finally:
            await _drop_database(self.server_url, url)

    def note_rss(self) -> None:
        """Keeps each running worker's peak RSS (VmHWM is a high-water mark: reading it
        before a worker stops gives its peak over its whole life)."""
        from benchmarks.measure import peak_rss_mb

        for worker in self.workers:
            if worker.process and worker.process.poll() is None:
                name = worker.log_path.stem
                self.peak_rss_mb[name] = max(self.peak_rss_mb.get(name, 0.0),
                                             peak_rss_mb(worker.process.pid))

    def exited_workers(self) -> list[str]:
        """What each worker that exited before the run stopped it last logged."""
        return [f"{w.log_path.stem} exited ({w.process.returncode}); its log ends:\n\n```\n"
                f"{w.log_tail(15)[-3000:]}\n```" for w in self.workers
                if w.process and w.process.poll() is not None]

    def cpu_meter(self, clients: bool = False) -> CpuMeter:
        """CPU time of the workers running now and the servers on this machine over a
        workload; with `clients`, the benchmark's own process too (its clients)."""
        return CpuMeter({**{w.log_path.stem: w.process.pid for w in self.workers
                            if w.process is not None}, **self.servers},
                        alone={"benchmark (clients)": os.getpid()} if clients else {})

    def items_url(self, worker: WorkerProcess, item_id: str, action: str = "") -> str:
        return f"{worker.url}/api/v1/distribution/items/{item_id}" + (
            f"/{action}" if action else "")

    async def call(self, method: str, url: str, influencer: str, body=None) -> int:
        async with self.session.request(method, url, json=body, headers={
                "Authorization": f"Bearer {token(influencer)}"}) as response:
            await response.read()
            return response.status


async def _fresh_database(server_url: str) -> str:
    """A new database on the server at `server_url` (its own tables are never touched)."""
    name = f"distribution_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(server_url, name)


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _drop_database(server_url: str, url: str) -> None:
    from urllib.parse import urlsplit

    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def open_stack(database_url: str | None = None, bootstrap: str | None = None,
                     keep_logs: Path | None = None) -> AsyncIterator[Stack]:
    """The stack for one run; everything it started is stopped, and its database dropped,
    on the way out. Workers are started by the workloads (`stack.start_worker()`)."""
    with tempfile.TemporaryDirectory(prefix="distribution-bench-") as tmp:
        workdir = keep_logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as parts:
            if database_url:
                server_url = database_url
            else:
                server, server_url = await asyncio.to_thread(start_postgres,
                                                             Path(tmp) / "postgres")
                parts.callback(server.cleanup)
            url = await _fresh_database(server_url)
            parts.push_async_callback(_drop_database, server_url, url)
            await migrate_database(url)
            servers: dict[str, int] = {}
            if not bootstrap:
                broker = Broker(log_path=workdir / "broker.log").start()
                parts.callback(broker.stop)
                bootstrap = broker.bootstrap
                servers["broker"] = broker.process.pid
            pool = await asyncpg.create_pool(url, min_size=1, max_size=40)
            parts.push_async_callback(pool.close)
            session = await parts.enter_async_context(aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=128),
                timeout=aiohttp.ClientTimeout(total=60)))
            version = await pool.fetchval("SHOW server_version")
            postmaster = postmaster_of(await pool.fetchval("SELECT pg_backend_pid()"))
            servers |= {"PostgreSQL": postmaster} if postmaster else {}
            stack = Stack(url, bootstrap, server_url, pool, session, workdir, version,
                          servers=servers)

            def stop_workers() -> None:
                stack.note_rss()
                for worker in list(stack.workers):
                    worker.stop()
            parts.callback(stop_workers)
            yield stack


def progress(iterable=None, **kwargs) -> tqdm:
    """A progress bar on a terminal, nothing in a log (CI)."""
    return tqdm(iterable, leave=False, disable=None, **kwargs)


async def wait_with_progress(count: Callable[[], Awaitable[int]], total: int, desc: str,
                             timeout: float, interval: float = 0.1) -> None:
    """Polls `count()` until it reaches `total`, showing a progress bar; TimeoutError after
    `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with progress(total=total, desc=desc, unit="") as bar:
        while True:
            done = await count()
            bar.update(done - bar.n)
            if done >= total:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"{desc}: {done} of {total} after {timeout} s")
            await asyncio.sleep(interval)


async def gather_with_progress(jobs: list[Awaitable], desc: str) -> list:
    """Runs the jobs at once, a progress bar counting those done."""
    with progress(total=len(jobs), desc=desc) as bar:
        async def one(job):
            result = await job
            bar.update()
            return result
        return await asyncio.gather(*(one(j) for j in jobs))


async def insert_items(pool: asyncpg.Pool, prefix: str, count: int, *, start: int = 1,
                       status_sql: str = "'claimed'", due_sql: str = "NULL",
                       platforms: str = "'{}'", influencers: int = 1000,
                       table: str = "distribution_items") -> None:
    """`count` item rows with ids `{prefix}-{n}` (n from `start`) made by one generate_series
    INSERT, as the claims agent leaves them, or as a `schedule` command does when the SQL
    expressions of n say so (`status_sql`, `due_sql` for scheduled_at, zone UTC); owned by
    `influencers` influencers `{prefix}-inf-{n % influencers}` (no posting limits apply)."""
    await pool.execute(f"""
        INSERT INTO {table} (id, influencer_id, clip_id, campaign_id, status, claimed_at,
                             claim_expires_at, scheduled_at, timezone, platforms)
        SELECT $1 || '-' || n, $1 || '-inf-' || (n % $3), $1 || '-clip-' || n, 'bench',
               {status_sql}, now() - interval '1 minute', now() + interval '7 days',
               {due_sql}, CASE WHEN ({due_sql}) IS NOT NULL THEN 'UTC' END, {platforms}::text[]
        FROM generate_series($4::int, $4::int + $2 - 1) AS n""", prefix, count, influencers,
                       start)


def item_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n}" for n in range(1, count + 1)]


def influencer_of(prefix: str, n: int, influencers: int = 1000) -> str:
    """The owner `insert_items` gave item n."""
    return f"{prefix}-inf-{n % influencers}"
