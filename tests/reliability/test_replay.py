"""`distribution replay`: re-reading the claim and command topics rebuilds the same items
into a fresh database and changes nothing in the same one."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.embedded import Broker
from tests.dump import dump
from fakes.gateway import Answer
from tests.clients import claim_all_and_wait
from tests.factories import claimed_event, unique
from tests.stack import ROOT

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replay"


async def run_replay(database_url: str, bootstrap: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "replay", *args, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    assert "replay" in err.decode()  # the progress bar
    return out.decode()


async def produce_recording(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 4, 1) for t in
                                   ("distribution.claimed", "distribution.commands")])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for name, topic in (("claimed", "distribution.claimed"),
                            ("commands", "distribution.commands")):
            for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
                record = json.loads(line)
                value = record["raw"].encode() if "raw" in record else \
                    json.dumps(record["value"]).encode()
                stamp = int(datetime.fromisoformat(record["time"]).timestamp() * 1000)
                await producer.send_and_wait(topic, value, key=record["key"].encode(),
                                             timestamp_ms=stamp)
    finally:
        await producer.stop()


async def statuses(dsn: str, prefix: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, status, failure_reason FROM distribution_items "
                                "WHERE id LIKE $1", prefix + "%")
        return {r["id"]: r["status"] + (f":{r['failure_reason']}" if r["failure_reason"] else "")
                for r in rows}
    finally:
        await conn.close()


async def fresh_database(create_database) -> str:
    url = await create_database()
    conn = await asyncpg.connect(url)
    try:  # M09's clip of the claim that comes without a campaign
        await conn.execute("INSERT INTO clips VALUES ('replay-clip-2', 'replay-campaign-0')")
    finally:
        await conn.close()
    return url


async def test_replaying_recorded_topics_rebuilds_the_items_and_a_second_replay_changes_nothing(
        create_database, tmp_path, record_figures):
    broker = Broker(log_path=tmp_path / "broker.log").start()
    try:
        await produce_recording(broker.bootstrap)
        first = await fresh_database(create_database)
        report = await run_replay(first, broker.bootstrap)
        assert "34 records" in report and "5 items created" in report, report
        assert await statuses(first, "replay-claim-") == {
            "replay-claim-1": "published", "replay-claim-2": "published",
            "replay-claim-3": "published", "replay-claim-4": "claimed",
            "replay-claim-5": "failed:missed"}
        built = await dump(first, "replay-")
        # published: items 1, 2 and 3; failed: item 2 before its retry, and item 5 (missed)
        assert sorted(r["topic"] for r in built["distribution_outbox"]) == [
            "distribution.failed"] * 2 + ["distribution.published"] * 3
        assert {r["type"]: r["duration_seconds"] for r in built["distribution_overlays"]} == {
            "intro": 2.5, "outro": 1.0}

        again = await run_replay(first, broker.bootstrap)
        assert "0 items created, 0 commands applied" in again, again
        assert await dump(first, "replay-") == built

        second = await fresh_database(create_database)
        await run_replay(second, broker.bootstrap)
        assert await dump(second, "replay-") == built

        # from a time after the claims: only commands, all applied before
        tail = await run_replay(second, broker.bootstrap,
                                "--from-timestamp", "2026-11-20T12:00:10Z")
        assert "0 items created, 0 commands applied" in tail, tail
        assert await dump(second, "replay-") == built
        record_figures(events=34, faults=0, lost=0, doubled=0, replays=4)
    finally:
        broker.stop()


async def test_a_replay_into_a_fresh_database_rebuilds_what_the_live_service_built(
        stack, create_database, record_figures):
    worker = await stack.started_worker()
    api = stack.api(worker)
    influencer, prefix = unique("influencer"), unique("live")
    ids = [f"{prefix}-{n}" for n in range(4)]
    await claim_all_and_wait(stack.topics, [api], [
        claimed_event(item_id, unique("clip"), influencer, "c") for item_id in ids])
    stack.platforms.script("instagram", Answer.status(400, message="no"))
    for item_id in ids:
        assert (await api.post(item_id, "overlays", influencer,
                               {"type": "outro", "duration_seconds": 1.5}))[0] == 200
        assert (await api.post(item_id, "publish-multi", influencer,
                               {"platforms": ["tiktok", "instagram"]}))[0] == 202
    await api.wait_for_item(ids[0], influencer, status="failed")
    assert (await api.post(ids[0], "retry", influencer))[0] == 202
    for item_id in ids:
        await api.wait_for_item(item_id, influencer, status="published")
    worker.stop()
    live = await dump(stack.database_url, prefix)

    rebuilt = await create_database()
    await run_replay(rebuilt, stack.broker.bootstrap)
    assert await dump(rebuilt, prefix) == live
    await run_replay(stack.database_url, stack.broker.bootstrap)
    assert await dump(stack.database_url, prefix) == live
    record_figures(events=len(ids) * 5, faults=1, lost=0, doubled=0)
