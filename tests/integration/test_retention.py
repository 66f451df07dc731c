"""Retention on real servers: published outbox rows pruned by age in batches (pending ones
never), and the dead-letter topics created with a retention of their own."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.db.outbox import prune_published
from app.embedded import Broker
from app.resources import ensure_topics
from app.settings import Settings
from app.topics import DLQ_TOPICS, SERVICE_TOPICS

RETENTION = timedelta(hours=72)


async def add_outbox_row(pool, status: str, age: timedelta) -> uuid.UUID:
    """A row created `age` ago; a published one was published then too."""
    event_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO distribution_outbox (event_id, topic, partition_key, envelope, status,"
        " created_at, published_at) VALUES ($1, 'distribution.published', 'item-1', '{}',"
        " $2, now() - $3::interval, CASE WHEN $2 = 'published' THEN now() - $3::interval END)",
        event_id, status, age)
    return event_id


async def outbox_rows(pool) -> set[uuid.UUID]:
    return {r["event_id"] for r in await pool.fetch("SELECT event_id FROM distribution_outbox")}


async def test_published_rows_past_the_retention_go_in_batches_and_every_other_row_stays(pool):
    old = [await add_outbox_row(pool, "published", RETENTION + timedelta(hours=h))
           for h in (1, 2, 30, 400, 9000)]
    recent = await add_outbox_row(pool, "published", RETENTION - timedelta(minutes=5))
    pending = [await add_outbox_row(pool, "pending", age)  # never relayed, however old
               for age in (timedelta(0), RETENTION * 2, timedelta(days=365))]

    cutoff = datetime.now(timezone.utc) - RETENTION
    assert await prune_published(pool, cutoff, batch=2) == len(old)  # 2 + 2 + 1

    assert await outbox_rows(pool) == {recent, *pending}
    assert await prune_published(pool, cutoff, batch=2) == 0


async def test_a_batch_that_comes_out_full_is_followed_by_another(pool):
    for _ in range(4):
        await add_outbox_row(pool, "published", RETENTION * 2)
    assert await prune_published(pool, datetime.now(timezone.utc) - RETENTION, batch=4) == 4
    assert await outbox_rows(pool) == set()


async def test_the_dead_letter_topics_are_created_with_their_own_retention(tmp_path):
    broker = Broker(log_path=tmp_path / "broker.log").start()  # a broker without our topics
    try:
        await ensure_topics(Settings(kafka_bootstrap_servers=broker.bootstrap,
                                     topic_partitions=1, topic_retention_hours=2,
                                     dlq_retention_hours=5))
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            [configs] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t) for t in SERVICE_TOPICS])
        finally:
            await admin.close()
    finally:
        broker.stop()
    retention = {r[3]: {e[0]: e[1] for e in r[4]}.get("retention.ms")
                 for r in configs.resources}  # (..., name, [(config, value, ...)])
    hour = 3600 * 1000
    assert retention == {t: str((5 if t in DLQ_TOPICS else 2) * hour) for t in SERVICE_TOPICS}
