"""Poison input: what can never be processed ends in its dead-letter topic with the reason
(or, over HTTP, in a 4xx in the one error shape), and after each one the agents go on
consuming: a fresh valid claim still becomes an item, a valid command still gets its answer.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.topics import CLAIMED, COMMANDS, COMMANDS_DLQ
from tests.clients import claim_and_wait
from tests.factories import claimed_event, unique
from tests.support import eventually, token

MAX_DLQ_VALUE = 64 * 1024  # the DLQ keeps the first 64 KiB of a value (and its size)
MB = 1024 * 1024  # a mebibyte: more than a consumer fetches from a partition by default
OVERLAY_PAYLOAD = {"type": "intro", "duration_seconds": 2.0}


class TopicReader:
    """Reads a topic from its beginning, on and on, with one consumer (by record key)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                         fetch_max_wait_ms=20)
        self.by_key: dict[str | None, list[dict]] = {}

    async def start(self) -> TopicReader:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        partitions = self.consumer.partitions_for_topic(self.topic)
        assert partitions, f"no topic {self.topic}"
        tps = [TopicPartition(self.topic, p) for p in partitions]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        return self

    async def stop(self) -> None:
        await self.consumer.stop()

    async def poll(self, timeout_ms: int = 100) -> None:
        batch = await self.consumer.getmany(timeout_ms=timeout_ms)
        for records in batch.values():
            for r in records:
                key = r.key.decode() if r.key is not None else None
                self.by_key.setdefault(key, []).append(json.loads(r.value))

    async def wait_for(self, key: str, timeout: float = 30.0) -> list[dict]:
        async def found():
            await self.poll()
            return self.by_key.get(key)
        return await eventually(found, timeout=timeout, interval=0.0,
                                what=f"{key} on {self.topic}")


@dataclass
class Poison:
    name: str
    value: bytes | None
    reason: str
    error: str  # a part of the reason's text


def event_bytes(event: dict) -> bytes:
    return json.dumps(event).encode()


def with_data(event: dict, **data) -> dict:
    return {**event, "data": {**event["data"], **data}}


async def raw_producer(stack) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, acks="all",
                                max_request_size=2_000_000)
    await producer.start()
    return producer


def deep(n: int = 100_000) -> bytes:
    return b"[" * n + b"]" * n


async def test_poison_claims_go_to_the_dlq_and_valid_claims_after_each_still_make_items(
        stack, record_figures):
    started = time.monotonic()
    worker = await stack.started_worker()
    api = stack.api(worker)
    influencer = unique("influencer")
    known_clip, campaign = unique("clip"), unique("campaign")
    await stack.pool.execute("INSERT INTO clips (id, campaign_id) VALUES ($1, $2)",
                             known_clip, campaign)

    def claim(**data) -> dict:
        return with_data(claimed_event(unique("claim"), unique("clip"), influencer,
                                       unique("campaign")), **data)

    huge = claim(clip_id="x" * MB)
    poisons = [
        Poison("malformed-json", b'{"event_id": "e1", "data": {"claim_id": ', "invalid_event",
               "invalid JSON"),
        Poison("not-utf8", b"\xff\xfe\x00\x81 binary", "invalid_event", "unreadable"),
        Poison("tombstone", None, "invalid_event", "unreadable"),
        Poison("json-array", b"[1, 2, 3]", "invalid_event", "invalid claimed event"),
        Poison("deeply-nested", deep(), "invalid_event", "JSON"),
        Poison("huge-number", b'{"event_version": ' + b"9" * 5000 + b"}", "invalid_event",
               "digits"),
        Poison("claim-id-number", event_bytes(claim(claim_id=12345)), "invalid_event",
               "data.claim_id"),
        Poison("claim-id-object", event_bytes(claim(claim_id={"id": "c1"})), "invalid_event",
               "data.claim_id"),
        Poison("claimed-at-not-a-date", event_bytes(claim(claimed_at="last tuesday")),
               "invalid_event", "data.claimed_at"),
        Poison("claimed-at-no-offset", event_bytes(claim(claimed_at="2026-03-01T10:00:00")),
               "invalid_event", "offset"),
        Poison("data-missing", event_bytes({**claim(), "data": None}), "invalid_event",
               "data"),
        Poison("unknown-event-type",
               event_bytes({**claim(), "event_type": "distribution.unclaimed"}),
               "invalid_event", "event_type"),
        Poison("one-megabyte", event_bytes(huge), "invalid_event", "data.clip_id"),
        # an item id travels in URL paths and Kafka keys: one it cannot be is refused on sight
        Poison("nul-in-claim-id", event_bytes(claim(claim_id=f"claim\u0000{uuid.uuid4()}")),
               "invalid_event", "data.claim_id"),
        Poison("nul-in-clip-id", event_bytes(claim(clip_id=f"clip\u0000{uuid.uuid4()}")),
               "rejected", "database"),
        Poison("unknown-clip", event_bytes(claim(campaign_id=None)), "unknown_clip",
               "is not known"),
    ]
    assert len(next(p for p in poisons if p.name == "one-megabyte").value) > MB

    producer = await raw_producer(stack)
    dlq = await TopicReader(stack.broker.bootstrap, "distribution.claimed.dlq").start()
    valid: list[str] = []
    keys: list[str] = []
    timings: dict[str, float] = {}
    try:
        for poison in poisons:
            t0 = time.monotonic()
            key = unique(poison.name)
            keys.append(key)
            await producer.send_and_wait(CLAIMED, poison.value,
                                         key=key.encode())
            [record] = await dlq.wait_for(key)
            assert record["reason"] == poison.reason, (poison.name, record)
            assert poison.error in record["error"], (poison.name, record["error"])
            assert record["topic"] == "distribution.claimed"
            assert isinstance(record["partition"], int) and isinstance(record["offset"], int)
            assert record["key"] == key and record["received_at"]
            raw = poison.value or b""
            assert record["value_bytes"] == len(raw), poison.name
            assert record["value"] == raw[:MAX_DLQ_VALUE].decode(errors="replace"), poison.name

            # the agent goes on: a valid claim on the same partition becomes an item (the
            # last one has no campaign_id and is resolved through the clips table)
            fresh = claimed_event(unique("claim"), known_clip if poison.name == "unknown-clip"
                                  else unique("clip"), influencer,
                                  None if poison.name == "unknown-clip" else unique("campaign"))
            await producer.send_and_wait(CLAIMED, event_bytes(fresh),
                                         key=key.encode())
            item = await api.wait_for_item(fresh["data"]["claim_id"], influencer, timeout=30)
            assert item["status"] == "claimed"
            valid.append(item["id"])
            timings[poison.name] = round(time.monotonic() - t0, 2)
        assert item["campaign_id"] == campaign

        # nothing from the poison became an item, nothing was dead-lettered twice
        await dlq.poll(300)
        items = await stack.pool.fetch(
            "SELECT id FROM distribution_items WHERE influencer_id = $1", influencer)
        assert sorted(r["id"] for r in items) == sorted(valid)
        in_dlq = {k: dlq.by_key.get(k, []) for k in keys}
        lost = sum(1 for v in in_dlq.values() if not v) + len(set(valid) - {r["id"] for r in items})
        doubled = sum(len(v) - 1 for v in in_dlq.values() if v)
        assert lost == 0 and doubled == 0, (lost, doubled)
        assert sum(len(v) for v in dlq.by_key.values()) == len(poisons)
    finally:
        await dlq.stop()
        await producer.stop()

    record_figures(events=len(poisons) + len(valid), faults=len(poisons), lost=lost,
                   doubled=doubled, poison_kinds=len(poisons), items=len(valid),
                   largest_poison_bytes=max(len(p.value or b"") for p in poisons),
                   slowest_round_seconds=max(timings.values()),
                   one_megabyte_round_seconds=timings["one-megabyte"],
                   seconds=round(time.monotonic() - started, 1))


async def test_poison_commands_go_to_the_dlq_and_the_item_still_answers_commands(
        stack, record_figures):
    started = time.monotonic()
    worker = await stack.started_worker()
    api = stack.api(worker)
    item_id, influencer, item = await claim_and_wait(stack.topics, api)

    def command(**fields) -> bytes:
        body = {"command_id": f"poison:{uuid.uuid4()}", "kind": "add-overlay",
                "item_id": item_id, "actor": influencer,
                "payload": {"type": "outro", "duration_seconds": 1.0}, **fields}
        return json.dumps(body).encode()

    poisons = [
        Poison("unknown-kind", command(kind="teleport"), "invalid_command", "kind"),
        Poison("kind-missing", command(kind=None), "invalid_command", "kind"),
        Poison("not-json", b"{kind: teleport}", "invalid_command", "invalid JSON"),
        Poison("not-utf8", b"\x00\x01 binary \xff", "invalid_command", "unreadable"),
        Poison("tombstone", None, "invalid_command", "unreadable"),
        Poison("json-string", b'"add-overlay"', "invalid_command", "invalid command"),
        Poison("item-id-number", command(item_id=42), "invalid_command", "item_id"),
        Poison("payload-a-list", command(payload=[1, 2]), "invalid_command", "payload"),
        Poison("deeply-nested", deep(), "invalid_command", "JSON"),
    ]
    producer = await raw_producer(stack)
    dlq = await TopicReader(stack.broker.bootstrap, "distribution.commands.dlq").start()
    answered = 0
    try:
        for n, poison in enumerate(poisons, start=1):
            key = item_id  # the item's partition: its next command comes after the poison
            await producer.send_and_wait(COMMANDS, poison.value,
                                         key=key.encode())
            # the DLQ is keyed as received (the item id): the n-th record is this poison
            records = await eventually(
                lambda: _nth(dlq, key, n), timeout=30, interval=0.0,
                what=f"{poison.name} in the commands DLQ")
            record = records[n - 1]
            assert record["reason"] == poison.reason, (poison.name, record)
            assert poison.error in record["error"], (poison.name, record["error"])
            assert record["topic"] == "distribution.commands" and record["key"] == item_id
            assert record["value_bytes"] == len(poison.value or b"")

            # a valid command for the same item still gets its answer, applied once
            duration = 1.0 + n / 10
            code, body = await api.post(item_id, "overlays", influencer,
                                        {"type": "intro", "duration_seconds": duration})
            assert code == 200, (poison.name, body)
            assert body["version"] == item["version"] + 1, (poison.name, body)
            assert body["overlays"] == [{"type": "intro", "duration_seconds": duration}]
            item = body
            answered += 1
        await dlq.poll(300)
        dead = dlq.by_key.get(item_id, [])
        lost = len(poisons) - len(dead) + (len(poisons) - answered)
        doubled = max(0, len(dead) - len(poisons))
        assert lost == 0 and doubled == 0, dead
        # no poison touched the item: one version per valid command
        row = await stack.pool.fetchrow(
            "SELECT status, version FROM distribution_items WHERE id = $1", item_id)
        assert (row["status"], row["version"]) == ("claimed", item["version"])
    finally:
        await dlq.stop()
        await producer.stop()

    record_figures(events=len(poisons) + answered, faults=len(poisons), lost=lost,
                   doubled=doubled, answered=answered, seconds=round(time.monotonic() - started, 1))


async def test_a_command_that_fails_in_a_bundle_is_dead_lettered_alone(stack, record_figures):
    """A bundle (the service's own commands for one partition, in one record) whose middle
    command the database refuses: its neighbours are applied, and the DLQ keeps that
    command alone, keyed by its item, so that a re-drive sends it and nothing else."""
    started = time.monotonic()
    worker = await stack.started_worker()
    api = stack.api(worker)
    claimed = [await claim_and_wait(stack.topics, api) for _ in range(3)]

    def command(item_id: str, influencer: str, kind: str, payload: dict) -> dict:
        return {"command_id": f"bundled:{uuid.uuid4()}", "kind": kind, "item_id": item_id,
                "actor": influencer, "payload": payload}

    (first, first_owner, first_item), (broken, broken_owner, _), (last, last_owner, last_item) \
        = claimed
    in_two_days = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    nul_caption = {"platforms": ["tiktok"], "scheduled_at": in_two_days,
                   "caption": {"text": "hello\u0000world"}}  # text PostgreSQL cannot store
    commands = [command(first, first_owner, "add-overlay", OVERLAY_PAYLOAD),
                command(broken, broken_owner, "schedule", nul_caption),
                command(last, last_owner, "add-overlay", OVERLAY_PAYLOAD)]
    producer = await raw_producer(stack)
    dlq = await TopicReader(stack.broker.bootstrap, "distribution.commands.dlq").start()
    try:
        await producer.send_and_wait(COMMANDS, json.dumps(
            {"kind": "bundle", "commands": commands}).encode(), key=first.encode())
        [record] = await dlq.wait_for(broken)
        assert record["reason"] == "command_failed" and record["topic"] == COMMANDS
        assert json.loads(record["value"])["command_id"] == commands[1]["command_id"]
        assert record["value_bytes"] == len(record["value"].encode())  # whole: re-drivable
        for item_id, owner, item in ((first, first_owner, first_item),
                                     (last, last_owner, last_item)):
            # the DLQ record is sent once the bundle's batch is committed
            code, now = await api.get(item_id, owner)
            assert code == 200 and now["version"] == item["version"] + 1, now
            assert now["overlays"] == [OVERLAY_PAYLOAD]
        status = await stack.pool.fetchval(
            "SELECT status FROM distribution_items WHERE id = $1", broken)
        assert status == "claimed"  # nothing of the failed command was kept
        await dlq.poll(300)
        assert set(dlq.by_key) == {broken}  # its neighbours are not in the DLQ
    finally:
        await dlq.stop()
        await producer.stop()
    record_figures(events=3, faults=1, lost=0, doubled=0,
                   seconds=round(time.monotonic() - started, 1))


async def _nth(reader: TopicReader, key: str, n: int):
    await reader.poll()
    records = reader.by_key.get(key, [])
    return records if len(records) >= n else None


async def test_poison_http_requests_get_a_4xx_and_valid_requests_still_get_answers(
        stack, record_figures):
    started = time.monotonic()
    worker = await stack.started_worker()
    api = stack.api(worker)
    item_id, influencer, item = await claim_and_wait(stack.topics, api)
    headers = {"Authorization": f"Bearer {token(influencer)}",
               "Content-Type": "application/json"}

    async def send(action: str, raw: bytes) -> tuple[int, dict]:
        async with stack.session.post(api.item_url(item_id, action), data=raw,
                                      headers=headers) as r:
            try:
                return r.status, await r.json(content_type=None)
            except ValueError:
                return r.status, {"text": await r.text()}

    def body(value) -> bytes:
        return json.dumps(value).encode()

    # (name, route, raw body, status, error code, details.field or None)
    poisons = [
        ("two-megabytes", "publish",
         body({"platform": "tiktok", "caption": {"text": "x" * 2 * MB}}),
         413, "payload_too_large", None),
        ("duration-a-string", "overlays", body({"type": "intro", "duration_seconds": "three"}),
         400, "invalid_request", "duration_seconds"),
        ("duration-an-object", "overlays",
         body({"type": "intro", "duration_seconds": {"seconds": 2}}),
         400, "invalid_request", "duration_seconds"),
        ("platforms-a-string", "publish-multi", body({"platforms": "tiktok"}),
         400, "invalid_request", "platforms"),
        ("scheduled-at-a-number", "schedule",
         body({"platforms": ["tiktok"], "scheduled_at": 1767225600}),
         400, "invalid_request", "scheduled_at"),
        ("hashtags-not-strings", "publish",
         body({"platform": "tiktok", "caption": {"text": "hi", "hashtags": [1, {"a": 2}]}}),
         400, "invalid_request", "caption.hashtags.0"),
        ("not-json", "publish", b"platform=tiktok", 400, "invalid_request", "body"),
        ("not-utf8", "publish", b'{"platform": "\xff\xfe"}', 400, "invalid_request", "body"),
        ("json-array", "publish", b'["tiktok"]', 400, "invalid_request", "body"),
        ("deeply-nested", "publish", deep(), 400, "invalid_request", "body"),
        ("huge-number", "overlays",
         b'{"type": "intro", "duration_seconds": ' + b"9" * 5000 + b"}",
         400, "invalid_request", "body"),
        ("nul-in-caption", "publish",
         body({"platform": "tiktok", "caption": {"text": "hello\u0000world"}}),
         400, "invalid_request", "caption.text"),
        ("lone-surrogate-in-caption", "publish",
         body({"platform": "tiktok", "caption": {"text": "hello \ud800"}}),
         400, "invalid_request", "caption.text"),
    ]
    answered, refused = 0, 0
    for n, (name, action, raw, status, code, field) in enumerate(poisons, start=1):
        got, answer = await send(action, raw)
        assert got == status, (name, got, answer)
        assert set(answer) == {"error"}, (name, answer)
        assert answer["error"]["code"] == code and answer["error"]["message"], (name, answer)
        assert isinstance(answer["error"]["details"], dict), (name, answer)
        if field is not None:
            assert answer["error"]["details"].get("field") == field, (name, answer)
        refused += 1

        # the item is untouched, and a valid command still gets its answer
        duration = 1.0 + n / 10
        got, answer = await api.post(item_id, "overlays", influencer,
                                     {"type": "intro", "duration_seconds": duration})
        assert got == 200, (name, answer)
        assert answer["version"] == item["version"] + 1 and answer["status"] == "claimed", \
            (name, answer)
        item = answer
        answered += 1

    # nothing of the poison reached the commands DLQ either (refused at the door)
    dlq = await stack.topics.read_all(COMMANDS_DLQ)
    lost = len(poisons) - refused + len(poisons) - answered
    doubled = 0
    assert lost == 0 and not dlq, dlq
    record_figures(events=len(poisons) + answered, faults=len(poisons), lost=lost,
                   doubled=doubled, refused=refused, answered=answered,
                   seconds=round(time.monotonic() - started, 1))
