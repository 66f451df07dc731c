"""Re-read distribution.claimed and distribution.commands from an offset or a time and apply
them again. Applying is idempotent (claim ids, command ids), so into the same database a
replay changes nothing, and into a fresh one it rebuilds the items. Each command is applied
at the time it was issued, so the rules judge it as they did the first time."""

from __future__ import annotations

import heapq
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from app import handlers
from app.domain.rules import Policy
from app.topics import CLAIMED, COMMANDS
from app.wire import PingCommand, parse_claim, parse_commands

log = logging.getLogger("distribution.replay")

CLAIM_BATCH = 500


@dataclass
class ReplayReport:
    records: int = 0
    claims_created: int = 0
    commands_applied: int = 0
    commands_repeated: int = 0
    skipped: int = 0
    skipped_reasons: list[str] = field(default_factory=list)


async def _start_positions(consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                           from_offset: int | None, from_time: datetime | None
                           ) -> dict[TopicPartition, int]:
    beginnings = await consumer.beginning_offsets(tps)
    if from_time is not None:
        found = await consumer.offsets_for_times(
            {tp: int(from_time.timestamp() * 1000) for tp in tps})
        ends = await consumer.end_offsets(tps)
        return {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}
    return {tp: max(beginnings[tp], from_offset or 0) for tp in tps}


async def read_topics(bootstrap: str, topics: list[str], from_offset: int | None,
                      from_time: datetime | None,
                      on_total: Callable[[int], None] = lambda n: None,
                      security: Mapping[str, Any] | None = None
                      ) -> AsyncIterator[ConsumerRecord]:
    """The records from the start positions to the end, merged across topics and partitions
    in timestamp order (each partition's own order kept). `security`: TLS and SASL keyword
    arguments of the consumer (app.broker_security.kafka_client_kwargs)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=50, max_poll_records=2000,
                                **(security or {}))
    await consumer.start()
    try:
        if any(consumer.partitions_for_topic(t) is None for t in topics):
            await consumer._client.force_metadata_update()  # a topic created since start
        tps = [TopicPartition(t, p) for t in topics
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return
        consumer.assign(tps)
        starts = await _start_positions(consumer, tps, from_offset, from_time)
        ends = await consumer.end_offsets(tps)
        on_total(sum(max(ends[tp] - starts[tp], 0) for tp in tps))
        for tp in tps:
            consumer.seek(tp, starts[tp])
        # Read everything first. The ends taken above only say how far to read at least:
        # Tansu reports a partition's end as one past the first record of its last batch,
        # so reading goes on until a fetch finds nothing more.
        per_partition: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in tps}
        while True:
            batch = await consumer.getmany(*tps, timeout_ms=300)
            for tp, records in batch.items():
                per_partition[tp].extend(records)
            if not batch and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                break
        streams = [[(r.timestamp, i, r.offset, r) for r in records]
                   for i, records in enumerate(per_partition.values())]
        for _, _, _, record in heapq.merge(*streams, key=lambda x: x[:3]):
            yield record
    finally:
        await consumer.stop()


async def replay(pool: asyncpg.Pool, bootstrap: str, policy: Policy,
                 from_offset: int | None = 0, from_time: datetime | None = None,
                 topics: tuple[str, ...] = (CLAIMED, COMMANDS),
                 progress: Callable[[int], None] = lambda n: None,
                 on_total: Callable[[int], None] = lambda n: None,
                 security: Mapping[str, Any] | None = None) -> ReplayReport:
    report = ReplayReport()
    claims: list = []

    async def flush_claims() -> None:
        if claims:
            result = await handlers.ingest_claims(pool, claims)
            report.claims_created += len(result.created)
            report.skipped += len(result.unknown_clips)
            claims.clear()

    async for record in read_topics(bootstrap, list(topics), from_offset, from_time, on_total,
                                    security):
        report.records += 1
        try:
            if record.topic == CLAIMED:
                claims.append(parse_claim(record.value))
                if len(claims) >= CLAIM_BATCH:
                    await flush_claims()
            else:
                await flush_claims()  # an item's claim comes before its commands
                for command in parse_commands(record.value):  # one, or a bundle's
                    if isinstance(command, PingCommand):  # a readiness probe: nothing to do
                        continue
                    applied = await handlers.handle(pool, command, command.issued_at, policy)
                    if applied.repeated:
                        report.commands_repeated += 1
                    else:
                        report.commands_applied += 1
        except ValueError as exc:  # what the live agents dead-lettered
            report.skipped += 1
            if len(report.skipped_reasons) < 20:
                report.skipped_reasons.append(f"{record.topic}@{record.offset}: {exc}")
        progress(1)
    await flush_claims()
    return report
