"""The one way the tests assemble servers around the service: a broker, a database, a fake
platform server, clients for the topics and HTTP, and as many worker processes as the test
starts. Each part is the stack's own (started and stopped with it) or a shared one passed in;
the database is a fresh clone on the shared server, or an embedded PostgreSQL of the stack's
own, for tests that stop or pause it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from app.db.pool import create_pool
from app.embedded import Broker, WorkerProcess
from tests.clients import Api, Topics
from tests.databases import DatabaseServer, EmbeddedPostgres
from fakes.direct import DirectFakes
from fakes.gateway import FakePlatformServer
from fakes.media import FakeMediaServer
from tests.support import DOWNLOAD_SECRET, JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]

#: Settings of every worker the tests start: the secrets their tokens are signed with, fast
#: timers, backoff and schedule lead so that scenarios take seconds, and no rate limit in
#: the way (tests call fast and often, as one caller; the limit has a test of its own).
TEST_WORKER_SETTINGS = {
    "DISTRIBUTION_JWT_SECRET": JWT_SECRET,
    "DISTRIBUTION_DOWNLOAD_SECRET": DOWNLOAD_SECRET,
    "DISTRIBUTION_RATE_LIMIT_PER_SECOND": "10000",
    "DISTRIBUTION_RATE_LIMIT_BURST": "10000",
    "DISTRIBUTION_TOPIC_PARTITIONS": "4",
    "DISTRIBUTION_MIN_SCHEDULE_LEAD_SECONDS": "2",
    "DISTRIBUTION_SCHEDULER_INTERVAL_SECONDS": "0.2",
    "DISTRIBUTION_PUBLISHER_INTERVAL_SECONDS": "0.2",
    "DISTRIBUTION_OUTBOX_INTERVAL_SECONDS": "0.2",
    "DISTRIBUTION_BACKOFF_BASE_SECONDS": "0.2",
    "DISTRIBUTION_BACKOFF_MAX_SECONDS": "1",
    "DISTRIBUTION_LOG_JSON": "true",
    "DISTRIBUTION_FRAMEWORK_LOG_LEVEL": "INFO",
}


#: For scenarios where one account posts far more than a platform allows in a day.
NO_POSTING_LIMITS = {"DISTRIBUTION_QUOTA_INSTAGRAM_POSTS_PER_24H": "0",
                     "DISTRIBUTION_QUOTA_TIKTOK_POSTS_PER_24H": "0",
                     "DISTRIBUTION_QUOTA_YOUTUBE_UPLOADS_PER_PACIFIC_DAY": "0"}


def worker_process(database_url: str, bootstrap: str, log_path: Path,
                   **env: str) -> WorkerProcess:
    """A worker (not started yet) with the tests' settings and `env` over them. Its log is
    `log_path`; Faust's data goes to a directory beside it, never into the repository."""
    data_dir = log_path.with_name(f"{log_path.stem}-data")
    return WorkerProcess(database_url, bootstrap, log_path, cwd=ROOT,
                         env={**TEST_WORKER_SETTINGS,
                              "DISTRIBUTION_DATA_DIR": str(data_dir), **env})


@dataclass
class Stack:
    """What `open_stack` assembled; `worker()` adds worker processes to it."""

    broker: Broker
    database_url: str
    pool: asyncpg.Pool
    platforms: FakePlatformServer
    media: FakeMediaServer  # M06
    topics: Topics
    session: aiohttp.ClientSession
    logs: Path
    postgres: EmbeddedPostgres | None = None  # the stack's own server, if it has one
    direct: DirectFakes | None = None  # the platforms' own APIs, M10 and M06 (direct mode)
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self, **env: str) -> WorkerProcess:
        """A new worker process posting to the fake platforms (not yet ready: await
        `.ready()`); stopped with the stack. In a direct stack, through the platforms'
        own APIs."""
        reached = (self.direct.env() if self.direct else
                   {"DISTRIBUTION_PLATFORM_GATEWAY_URL": self.platforms.url,
                    "DISTRIBUTION_MEDIA_BASE_URL": self.media.url})
        settings = {"DISTRIBUTION_PLATFORM_TIMEOUT_SECONDS": "2", **reached, **env}
        proc = worker_process(self.database_url, self.broker.bootstrap,
                              self.logs / f"worker-{len(self.workers) + 1}.log", **settings)
        self.workers.append(proc.start())
        return proc

    async def started_worker(self, **env: str) -> WorkerProcess:
        return await self.worker(**env).ready()

    def api(self, worker: WorkerProcess) -> Api:
        return Api(worker.url, self.session)


@contextlib.asynccontextmanager
async def open_stack(logs: Path, *, database_server: DatabaseServer | None = None,
                     own_postgres: bool = False, broker: Broker | None = None,
                     platforms: FakePlatformServer | None = None,
                     media: FakeMediaServer | None = None,
                     direct: bool = False) -> AsyncIterator[Stack]:
    """A stack logging into `logs`, on a fresh database cloned on `database_server`, or,
    with `own_postgres`, on an embedded PostgreSQL of its own (`stack.postgres`). A `broker`
    or `platforms` passed in are shared and left running; otherwise the stack starts its
    own (likewise the fake M06, `media`). With `direct`, the stack also runs fakes of the
    four platforms' own APIs and of M10 (`stack.direct`, whose M06 is `stack.media`), and
    its workers publish in direct mode. Workers, clients and whatever the stack started
    are stopped on the way out, and its database dropped."""
    if own_postgres == (database_server is not None):
        raise ValueError("a stack needs either a database_server or own_postgres")
    async with contextlib.AsyncExitStack() as parts:
        if own_postgres:
            postgres = EmbeddedPostgres(logs / "postgres")
            parts.push_async_callback(asyncio.to_thread, postgres.cleanup)
            database_url = await (await postgres.start()).create_database()
        else:
            postgres = None
            database_url = await database_server.clone("distribution_stack")
            parts.push_async_callback(database_server.drop, database_url)
        if broker is None:
            broker = Broker(log_path=logs / "broker.log").start()
            parts.callback(broker.stop)
        if platforms is None:
            platforms = FakePlatformServer()
            platforms.start_in_thread()
            parts.callback(platforms.stop_thread)
        fakes = None
        if direct:
            fakes = DirectFakes(**({"media": media} if media else {})).start_in_thread()
            parts.callback(fakes.stop_thread)
            media = fakes.media
        if media is None:
            media = FakeMediaServer()
            media.start_in_thread()
            parts.callback(media.stop_thread)
        pool = await create_pool(database_url, 1, 8)
        parts.callback(pool.terminate)  # its connections may have died with its server
        topics = await Topics(broker.bootstrap).start()
        parts.push_async_callback(topics.stop)
        session = await parts.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)))
        stack = Stack(broker, database_url, pool, platforms, media, topics, session, logs,
                      postgres, fakes)

        def stop_workers() -> None:
            if postgres is not None:
                postgres.resume()  # if a failure left it paused: the workers stop cleanly
            for worker in stack.workers:
                worker.stop()
        parts.callback(stop_workers)
        yield stack

