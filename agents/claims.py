"""distribution.claimed -> items in `claimed` (app/intake.py); what can never be processed
-> the DLQ.

Claims have no other source than this topic, so they are consumed with a plain aiokafka
consumer group of their own, and offsets are committed only after the batch's transaction
committed. (Faust's streams acknowledge the events they skip while a rebalance is under
way, and a commit can then pass over a claim that was never processed: the scaling test
lost one claim in three runs that way.) A redelivery after a crash or a rebalance is
harmless: creating an item is idempotent.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from app import metrics
from app.broker_security import kafka_client_kwargs
from app.channels import send
from app.faust_app import app
from app.intake import ingest_records
from app.topics import CLAIMED

log = logging.getLogger("distribution.claims")

#: Claims per transaction. 1,000 read ~20 % faster than 500 (benchmark pairs, BENCHMARKS.md).
BATCH_SIZE = 1000


def claims_consumer() -> AIOKafkaConsumer:
    s = app.settings
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.kafka_bootstrap_servers, group_id=f"{s.app_id}-claims",
        client_id=f"{s.app_id}-claims", enable_auto_commit=False,
        auto_offset_reset="earliest", fetch_max_wait_ms=s.claims_fetch_max_wait_ms,
        session_timeout_ms=int(s.broker_session_timeout_seconds * 1000),
        heartbeat_interval_ms=int(s.broker_session_timeout_seconds * 250),
        # what is fetched ahead is held in memory until read: a few batches, no more
        max_poll_records=BATCH_SIZE, fetch_max_bytes=4 * 1024 * 1024,
        max_partition_fetch_bytes=1024 * 1024,
        **kafka_client_kwargs(s))  # the same TLS and SASL as Faust's own clients
    consumer.subscribe([CLAIMED], listener=Joined())
    return consumer


class Offsets:
    """The running consumer and the offsets it committed, for the lag on /metrics; whether
    it has joined its group, for readiness."""

    consumer: AIOKafkaConsumer | None = None
    committed: dict[TopicPartition, int] = {}
    joined: bool = False


class Joined(ConsumerRebalanceListener):
    """Told when the group gave the consumer its partitions (perhaps none: more workers than
    partitions), which takes a while after the worker starts (half the session timeout on
    some brokers): until then no claim is read."""

    def on_partitions_revoked(self, revoked) -> None:
        pass

    def on_partitions_assigned(self, assigned) -> None:
        Offsets.joined = True


def claims_joined() -> str:
    """`ok` once the claims consumer has joined its group (readiness)."""
    return "ok" if Offsets.joined else "error: not joined yet"


def claims_offsets() -> list[tuple[str, int, int, int]]:
    consumer = Offsets.consumer
    if consumer is None:
        return []
    return [(tp.topic, tp.partition, consumer.highwater(tp) or 0, Offsets.committed[tp])
            for tp in consumer.assignment() if tp in Offsets.committed]


metrics.PROCESS.offset_sources.append(claims_offsets)


@app.task
@app.vitals.watch("claims consumer")
async def ingest_claims() -> None:
    consumer = Offsets.consumer = claims_consumer()
    try:
        await consumer.start()  # inside: a stop during the group join still closes it
        while not app.should_stop:
            batch = await consumer.getmany(timeout_ms=500, max_records=BATCH_SIZE)
            records = [r for partition in batch.values() for r in partition]
            if not records:
                continue
            try:
                await ingest_records(app.pool, records, send)
            except Exception:  # e.g. the DLQ unreachable: read the batch again, later
                log.exception("claim batch not processed; reading it again",
                              extra={"count": len(records)})
                await rewind(consumer)
                await asyncio.sleep(1.0)
                continue
            try:
                await consumer.commit()  # the positions after what was just processed
                Offsets.committed.update(
                    (tp, rs[-1].offset + 1) for tp, rs in batch.items() if rs)
            except (CommitFailedError, KafkaError) as exc:
                # a rebalance took the partitions: their new owner reads them again
                log.warning("claim offsets not committed", extra={"error": repr(exc)})
    finally:
        Offsets.joined = False
        await consumer.stop()


async def rewind(consumer: AIOKafkaConsumer) -> None:
    """Back to the committed offsets (the beginning where none was committed yet)."""
    for tp in consumer.assignment():
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)
