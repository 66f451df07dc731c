"""An isolated stack for tests that break things: its own broker, its own database, a fake
platform server, and as many worker processes as the test starts (each stopped at the end)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from app.db.pool import create_pool
from app.embedded import Broker
from tests.fakes.platform_server import FakePlatformServer
from tests.service import Api, ServiceProcess, Topics, claimed_event
from tests.support import unique


@dataclass
class Stack:
    broker: Broker
    database_url: str
    pool: asyncpg.Pool
    platforms: FakePlatformServer
    topics: Topics
    session: aiohttp.ClientSession
    logs: Path
    workers: list[ServiceProcess] = field(default_factory=list)

    def worker(self, **env: str) -> ServiceProcess:
        """A new worker process (not yet ready: await `.ready()`)."""
        settings = {"DISTRIBUTION_PLATFORM_GATEWAY_URL": self.platforms.url,
                    "DISTRIBUTION_PLATFORM_TIMEOUT_SECONDS": "2", **env}
        proc = ServiceProcess(self.database_url, self.broker.bootstrap,
                              self.logs / f"worker-{len(self.workers) + 1}.log",
                              env=settings).start()
        self.workers.append(proc)
        return proc

    async def started_worker(self, **env: str) -> ServiceProcess:
        return await self.worker(**env).ready()

    def api(self, worker: ServiceProcess) -> Api:
        return Api(worker.url, self.session)

    async def claim(self, api: Api) -> tuple[str, str, dict]:
        """A new claimed item, once the service shows it: (item id, influencer, item)."""
        item_id, influencer = unique("claim"), unique("influencer")
        await self.topics.produce("distribution.claimed",
                                  claimed_event(item_id, unique("clip"), influencer,
                                                unique("campaign")), key=item_id)
        return item_id, influencer, await api.wait_for_item(item_id, influencer)


@contextlib.asynccontextmanager
async def isolated_stack(create_database, logs: Path) -> AsyncIterator[Stack]:
    broker = Broker(log_path=logs / "broker.log").start()
    platforms = FakePlatformServer()
    platforms.start_in_thread()
    url = await create_database()
    pool = await create_pool(url, 1, 8)
    topics = await Topics(broker.bootstrap).start()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    stack = Stack(broker, url, pool, platforms, topics, session, logs)
    try:
        yield stack
    finally:
        for w in stack.workers:
            w.stop()
        await session.close()
        await topics.stop()
        await pool.close()
        platforms.stop_thread()
        broker.stop()
