"""The one Faust app: configuration, shared resources, and the list of its parts."""

from __future__ import annotations

import asyncio
import importlib
import logging
from datetime import datetime, timezone
from functools import cached_property

import asyncpg
import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.broker_security import faust_credentials, kafka_client_kwargs
from app.db.pool import CONNECTION_ERRORS, create_pool
from app.domain.rules import Policy
from app.kafka import ReplyConsumer, Transport
from app.neighbours import MediaLocator
from app.platforms.gateway import PlatformGateway
from app.settings import Settings, get_settings

log = logging.getLogger("distribution.app")

#: The app's parts, imported before the worker starts (explicit discovery).
COMPONENTS = ("agents.claims", "agents.commands", "agents.publisher", "agents.scheduler",
              "agents.outbox_relay", "agents.housekeeping", "tables.publish_stats", "web.items",
              "web.downloads", "web.health")

TOPICS = ("distribution.claimed", "distribution.claimed.dlq", "distribution.commands",
          "distribution.commands.dlq", "distribution.published", "distribution.failed")


def make_gateway(settings: Settings) -> PlatformGateway:
    if settings.platform_gateway_url:
        from app.platforms.http import HttpGateway
        return HttpGateway(settings.platform_gateway_url, settings.platform_timeout_seconds)
    from app.platforms.simulated import SimulatedGateway
    return SimulatedGateway(settings.simulated_failures)


class DistributionApp(faust.App):
    """Holds the resources every agent and view shares, opened before they start."""

    settings: Settings
    pool: asyncpg.Pool
    gateway: PlatformGateway
    media: MediaLocator
    policy: Policy

    def configure(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = settings.policy()
        self.fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
        self.publisher_wakeup = asyncio.Event()
        self.relay_wakeup = asyncio.Event()

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    @cached_property
    def _reply_consumer(self) -> ReplyConsumer:
        return ReplyConsumer(self, loop=self.loop, beacon=self.beacon)

    @staticmethod
    def now() -> datetime:
        return datetime.now(timezone.utc)

    def discover_components(self) -> None:
        for name in COMPONENTS:
            importlib.import_module(name)

    async def on_start(self) -> None:
        await super().on_start()
        if self.client_only:
            return
        s = self.settings
        await self._ensure_topics()
        self.pool = await self._open_pool()
        self.gateway = make_gateway(s)
        self.media = MediaLocator(s.media_base_url, s.media_timeout_seconds)
        log.info("worker resources ready", extra={"web_port": s.web_port})

    async def _open_pool(self) -> asyncpg.Pool:
        s = self.settings
        for attempt in range(30):
            try:
                return await create_pool(s.database_url, s.db_pool_min, s.db_pool_max)
            except CONNECTION_ERRORS as exc:
                log.warning("database not reachable yet", extra={"error": repr(exc)})
                await asyncio.sleep(min(0.2 * 2 ** attempt, 2.0))
        raise RuntimeError("the database cannot be reached")

    async def _ensure_topics(self) -> None:
        """Our topics with the configured partitions, replication factor and retention
        (creating only what is missing: an existing topic keeps its own)."""
        s = self.settings
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers,
                                    **kafka_client_kwargs(s))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            retention_ms = str(int(s.topic_retention_hours * 3600 * 1000))
            missing = [NewTopic(t, s.topic_partitions, s.topic_replication_factor,
                                topic_configs={"retention.ms": retention_ms})
                       for t in TOPICS if t not in existing]
            if missing:
                await admin.create_topics(missing)
        finally:
            await admin.close()

    async def on_stop(self) -> None:
        for resource in ("gateway", "media", "pool"):
            if hasattr(self, resource):
                try:
                    await getattr(self, resource).close()
                except Exception:  # stopping anyway
                    log.exception("closing %s failed", resource)
        await super().on_stop()


def create_app(settings: Settings) -> DistributionApp:
    from web.errors import error_middleware

    app = DistributionApp(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # Faust's producer and all its consumers (agents, replies) authenticate with these
        broker_credentials=faust_credentials(settings),
        reply_create_topic=True,
        broker_session_timeout=settings.broker_session_timeout_seconds,
        broker_heartbeat_interval=max(settings.broker_session_timeout_seconds / 4, 0.5),
        broker_commit_interval=1.0,
        producer_request_timeout=15.0,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind="0.0.0.0" if settings.web_host not in ("127.0.0.1", "localhost") else "127.0.0.1",
        web_in_thread=False,
        web_application_options={"middlewares": [error_middleware],
                                 "client_max_size": 1024 * 1024},
        table_cleanup_interval=30.0,
        # Stopping must not wait on unacknowledged reply-topic messages (it waits ~20 s for
        # them); whatever is cut short is delivered again, and applying is idempotent.
        stream_wait_empty=False,
    )
    app.configure(settings)
    return app


app = create_app(get_settings())
