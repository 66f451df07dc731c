"""Claim intake in-process on the real database: records as the claims consumer reads
them, a `send` that keeps what goes to the dead-letter topic, no Faust and no broker."""

from __future__ import annotations

import json

from aiokafka import ConsumerRecord

from app.intake import ingest_records
from app.topics import CLAIMED, CLAIMED_DLQ
from tests.factories import new_claimed_event
from tests.support import SentMessages


class Sent(SentMessages):
    def dead_letters(self) -> dict[str, dict]:
        """reason -> the DLQ record, for each message sent to the claims DLQ."""
        assert {m.topic for m in self.messages} <= {CLAIMED_DLQ}
        return {body["reason"]: body for body in (json.loads(m.value) for m in self.messages)}


def record(value: bytes | dict, offset: int, key: str | None = None) -> ConsumerRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return ConsumerRecord(topic=CLAIMED, partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=key.encode() if key else None, value=raw,
                          checksum=None, serialized_key_size=len(key or ""),
                          serialized_value_size=len(raw), headers=[])


async def test_a_batch_creates_its_items_and_dead_letters_what_can_never_be_one(pool):
    good, repeat = new_claimed_event(), new_claimed_event()
    unknown_clip = new_claimed_event()
    del unknown_clip["data"]["campaign_id"]  # and no such clip in M09's table
    send = Sent()
    records = [record(good, 0, good["data"]["claim_id"]), record(b"{not json", 1, "k-1"),
               record(repeat, 2), record(repeat, 3),
               record(unknown_clip, 4, unknown_clip["data"]["claim_id"])]

    result = await ingest_records(pool, records, send)

    assert result.created == [good["data"]["claim_id"], repeat["data"]["claim_id"]]
    assert result.duplicates == [repeat["data"]["claim_id"]]
    dead = send.dead_letters()
    assert set(dead) == {"invalid_event", "unknown_clip"}
    assert (dead["invalid_event"]["offset"], dead["invalid_event"]["key"]) == (1, "k-1")
    assert dead["unknown_clip"]["key"] == unknown_clip["data"]["claim_id"]
    assert [m.key for m in send.messages if json.loads(m.value)["reason"] == "unknown_clip"] \
        == [unknown_clip["data"]["claim_id"].encode()]
    assert await pool.fetchval("SELECT count(*) FROM distribution_items") == 2


async def test_a_batch_read_again_creates_nothing_and_dead_letters_nothing_new(pool):
    events = [new_claimed_event() for _ in range(3)]
    records = [record(e, n, e["data"]["claim_id"]) for n, e in enumerate(events)]
    await ingest_records(pool, records, Sent())
    send = Sent()

    again = await ingest_records(pool, records, send)

    assert again.created == [] and len(again.duplicates) == 3 and send.messages == []


async def test_a_claim_the_database_refuses_is_dead_lettered_and_its_neighbours_still_made(
        pool):
    ok, refused = new_claimed_event(), new_claimed_event()
    refused["data"]["campaign_id"] = "camp\u0000aign"  # valid JSON, not storable as text
    send = Sent()

    result = await ingest_records(pool, [record(ok, 0), record(refused, 1)], send)

    assert result.created == [ok["data"]["claim_id"]]
    assert set(send.dead_letters()) == {"rejected"}
