"""What `/metrics` tells (prometheus-client), in one registry:

- process figures, per worker: commands by kind and outcome with their latency, platform
  attempts, quota deferrals, publishing lateness, dead-lettered records, consumer lag, the
  pool, the event loop's lag, and Faust's own sensor (messages, sends, rebalances, HTTP);
- cluster figures, read from PostgreSQL when scraped (`ClusterFigures`), so every worker
  gives the same answer: items by status, platform rows by state, the outbox backlog and
  the age of its oldest pending row, the oldest overdue scheduled item, outcomes of the
  last hour.

Observing is plain arithmetic on values the callers already hold: no I/O here but the
cluster query, which `ClusterFigures.refresh` runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.db.pool import translate_errors
from app.db.queries import Q
from app.domain import events as e
from app.domain.errors import Unavailable
from app.domain.model import ErrorClass

log = logging.getLogger("distribution.metrics")

REGISTRY = CollectorRegistry()

COMMANDS = Counter(
    "distribution_commands", "Commands handled, by kind and outcome (applied, refused, "
    "duplicate, failed, unavailable, invalid); `error` is a refusal's code.",
    ["kind", "outcome", "error"], registry=REGISTRY)
COMMAND_SECONDS = Histogram(
    "distribution_command_seconds", "From a command's issue to its transaction's commit.",
    ["kind"], registry=REGISTRY,
    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))
PLATFORM_ATTEMPTS = Counter(
    "distribution_platform_attempts", "Platform calls answered, by platform, outcome, error "
    "class and the platform's reason code.",
    ["platform", "outcome", "error_class", "reason"], registry=REGISTRY)
QUOTA_DEFERRALS = Counter(
    "distribution_quota_deferrals", "Attempts put off because the account's posting window "
    "on the platform was full.", ["platform"], registry=REGISTRY)
LATENESS = Histogram(
    "distribution_publishing_lateness_seconds", "From a scheduled item's due time to each "
    "platform's publication (retries included).", ["platform"], registry=REGISTRY,
    buckets=(.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600))
DEAD_LETTERS = Counter(
    "distribution_dead_letters", "Records sent to a dead-letter topic, by the topic they "
    "came from and the reason.", ["topic", "reason"], registry=REGISTRY)
LOOP_LAG = Gauge(
    "distribution_event_loop_lag_seconds", "How late the event loop's last tick ran.",
    registry=REGISTRY)
LOOP_BLOCKS = Counter(
    "distribution_event_loop_blocks", "Times the event loop was blocked for longer than "
    "DISTRIBUTION_HEALTH_MAX_LOOP_BLOCK_SECONDS.", registry=REGISTRY)

@functools.cache
def faust_metrics() -> FaustMetrics:
    """Faust's sensor's metrics, registered once per process (a registry refuses a name
    twice, and tests build several apps)."""
    return FaustMetrics.create(REGISTRY, "faust")


@functools.cache
def _labelled(metric, *values: str):
    """A metric's child for these label values, looked up once: `labels()` checks and locks
    at every call, ~3 % of the worker's time publishing due items (one to three per
    command). The label sets are few (kinds, outcomes, error codes, platforms), and none of
    these metrics is ever cleared, which would leave a kept child out of the registry."""
    return metric.labels(*values)


#: reason codes are the platforms' own: bounded, but cut to keep a label short
REASON_CHARS = 64


def observe_command(kind: str, outcome: str, error: str = "",
                    issued_at: datetime | None = None, now: datetime | None = None) -> None:
    _labelled(COMMANDS, kind, outcome, error).inc()
    if issued_at is not None and now is not None:
        _labelled(COMMAND_SECONDS, kind).observe(max((now - issued_at).total_seconds(), 0.0))


def observe_decision(events: Iterable[object], scheduled_at: datetime | None,
                     now: datetime) -> None:
    """Lateness of each platform the applied command published (scheduled items only)."""
    if scheduled_at is None:
        return
    for ev in events:
        if isinstance(ev, e.PlatformPublished):
            _labelled(LATENESS, ev.platform.value).observe(
                max((now - scheduled_at).total_seconds(), 0.0))


def observe_attempt(platform: str, outcome: str, error_class: ErrorClass | None,
                    reason: str | None) -> None:
    PLATFORM_ATTEMPTS.labels(platform, outcome, error_class.value if error_class else "",
                             (reason or "")[:REASON_CHARS]).inc()
    if error_class is ErrorClass.QUOTA:
        QUOTA_DEFERRALS.labels(platform).inc()


class ProcessGauges(Collector):
    """Figures read from the worker's objects when scraped: the pool, and each consumed
    partition's lag (the partition's end offset minus the group's committed offset)."""

    def __init__(self) -> None:
        self.pool: Callable[[], asyncpg.Pool | None] = lambda: None
        #: each gives (topic, partition, end offset, committed offset) of what it consumes
        self.offset_sources: list[Callable[[], Iterable[tuple[str, int, int, int]]]] = []
        self.calls_under_way: Callable[[], int] = lambda: 0

    def collect(self) -> Iterable[Metric]:
        size = GaugeMetricFamily("distribution_db_pool_size", "Connections in the pool.")
        idle = GaugeMetricFamily("distribution_db_pool_idle", "Idle connections in the pool.")
        pool = self.pool()
        if pool is not None:
            size.add_metric([], pool.get_size())
            idle.add_metric([], pool.get_idle_size())
        lag = GaugeMetricFamily("distribution_consumer_lag", "Records not yet consumed and "
                                "committed, per topic and partition this worker holds.",
                                labels=["topic", "partition"])
        for source in self.offset_sources:
            for topic, partition, end, committed in source():
                lag.add_metric([topic, str(partition)], max(end - committed, 0))
        calls = GaugeMetricFamily("distribution_platform_calls_under_way",
                                  "Platform calls this worker is making now.")
        calls.add_metric([], self.calls_under_way())
        yield from (size, idle, lag, calls)


PROCESS = ProcessGauges()
REGISTRY.register(PROCESS)


class ClusterFigures(Collector):
    """Figures of the whole cluster, read from PostgreSQL: the same on every worker. A
    scrape reads them again once they are `max_age` seconds old, so that scrapes from
    several places do not each scan the items table. When the database does not answer,
    they are left out (`distribution_cluster_figures_up` 0) rather than shown stale, and
    the worker's own figures are still served: an outage is when they matter most."""

    def __init__(self, max_age: float = 5.0) -> None:
        self.max_age = max_age
        self.read_at = float("-inf")
        self.figures: dict[str, Any] | None = None

    async def refresh(self, pool: asyncpg.Pool, timeout: float = 2.0) -> bool:
        """Whether the figures are the database's now (read within `max_age`)."""
        if self.figures is not None and time.monotonic() - self.read_at < self.max_age:
            return True
        # not wait_for: cancelling a query on a paused server waits for the server
        read = asyncio.ensure_future(_read_cluster(pool))
        done, _ = await asyncio.wait({read}, timeout=timeout)
        try:
            if not done:
                read.cancel()
                read.add_done_callback(lambda t: t.cancelled() or t.exception())  # collected
                raise Unavailable(f"the database did not answer within {timeout:g} s")
            row = read.result()
        except Unavailable as exc:
            log.warning("cluster figures not read", extra={"error": exc.message})
            self.figures = None
            return False
        self.figures = dict(row)
        self.read_at = time.monotonic()
        return True

    def collect(self) -> Iterable[Metric]:
        yield _gauge("distribution_cluster_figures_up", "1 when the cluster's figures below "
                     "were read from the database for this scrape, 0 when it did not answer.",
                     [], [((), self.figures is not None)])
        if self.figures is None:
            return
        f = self.figures
        yield _gauge("distribution_items", "Items by status.", ["status"],
                     ((s, n) for s, n in (f["items_by_status"] or {}).items()))
        yield _gauge("distribution_platform_rows", "Item platforms by platform and state.",
                     ["platform", "status"],
                     (((p, s), n) for p, states in (f["platform_rows"] or {}).items()
                      for s, n in states.items()))
        yield _gauge("distribution_platform_outcomes_last_hour", "Platform outcomes recorded "
                     "in the last hour (published, failed).",
                     ["platform", "outcome"],
                     (((p, o), n) for p, outcomes in (f["outcomes_last_hour"] or {}).items()
                      for o, n in outcomes.items()))
        yield _gauge("distribution_outbox_pending", "Outcome events not yet on their topic.",
                     [], [((), f["outbox_pending"])])
        yield _gauge("distribution_outbox_oldest_pending_seconds", "Age of the oldest outcome "
                     "event not yet on its topic (0: none).", [],
                     [((), f["outbox_oldest_seconds"] or 0.0)])
        yield _gauge("distribution_oldest_overdue_seconds", "How long the most overdue "
                     "scheduled item has been due without its publishing starting (0: none).",
                     [], [((), f["oldest_overdue_seconds"] or 0.0)])
        late = f["lateness_last_hour"] or {}
        yield _gauge("distribution_lateness_last_hour_seconds", "Lateness of the scheduled "
                     "posts published in the last hour, by quantile (0: none).", ["quantile"],
                     [(quantile, late.get(key) or 0.0)
                      for quantile, key in (("0.5", "p50"), ("0.99", "p99"))])

    def overview(self) -> dict[str, Any]:
        """The figures as the console shows them (after `refresh`)."""
        f = self.figures or {}
        late = f.get("lateness_last_hour") or {}
        return {"items_by_status": f.get("items_by_status") or {},
                "platform_rows": f.get("platform_rows") or {},
                "outcomes_last_hour": f.get("outcomes_last_hour") or {},
                "lateness_last_hour": {"count": late.get("count") or 0,
                                       "p50_seconds": late.get("p50"),
                                       "p99_seconds": late.get("p99")},
                "outbox_pending": f.get("outbox_pending") or 0,
                "outbox_oldest_pending_seconds": f.get("outbox_oldest_seconds"),
                "oldest_overdue_item": f.get("oldest_overdue_item"),
                "oldest_overdue_seconds": f.get("oldest_overdue_seconds")}


async def _read_cluster(pool: asyncpg.Pool) -> asyncpg.Record:
    async with translate_errors():
        return await pool.fetchrow(Q["cluster_figures"])


def _gauge(name: str, documentation: str, labels: Sequence[str],
           samples: Iterable[tuple[Any, float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for label_values, value in samples:
        values = [label_values] if isinstance(label_values, str) else list(label_values)
        family.add_metric(values, float(value))
    return family


CLUSTER = ClusterFigures()
REGISTRY.register(CLUSTER)
