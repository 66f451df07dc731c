"""Dead letters read from a real broker, and the re-drive recorded in a real PostgreSQL:
what a DLQ record gives back, once."""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.dead_letters import DeadLetter, dead_letter_message, redrive_message
from app.domain.errors import AlreadyRedriven, NotFound, RuleViolation
from app.redrive import dead_letter_at, latest_dead_letters, redrive
from app.topics import CLAIMED, CLAIMED_DLQ, COMMANDS, COMMANDS_DLQ
from tests.support import SentMessages


class Consumed:
    """A consumed record as dead_letter_message reads it."""

    def __init__(self, topic: str, key: bytes | None, value: bytes, offset: int = 7) -> None:
        self.topic, self.partition, self.offset = topic, 1, offset
        self.key, self.value = key, value


def letter_of(record: Consumed, dlq: str = CLAIMED_DLQ, offset: int = 0) -> DeadLetter:
    body = json.loads(dead_letter_message(dlq, record, "unknown_clip", "no such clip").value)
    return DeadLetter(dlq, 0, offset, body)


def test_a_dead_letter_gives_back_the_record_exactly_as_it_was_consumed():
    value = json.dumps({"data": {"claim_id": "c-1", "text": "héllo"}}).encode()
    message = redrive_message(letter_of(Consumed(CLAIMED, b"c-1", value)))
    assert (message.topic, message.key, message.value) == (CLAIMED, b"c-1", value)


@pytest.mark.parametrize("record, dlq", [
    (Consumed(CLAIMED, b"k", b"x" * (64 * 1024 + 1)), CLAIMED_DLQ),  # cut at 64 KiB
    (Consumed(CLAIMED, b"k", b"\xff\xfe not utf-8"), CLAIMED_DLQ),
    (Consumed(COMMANDS, b"k", b"{}"), CLAIMED_DLQ),  # not from the DLQ's own topic
])
def test_a_dead_letter_that_cannot_give_the_record_back_is_refused(record, dlq):
    with pytest.raises(RuleViolation):
        redrive_message(letter_of(record, dlq))


@pytest.fixture
async def dlq(broker):
    """A DLQ topic of its own (4 partitions) and a producer onto it."""
    topic = f"{COMMANDS_DLQ}-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    yield topic, producer
    await producer.stop()


async def test_the_latest_dead_letters_newest_first_and_one_by_its_place(broker, dlq):
    topic, producer = dlq
    for n in range(5):
        body = {"reason": "command_failed", "error": f"boom {n}", "topic": COMMANDS,
                "key": f"item-{n}", "value": "{}", "value_bytes": 2,
                "received_at": f"2026-03-01T17:30:0{n}Z"}
        await producer.send_and_wait(topic, json.dumps(body).encode(), partition=n % 2)

    letters = await latest_dead_letters(broker.bootstrap, {}, topic, limit=3)
    assert [d.body["key"] for d in letters] == ["item-4", "item-3", "item-2"]
    one = letters[1]
    again = await dead_letter_at(broker.bootstrap, {}, topic, one.partition, one.offset)
    assert again == one


async def test_a_place_the_topic_does_not_hold_is_not_found(broker, dlq):
    topic, producer = dlq
    await producer.send_and_wait(topic, b"{}", partition=0)
    # a partition the topic lacks (its consumer stopped at once: aiokafka must not cancel)
    with pytest.raises(NotFound):
        await dead_letter_at(broker.bootstrap, {}, topic, 4, 0)
    with pytest.raises(NotFound):
        await dead_letter_at(broker.bootstrap, {}, topic, 0, 1)  # past the end
    with pytest.raises(NotFound):
        await dead_letter_at(broker.bootstrap, {}, topic, 3, 0)  # an empty partition


async def test_a_re_drive_sends_once_and_is_recorded(pool):
    letter = letter_of(Consumed(CLAIMED, b"c-9", b'{"claim": 9}'), offset=41)
    sent = SentMessages()
    at = await redrive(pool, sent, letter, "operator-1")
    assert [(m.topic, m.key, m.value) for m in sent.messages] == [
        (CLAIMED, b"c-9", b'{"claim": 9}')]
    with pytest.raises(AlreadyRedriven):
        await redrive(pool, sent, letter, "operator-2")
    assert len(sent.messages) == 1
    row = await pool.fetchrow("SELECT * FROM distribution_redrives")
    assert (row["dlq_topic"], row["dlq_offset"], row["source_topic"], row["operator"],
            row["redriven_at"]) == (CLAIMED_DLQ, 41, CLAIMED, "operator-1", at)


async def test_a_re_drive_the_broker_refuses_is_not_recorded(pool):
    letter = letter_of(Consumed(CLAIMED, b"c-8", b"{}"))
    sent = SentMessages()
    sent.away = True
    with pytest.raises(Exception, match="broker"):
        await redrive(pool, sent, letter, "operator-1")
    assert await pool.fetchval("SELECT count(*) FROM distribution_redrives") == 0
    sent.away = False
    await redrive(pool, sent, letter, "operator-1")  # free to try again
    assert len(sent.messages) == 1
