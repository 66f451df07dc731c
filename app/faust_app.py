"""The one Faust app: configuration, the worker's shared resources, and the list of its parts."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable
from datetime import datetime, timezone
from functools import cached_property

import asyncpg
import faust
from faust.sensors.prometheus import PrometheusMonitor
from faust.types import ProducerT
from mode import ServiceT

from app import metrics

from app.broker_security import faust_credentials
from app.domain.rules import Policy
from app.kafka import ReplyConsumer, Transport
from app.liveness import LoopWatch, Vitals
from app.neighbours import MediaLocator
from app.platforms.gateway import PlatformGateway
from app.resources import Resources
from app.settings import Settings, get_settings

#: The app's parts, imported before the worker starts (explicit discovery).
COMPONENTS = ("agents.claims", "agents.commands", "agents.publisher", "agents.scheduler",
              "agents.outbox_relay", "agents.housekeeping", "agents.loop_watch",
              "tables.publish_stats", "web.items", "web.downloads", "web.health", "web.stats",
              "web.accounts", "web.operator", "web.console")


class DistributionApp(faust.App):
    """The app; agents and views reach the worker's shared resources through it."""

    settings: Settings
    policy: Policy

    def configure(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = settings.policy()
        self.fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
        self.publisher_wakeup = asyncio.Event()
        self.relay_wakeup = asyncio.Event()
        self.vitals = Vitals(stopping=lambda: self.should_stop)
        self.loop_watch = LoopWatch(settings.health_max_loop_block_seconds)
        # Faust's own figures (messages, sends, commits, rebalances, HTTP) in our registry
        self.monitor = PrometheusMonitor(metrics=metrics.faust_metrics())
        metrics.PROCESS.pool = lambda: getattr(self, "pool", None)
        metrics.PROCESS.offset_sources.append(self.partition_offsets)
        metrics.CLUSTER.max_age = settings.metrics_cluster_max_age_seconds

    def partition_offsets(self) -> list[tuple[str, int, int, int]]:
        """(topic, partition, end offset, committed offset) of the partitions this worker
        consumed and committed, as Faust's monitor last saw them."""
        committed = self.monitor.tp_committed_offsets
        return [(tp.topic, tp.partition, end, committed[tp])
                for tp, end in self.monitor.tp_end_offsets.items() if tp in committed]

    @cached_property
    def resources(self) -> Resources:
        return Resources(self.settings, beacon=self.beacon)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.resources.pool

    @property
    def gateway(self) -> PlatformGateway:
        return self.resources.gateway

    @property
    def media(self) -> MediaLocator:
        return self.resources.media

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    async def maybe_start_producer(self) -> ProducerT:
        """Every message Faust sends asks for the producer here, and Faust's own guard
        against starting it twice yields to the event loop three times a call: a relay
        round of 500 events waited out 1,500 turns of whatever else the worker ran
        (~0.3 s of its ~0.35 s). Once the producer runs, it is handed over at once."""
        producer = self.producer
        if producer.started and not self.in_transaction:
            return producer
        return await super().maybe_start_producer()

    @cached_property
    def _reply_consumer(self) -> ReplyConsumer:
        return ReplyConsumer(self, loop=self.loop, beacon=self.beacon)

    @staticmethod
    def now() -> datetime:
        return datetime.now(timezone.utc)

    def discover_components(self) -> None:
        for name in COMPONENTS:
            importlib.import_module(name)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        dependencies = list(super().on_init_dependencies())
        if self.client_only:
            return dependencies  # it only asks: no agent or view of ours runs in it
        # mode starts these in order, after `on_start` and before `on_started` (where Faust
        # starts timers and tasks), and stops them in reverse: the resources come first, so
        # they open before the web server, agents and tables start and close after they stop.
        return [self.resources, *dependencies]

    async def on_first_start(self) -> None:
        self.conf.datadir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
        await super().on_first_start()

    async def on_stop(self) -> None:
        # Timers and tasks are futures of the app, which mode ends only after stopping its
        # dependencies (the resources last): end them first, while the pool is still open.
        await self._stop_futures()
        await super().on_stop()


#: The producer's batch per partition (the default is 16 KB); within the 1 MB request size
#: the broker takes.
PRODUCER_BATCH_BYTES = 256 * 1024


def create_app(settings: Settings) -> DistributionApp:
    from web.errors import error_middleware

    app = DistributionApp(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        datadir=settings.faust_datadir,
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
        # A send waits while its partition's batch is full until that batch has gone: at
        # the default 16 KB, a relay round of 500 events waited out four produce round
        # trips per partition (~1 s of its ~1.1 s).
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
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
