"""The dead-letter topics as operators see them, and the re-drive: a dead-lettered record
sent back to its topic once.

Reading uses a consumer of its own with no group (it commits nothing and disturbs no
one). A re-drive records itself and sends in one transaction: the record goes out only
if the re-drive is recorded, and is recorded only once the broker has it. A crash between
the broker's acknowledgement and the commit leaves it unrecorded, so a second re-drive
could send it again; that is harmless, since claims and commands are applied once by id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.db.pool import translate_errors
from app.db.queries import Q
from app.dead_letters import DeadLetter, dead_letter_from, redrive_message
from app.domain.errors import AlreadyRedriven, NotFound, Unavailable
from app.topics import Send

#: How long reading a DLQ topic may take before the operator hears the broker is away.
READ_TIMEOUT_SECONDS = 10.0


@contextlib.asynccontextmanager
async def _consumer(bootstrap: str, security: Mapping[str, Any]
                    ) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer without a group, stopped on the way out; the broker away for
    READ_TIMEOUT_SECONDS is Unavailable."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=50, **security)
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            await consumer.start()
            # aiokafka's stop() cancels a task that start() created; cancelled before its
            # first step, that task re-raises the cancellation into stop(): let it begin
            await asyncio.sleep(0)
            yield consumer
    except TimeoutError:
        raise Unavailable("the broker did not give the dead letters in time") from None
    finally:
        await consumer.stop()


async def _read(consumer: AIOKafkaConsumer, starts: dict[TopicPartition, int],
                ends: dict[TopicPartition, int]) -> list[DeadLetter]:
    consumer.assign(list(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    letters: list[DeadLetter] = []
    left = {tp for tp in starts if starts[tp] < ends[tp]}
    while left:
        batch = await consumer.getmany(*left, timeout_ms=500)
        for tp, records in batch.items():
            letters += [dead_letter_from(r) for r in records if r.offset < ends[tp]]
            if records and records[-1].offset >= ends[tp] - 1:
                left.discard(tp)
    return letters


async def latest_dead_letters(bootstrap: str, security: Mapping[str, Any], dlq_topic: str,
                              limit: int) -> list[DeadLetter]:
    """The topic's last `limit` records, newest first (by offset within a partition, by
    the time they were dead-lettered across partitions)."""
    async with _consumer(bootstrap, security) as consumer:
        tps = [TopicPartition(dlq_topic, p)
               for p in sorted(consumer.partitions_for_topic(dlq_topic) or ())]
        if not tps:
            return []
        firsts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        starts = {tp: max(firsts[tp], ends[tp] - limit) for tp in tps}
        letters = await _read(consumer, starts, ends)
    letters.sort(key=lambda d: (str(d.body.get("received_at", "")), d.offset), reverse=True)
    return letters[:limit]


async def dead_letter_at(bootstrap: str, security: Mapping[str, Any], dlq_topic: str,
                         partition: int, offset: int) -> DeadLetter:
    """The DLQ record at that place; NotFound when the topic no longer (or never) held it."""
    tp = TopicPartition(dlq_topic, partition)
    async with _consumer(bootstrap, security) as consumer:
        if partition not in (consumer.partitions_for_topic(dlq_topic) or ()):
            raise NotFound(f"{dlq_topic} has no partition {partition}")
        first = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if not first <= offset < end:
            raise NotFound(f"{dlq_topic} holds no record at {partition}/{offset}",
                           partition=partition, offset=offset)
        [letter] = await _read(consumer, {tp: offset}, {tp: offset + 1})
        return letter


async def redrive(pool: asyncpg.Pool, send: Send, letter: DeadLetter, operator: str) -> Any:
    """Sends the record back to its topic and records it; when it was re-driven. Raises
    AlreadyRedriven for the second time, RuleViolation when it cannot be sent back."""
    message = redrive_message(letter)
    async with translate_errors(), pool.acquire() as conn, conn.transaction():
        at = await conn.fetchval(Q["record_redrive"], letter.dlq_topic, letter.partition,
                                 letter.offset, message.topic, operator)
        if at is None:
            raise AlreadyRedriven(partition=letter.partition, offset=letter.offset)
        try:
            await send([message])
        except Exception as exc:  # nothing recorded: it may be re-driven again
            raise Unavailable("the broker did not take the record",
                              reason=type(exc).__name__) from exc
    return at
