"""What a worker's agents, timers, tasks and views share: the PostgreSQL pool, the platform
gateway and the M06 media client, and the service topics they need to exist.

`Resources` is a Faust (mode) service: the app starts it as its first dependency, so it is
open before any agent, timer, task or view runs, and stops it last (see
`DistributionApp.on_init_dependencies`).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.broker_security import kafka_client_kwargs
from app.db.pool import CONNECTION_ERRORS, create_pool
from app.neighbours import MediaLocator
from app.platforms.gateway import PlatformGateway
from app.settings import Settings, publishing_problems
from app.topics import DLQ_TOPICS, SERVICE_TOPICS

log = logging.getLogger("distribution.app")

#: Attempts to reach the database at start (about a minute with the backoff below).
POOL_ATTEMPTS = 30


def make_gateway(settings: Settings, pool: asyncpg.Pool) -> PlatformGateway:
    """The platform adapter of the publishing mode (settings.publishing_problems says what
    each mode needs)."""
    s = settings
    problems = publishing_problems(s)
    if problems:
        raise ValueError("; ".join(problems))
    if s.publishing_mode == "gateway":
        from app.platforms.http import HttpGateway
        return HttpGateway(s.platform_gateway_url, s.platform_timeout_seconds)
    if s.publishing_mode == "direct":
        from app.accounts import AccountsClient
        from app.platforms.direct_gateway import DirectGateway
        token = s.accounts_token.get_secret_value() if s.accounts_token else None
        accounts = AccountsClient(s.accounts_url, token, s.accounts_timeout_seconds)
        return DirectGateway(pool, accounts, s.platform_api_urls, s.platform_timeout_seconds,
                             s.platform_poll_interval_seconds, s.publish_lease_seconds)
    from app.platforms.simulated import SimulatedGateway
    return SimulatedGateway(s.simulated_failures)


def retention_ms(topic: str, settings: Settings) -> str:
    """A topic's `retention.ms`: the dead-letter topics keep theirs longer (re-drives)."""
    hours = settings.dlq_retention_hours if topic in DLQ_TOPICS else settings.topic_retention_hours
    return str(int(hours * 3600 * 1000))


async def ensure_topics(s: Settings) -> None:
    """Our topics with the configured partitions, replication factor and retention
    (creating only what is missing: an existing topic keeps its own)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers,
                                **kafka_client_kwargs(s))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, s.topic_partitions, s.topic_replication_factor,
                            topic_configs={"retention.ms": retention_ms(t, s)})
                   for t in SERVICE_TOPICS if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


class Resources(faust.Service):
    """Opened in `on_start`, closed in `on_stop`; until opened, reading one raises
    AttributeError (so `getattr(app, "pool", None)` is None before the worker started)."""

    pool: asyncpg.Pool
    gateway: PlatformGateway
    media: MediaLocator

    def __init__(self, settings: Settings, **kwargs) -> None:
        self.settings = settings
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        await ensure_topics(s)
        self.pool = await self._open_pool()
        self.gateway = make_gateway(s, self.pool)
        self.media = MediaLocator(s.media_base_url, s.media_timeout_seconds)
        log.info("worker resources ready", extra={"web_port": s.web_port})

    async def on_stop(self) -> None:
        for name in ("gateway", "media", "pool"):
            resource = getattr(self, name, None)
            if resource is None:
                continue
            try:
                await resource.close()
            except Exception:  # stopping anyway: the others still get closed
                log.exception("closing %s failed", name)

    async def _open_pool(self) -> asyncpg.Pool:
        """The database may still be starting beside us (compose, a restart): wait for it."""
        s = self.settings
        for attempt in range(POOL_ATTEMPTS):
            try:
                return await create_pool(s.database_url, s.db_pool_min, s.db_pool_max)
            except CONNECTION_ERRORS as exc:
                log.warning("database not reachable yet", extra={"error": repr(exc)})
                await asyncio.sleep(min(0.2 * 2 ** attempt, 2.0))
        raise RuntimeError("the database cannot be reached")
