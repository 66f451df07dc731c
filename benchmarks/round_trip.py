"""One client sending commands in a row: each command's round trip, p50/p99.

Baseline: the broker's own produce -> consume round trip, one message at a time, with the
service's consumer setting (fetch_max_wait_ms = DISTRIBUTION_CONSUMER_FETCH_MAX_WAIT_MS,
default 20) and its producer acks (all)."""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.settings import Settings
from benchmarks.commands import answered, claimed_items, post_overlay
from benchmarks.measure import Figure, Stopwatch, WorkloadResult, percentile
from benchmarks.stack import Stack, progress

FETCH_MAX_WAIT_MS = Settings.model_fields["consumer_fetch_max_wait_ms"].default


async def measure_service(stack: Stack, count: int) -> tuple[list[float], str]:
    prefix = await claimed_items(stack, "row", count)
    return answered([await post_overlay(stack, stack.workers[0], prefix, n)
                     for n in progress(range(1, count + 1), desc="commands in a row")])


async def measure_broker(bootstrap: str, count: int) -> list[float]:
    """ms from send until the consumer holds the message, one message in flight."""
    topic = f"bench.round-trip.{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap,
                                fetch_max_wait_ms=FETCH_MAX_WAIT_MS, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up", partition=0)  # creates the topic
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        times = []
        for n in progress(range(count), desc="broker round trip"):
            with Stopwatch() as watch:
                await producer.send_and_wait(topic, str(n).encode(), partition=0)
                while True:
                    record = await consumer.getone()
                    if record.value == str(n).encode():
                        break
            times.append(watch.ms)
        return times
    finally:
        await consumer.stop()
        await producer.stop()


async def run(stack: Stack, count: int) -> WorkloadResult:
    started = time.perf_counter()
    times, failures = await measure_service(stack, count)
    broker = await measure_broker(stack.bootstrap, count)
    p50, p99, b50 = percentile(times, 50), percentile(times, 99), percentile(broker, 50)
    result = WorkloadResult(
        "round_trip", "One client, commands in a row", f"{count:,} overlay commands, "
        "one at a time, each to its own item", [
            Figure("p50", p50, "ms", b50, f"broker produce→consume, fetch_max_wait_ms "
                   f"{FETCH_MAX_WAIT_MS}", f"≤ 1.5 × baseline + 3 ms = {1.5 * b50 + 3:.1f} ms",
                   p50 <= 1.5 * b50 + 3),
            Figure("p99", p99, "ms", percentile(broker, 99), "the same", "—"),
        ])
    result.notes.append("A command crosses the broker twice (the command topic, then Faust's "
                        "reply topic), so two broker round trips are its floor; the baseline "
                        "is one, as the issue defines it.")
    result.notes += [failures] if failures else []
    result.seconds = time.perf_counter() - started
    return result
