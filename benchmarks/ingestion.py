"""Claim ingestion: N claims produced at once to distribution.claimed, timed from the first
send until every item exists in PostgreSQL.

Baseline: the same claims produced the same way to a topic of the run's own (8 partitions,
as distribution.claimed), read by a bare aiokafka consumer that batch-inserts them (the
service's `insert_claims` SQL: unnest + ON CONFLICT DO NOTHING) into a copy of the items
table — the same two steps without Faust, envelopes' validation, or the agent."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.claims_out import claimed_event
from app.db.queries import Q
from app.topics import CLAIMED
from benchmarks.measure import Figure, WorkloadResult
from benchmarks.round_trip import FETCH_MAX_WAIT_MS
from benchmarks.stack import Stack, wait_with_progress

PARTITIONS = 8


def claims(prefix: str, count: int) -> list[dict]:
    return [claimed_event(f"{prefix}-{n}", f"{prefix}-clip-{n}", f"{prefix}-inf-{n % 1000}",
                          "bench") for n in range(1, count + 1)]


async def produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    """Every claim in flight at once (the producer batches them), keyed by claim id."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, json.dumps(ev).encode(),
                                       key=ev["partition_key"].encode()) for ev in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def measure_service(stack: Stack, count: int) -> float:
    prefix = f"ing-{stack.run_id}"
    events = claims(prefix, count)

    async def items() -> int:
        return await stack.pool.fetchval(
            "SELECT count(*) FROM distribution_items WHERE id LIKE $1", f"{prefix}-%")
    started = time.perf_counter()
    await asyncio.gather(produce(stack.bootstrap, CLAIMED, events),
                         wait_with_progress(items, count, "claim ingestion",
                                            timeout=60 + count / 100))
    return count / (time.perf_counter() - started)


async def bare_consumer(stack: Stack, topic: str, count: int) -> None:
    """Reads `topic` from the start and inserts the claims until `count` rows exist."""
    insert = Q["insert_claims"].replace("INSERT INTO distribution_items",
                                        "INSERT INTO bench_claims")
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap,
                                fetch_max_wait_ms=FETCH_MAX_WAIT_MS, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=2000)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        inserted = 0
        while inserted < count:
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            data = [json.loads(r.value)["data"] for rs in batches.values() for r in rs]
            if not data:
                continue
            claimed = [datetime.fromisoformat(d["claimed_at"]) for d in data]
            rows = await stack.pool.fetch(
                insert, [d["claim_id"] for d in data], [d["influencer_id"] for d in data],
                [d["clip_id"] for d in data], [d["campaign_id"] for d in data], claimed,
                [at + timedelta(days=7) for at in claimed])
            inserted += len(rows)
    finally:
        await consumer.stop()


async def measure_baseline(stack: Stack, count: int) -> float:
    topic = f"bench.claimed.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    await stack.pool.execute("""DROP TABLE IF EXISTS bench_claims;
                                CREATE TABLE bench_claims (LIKE distribution_items INCLUDING ALL)""")
    events = claims(f"base-{stack.run_id}", count)
    started = time.perf_counter()
    await asyncio.gather(produce(stack.bootstrap, topic, events),
                         asyncio.wait_for(bare_consumer(stack, topic, count),
                                          timeout=60 + count / 100))
    rate = count / (time.perf_counter() - started)
    await stack.pool.execute("DROP TABLE bench_claims")
    return rate


async def run(stack: Stack, count: int) -> WorkloadResult:
    started = time.perf_counter()
    rate = await measure_service(stack, count)
    baseline = await measure_baseline(stack, count)
    result = WorkloadResult(
        "ingestion", "Claim ingestion", f"{count:,} claims produced at once", [
            Figure("claims/s until every item exists", rate, "/s", baseline,
                   "bare aiokafka consumer batch-inserting the same claims",
                   "≥ 0.8 × baseline", rate >= 0.8 * baseline)])
    result.notes.append("Both figures include producing the claims (one aiokafka producer, "
                        "acks=all), which runs while they are consumed.")
    result.seconds = time.perf_counter() - started
    return result
