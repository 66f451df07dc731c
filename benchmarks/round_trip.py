"""One client sending commands in a row: each command's round trip, p50/p99.

Baseline: the broker's own produce -> consume round trip, one message at a time, with the
service's consumer setting (fetch_max_wait_ms = DISTRIBUTION_CONSUMER_FETCH_MAX_WAIT_MS,
default 20) and its producer acks (all).

Beside them, where the time goes: the mean from a command's issue in the view to its commit,
read from the worker's own metric, and the command's transaction alone."""

from __future__ import annotations

import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from benchmarks.commands import answered, claimed_items, measure_baseline, post_overlay
from benchmarks.measure import Figure, Stopwatch, WorkloadResult, percentile
from benchmarks.stack import Stack, operator_token, progress

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


async def issue_to_commit(stack: Stack) -> tuple[float, int]:
    """(seconds, commands) the first worker's overlay commands took so far from their issue
    in the view to their transaction's commit, as its own metric counts them
    (`distribution_command_seconds`)."""
    async with stack.session.get(f"{stack.workers[0].url}/metrics", headers={
            "Authorization": f"Bearer {operator_token()}"}) as response:
        if response.status != 200:
            raise RuntimeError(f"/metrics answered {response.status}")
        text = await response.text()
    seconds, count = 0.0, 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples if family.name == "distribution_command_seconds" else ():
            if sample.labels.get("kind") == "add-overlay":
                if sample.name.endswith("_sum"):
                    seconds = sample.value
                elif sample.name.endswith("_count"):
                    count = int(sample.value)
    return seconds, count


async def run(stack: Stack, count: int) -> WorkloadResult:
    started = time.perf_counter()
    seconds_before, count_before = await issue_to_commit(stack)
    times, failures = await measure_service(stack, count)
    seconds_after, count_after = await issue_to_commit(stack)
    inside = (seconds_after - seconds_before) / (count_after - count_before) * 1000
    broker = await measure_broker(stack.bootstrap, count)
    _, alone = await measure_baseline(stack, count, clients=1)
    transaction, mean = statistics.mean(alone), statistics.mean(times)
    p50, p99, b50 = percentile(times, 50), percentile(times, 99), percentile(broker, 50)
    result = WorkloadResult(
        "round_trip", "One client, commands in a row", f"{count:,} overlay commands, "
        "one at a time, each to its own item", [
            Figure("p50", p50, "ms", b50, f"broker produce→consume, fetch_max_wait_ms "
                   f"{FETCH_MAX_WAIT_MS}", f"≤ 1.5 × baseline + 3 ms = {1.5 * b50 + 3:.1f} ms",
                   p50 <= 1.5 * b50 + 3),
            Figure("p99", p99, "ms", percentile(broker, 99), "the same", "—"),
            Figure("mean", mean, "ms", target="—"),
            Figure("mean, from the command's issue in the view to its commit (the worker's "
                   "distribution_command_seconds)", inside, "ms", target="—"),
            Figure("mean, the command's transaction alone (one asyncpg connection)",
                   transaction, "ms", target="—"),
        ])
    result.notes.append("A command crosses the broker once here, as the baseline does: the "
                        "worker that applies it answers its own view in the process "
                        "(app/kafka.py `reply`). With several workers, a view whose item's "
                        "partition another worker owns hears through Faust's reply topic, a "
                        "second crossing.")
    result.notes.append(
        f"Where a command's time goes, as means: {inside:.1f} ms from its issue in the view "
        f"to its commit; its transaction's SQL alone, from a plain connection, "
        f"{transaction:.1f} ms; so about "
        f"{inside - transaction:.1f} ms to cross the broker into the command agent and for "
        "the worker's own work around the SQL, and "
        f"{mean - inside:.1f} ms for HTTP, authentication, the access check "
        "and the reply. The crossing is longer than the broker's own round trip: the "
        "worker's fetch spans every partition of its topics, not one, and the record then "
        "goes through Faust's consumer thread and stream.")
    result.notes += [failures] if failures else []
    result.seconds = time.perf_counter() - started
    return result
