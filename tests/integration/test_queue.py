"""app.db.queue (due items, platform attempts) and app.db.outbox on the real database.

These queries take work from the whole table: each test has a database of its own, and two
pools on it stand for two workers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app.db.outbox import OutboxRepository
from app.db.queue import lease_platform_attempts, lease_round, take_due_items
from app.db.pool import create_pool
from app.db.queries import Q
from app.db.unit_of_work import unit_of_work
from app.envelope import make_envelope
from tests.factories import make_item, make_platform_row, unique

REQUEUE = timedelta(minutes=5)
LEASE = timedelta(seconds=30)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
async def pools(pool, database_url):
    """Two pools on the test's own database, standing for two workers."""
    other = await create_pool(database_url, 1, 4)
    yield pool, other
    await other.close()


async def drain(calls) -> list:
    """Run rounds of concurrent calls until a round returns nothing; everything returned."""
    taken = []
    while True:
        rounds = await asyncio.gather(*(call() for call in calls))
        got = [x for r in rounds for x in r]
        if not got:
            return taken
        taken.extend(got)


# ------------------------------------------------------------------------------------------
# take_due_items


async def test_due_items_are_handed_out_once_to_schedulers_running_at_the_same_time(pools):
    a, b = pools
    now = utcnow()
    async with a.acquire() as conn:
        due = [await make_item(conn, scheduled_at=now - timedelta(seconds=i))
               for i in range(240)]
        later = [await make_item(conn, scheduled_at=now + timedelta(seconds=1 + i))
                 for i in range(10)]
        others = [await make_item(conn, status="claimed") for _ in range(5)]
        others += [await make_item(conn, status="publishing", scheduled_at=now - timedelta(1))
                   for _ in range(5)]

    def scheduler(pool):
        return lambda: take_due_items(pool, now, 17, REQUEUE)

    taken = await drain([scheduler(a), scheduler(b), scheduler(a), scheduler(b)])

    ids = [t.item_id for t in taken]
    assert len(ids) == len(set(ids)), "an item was handed out twice"
    assert set(ids) == set(due)
    by_id = {t.item_id: t.scheduled_at for t in taken}
    assert by_id[due[7]] == now - timedelta(seconds=7)
    async with a.acquire() as conn:
        marks = dict(await conn.fetch("SELECT id, due_enqueued_at FROM distribution_items"))
    assert {marks[i] for i in due} == {now}
    assert {marks[i] for i in later + others} == {None}


async def test_a_batch_takes_the_earliest_due_items_and_skips_those_not_yet_due(pools):
    a, _ = pools
    now = utcnow()
    async with a.acquire() as conn:
        ids = [await make_item(conn, scheduled_at=now - timedelta(minutes=m))
               for m in (1, 5, 3, 4, 2)]
        await make_item(conn, scheduled_at=now + timedelta(seconds=1))

    first = await take_due_items(a, now, 3, REQUEUE)
    assert {t.item_id for t in first} == {ids[1], ids[3], ids[2]}  # 5, 4, 3 minutes late
    rest = await take_due_items(a, now, 10, REQUEUE)
    assert {t.item_id for t in rest} == {ids[4], ids[0]}
    assert await take_due_items(a, now, 10, REQUEUE) == []


async def test_an_enqueue_older_than_the_cutoff_is_taken_again(pools):
    a, _ = pools
    now = utcnow()
    async with a.acquire() as conn:
        stale = await make_item(conn, scheduled_at=now - timedelta(minutes=20),
                                  due_enqueued_at=now - timedelta(minutes=10))
        fresh = await make_item(conn, scheduled_at=now - timedelta(minutes=20),
                                  due_enqueued_at=now - timedelta(minutes=1))

    assert [t.item_id for t in await take_due_items(a, now, 10, REQUEUE)] == [stale]
    assert await take_due_items(a, now, 10, REQUEUE) == []
    async with a.acquire() as conn:
        assert await conn.fetchval(
            "SELECT due_enqueued_at FROM distribution_items WHERE id = $1", stale) == now
    later = now + timedelta(minutes=6)
    assert {t.item_id for t in await take_due_items(a, later, 10, REQUEUE)} == {stale, fresh}


# ------------------------------------------------------------------------------------------
# lease_platform_attempts


async def test_a_lease_round_takes_snapchat_first_but_only_within_its_own_places(pools):
    a, _ = pools
    now = utcnow()
    async with a.acquire() as conn:
        for platform, due in (("tiktok", now - timedelta(minutes=1)), ("snapchat", now)):
            for n in range(4):  # by due time alone, every tiktok attempt would come first
                item = await make_item(conn, status="publishing", platforms=(platform,))
                await make_platform_row(conn, item, platform,
                                        next_attempt_at=due - timedelta(seconds=n))

    def platforms(attempts) -> list[str]:
        return sorted(t.platform for t in attempts)
    assert platforms(await lease_round(a, now, LEASE, places=5, heavy_places=2)) == [
        "snapchat", "snapchat", "tiktok", "tiktok", "tiktok"]
    # no snapchat place free: the last tiktok attempt is taken, the snapchat ones wait
    assert platforms(await lease_round(a, now, LEASE, places=10, heavy_places=0)) == ["tiktok"]
    assert platforms(await lease_round(a, now, LEASE, places=10, heavy_places=8)) == [
        "snapchat", "snapchat"]
    assert await lease_platform_attempts(a, now, 10, LEASE) == []


async def test_platform_attempts_whose_time_came_are_recorded_before_they_are_returned(pools):
    a, b = pools
    now = utcnow()
    async with a.acquire() as conn:
        one = await make_item(conn, status="publishing", platforms=("tiktok", "youtube"))
        await make_platform_row(conn, one, "tiktok", next_attempt_at=now - timedelta(seconds=1),
                                  key_attempt=2, attempts=3)
        await make_platform_row(conn, one, "youtube", next_attempt_at=now + timedelta(seconds=1))
        await conn.execute(Q["upsert_caption"], one, "hello", ["a", "b"], None,
                           {"tiktok": {"text": "hi tiktok", "hashtags": ["t"]}})
        await conn.execute(Q["upsert_overlay"], one, "outro", 2.0)
        await conn.execute(Q["upsert_overlay"], one, "intro", 1.5)
        two = await make_item(conn, status="publishing",
                                platforms=("instagram", "snapchat", "youtube"))
        await make_platform_row(conn, two, "instagram", next_attempt_at=now)
        await make_platform_row(conn, two, "snapchat", status="published", post_id="s1",
                                  next_attempt_at=now - timedelta(minutes=1))
        await make_platform_row(conn, two, "youtube", status="failed",
                                  next_attempt_at=now - timedelta(minutes=1))

    taken = await lease_platform_attempts(a, now, 10, LEASE)

    assert {(t.item_id, t.platform) for t in taken} == {(one, "tiktok"), (two, "instagram")}
    tiktok = next(t for t in taken if t.item_id == one)
    assert (tiktok.attempts, tiktok.key_attempt) == (4, 2)
    assert (tiktok.influencer_id, tiktok.clip_id) == (f"inf-{one}", f"clip-{one}")
    assert tiktok.caption == {"text": "hi tiktok", "hashtags": ["t"]}
    assert tiktok.overlays == [{"type": "intro", "duration_seconds": 1.5},
                               {"type": "outro", "duration_seconds": 2.0}]  # play order
    instagram = next(t for t in taken if t.item_id == two)
    assert (instagram.attempts, instagram.key_attempt, instagram.overlays) == (1, 1, [])
    assert instagram.caption == {"text": "", "hashtags": []}
    async with b.acquire() as conn:  # committed: another worker sees the attempt recorded
        rows = {(r["item_id"], r["platform"]): r for r in await conn.fetch(
            "SELECT * FROM distribution_platform_status")}
    assert (rows[one, "tiktok"]["status"], rows[one, "tiktok"]["attempts"],
            rows[one, "tiktok"]["next_attempt_at"]) == ("publishing", 4, now + LEASE)
    assert (rows[two, "instagram"]["status"], rows[two, "instagram"]["attempts"],
            rows[two, "instagram"]["next_attempt_at"]) == ("publishing", 1, now + LEASE)
    assert rows[one, "youtube"]["status"] == "pending" and rows[one, "youtube"]["attempts"] == 0
    assert rows[two, "snapchat"]["status"] == "published"
    assert rows[two, "youtube"]["status"] == "failed"
    assert await lease_platform_attempts(b, now, 10, LEASE) == []


async def test_a_platform_attempt_is_never_given_to_two_workers_at_once(pools):
    a, b = pools
    now = utcnow()
    expected = set()
    async with a.acquire() as conn:
        for i in range(60):
            item = await make_item(conn, status="publishing",
                                     platforms=("tiktok", "instagram", "youtube"))
            for platform in ("tiktok", "instagram", "youtube"):
                await make_platform_row(conn, item, platform,
                                          next_attempt_at=now - timedelta(seconds=i))
                expected.add((item, platform))

    def publisher(pool):
        return lambda: lease_platform_attempts(pool, now, 13, LEASE)

    taken = await drain([publisher(a), publisher(b), publisher(a), publisher(b)])

    keys = [(t.item_id, t.platform) for t in taken]
    assert len(keys) == len(set(keys)), "an attempt was handed out twice"
    assert set(keys) == expected
    assert {t.attempts for t in taken} == {1}


async def test_an_attempt_whose_lease_ran_out_is_taken_again_with_the_same_key(pools):
    a, b = pools
    now = utcnow()
    async with a.acquire() as conn:
        item = await make_item(conn, status="publishing", platforms=("youtube",))
        await make_platform_row(conn, item, "youtube", next_attempt_at=now, key_attempt=3)

    [first] = await lease_platform_attempts(a, now, 10, LEASE)
    assert (first.attempts, first.key_attempt) == (1, 3)
    assert await lease_platform_attempts(b, now + LEASE - timedelta(seconds=1), 10, LEASE) == []

    expired = now + LEASE + timedelta(seconds=1)
    [again] = await lease_platform_attempts(b, expired, 10, LEASE)
    assert (again.item_id, again.platform) == (item, "youtube")
    assert (again.attempts, again.key_attempt) == (2, 3)
    async with a.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM distribution_platform_status WHERE item_id = $1",
                                  item)
    assert (row["status"], row["attempts"], row["key_attempt"], row["next_attempt_at"]) == (
        "publishing", 2, 3, expired + LEASE)


async def test_the_publisher_skips_platforms_of_an_item_a_command_has_locked(pools):
    a, b = pools
    now = utcnow()
    async with a.acquire() as conn:
        item = await make_item(conn, status="publishing", platforms=("tiktok",))
        await make_platform_row(conn, item, "tiktok", next_attempt_at=now)

    async with a.acquire() as conn, conn.transaction():
        assert await conn.fetchval(Q["lock_items"], [item]) == 1
        # skipped, not waited for: the command may hold the lock for a while
        assert await asyncio.wait_for(lease_platform_attempts(b, now, 10, LEASE), 5) == []
    [taken] = await lease_platform_attempts(b, now, 10, LEASE)
    assert taken.item_id == item


# ------------------------------------------------------------------------------------------
# outbox


def envelope(item_id: str, now: datetime) -> dict:
    return make_envelope("distribution.published", item_id, {"item_id": item_id}, now,
                         unique("trace"))


async def test_only_one_transaction_at_a_time_leads_the_outbox_relay(pools):
    a, b = pools
    async with a.acquire() as first, b.acquire() as second:
        async with first.transaction():
            assert await OutboxRepository(first).try_lead() is True
            async with second.transaction():
                assert await OutboxRepository(second).try_lead() is False
        async with second.transaction():  # the first transaction ended: the lead is free
            assert await OutboxRepository(second).try_lead() is True
            async with first.transaction():
                assert await OutboxRepository(first).try_lead() is False


async def test_pending_outbox_rows_come_in_id_order_until_marked_published(pools):
    a, b = pools
    now = utcnow()
    envelopes = [envelope(unique("item"), now) for _ in range(5)]
    for batch in (envelopes[:1], envelopes[1:2], envelopes[2:]):  # the last three at once
        async with unit_of_work(a) as uow:
            for env in batch:
                uow.outbox.add("distribution.published", env)
            await uow.commit()

    async with b.acquire() as conn:
        outbox = OutboxRepository(conn)
        rows = await outbox.pending(10)
        assert [r["event_id"] for r in rows] == [uuid.UUID(e["event_id"]) for e in envelopes]
        assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
        assert json.loads(rows[0]["envelope"]) == envelopes[0]  # the text sent as it is
        assert rows[0]["topic"] == "distribution.published"
        assert rows[0]["partition_key"] == envelopes[0]["partition_key"]
        assert [r["id"] for r in await outbox.pending(2)] == [r["id"] for r in rows[:2]]

        async with conn.transaction():
            await outbox.mark_published([r["id"] for r in rows[:2]])
            await outbox.note_failure([rows[2]["id"]], "broker down " * 100)
        assert [r["id"] for r in await outbox.pending(10)] == [r["id"] for r in rows[2:]]
        marked = await conn.fetch(
            "SELECT id, status, published_at, attempts, last_error FROM distribution_outbox"
            " ORDER BY id")
    assert [(m["status"], m["attempts"]) for m in marked] == [
        ("published", 1), ("published", 1), ("pending", 1), ("pending", 0), ("pending", 0)]
    assert all(m["published_at"] is not None for m in marked[:2])
    assert marked[2]["published_at"] is None and len(marked[2]["last_error"]) == 500


async def test_an_outbox_row_committed_late_is_still_pending_in_id_order(pools):
    a, b = pools
    now = utcnow()
    slow, quick = envelope(unique("item"), now), envelope(unique("item"), now)
    async with unit_of_work(a) as first, b.acquire() as reader:
        first.outbox.add("distribution.published", slow)
        await first.flush()  # written: the lower id
        async with unit_of_work(b) as second:
            second.outbox.add("distribution.published", quick)
            await second.commit()
        assert [r["event_id"] for r in await OutboxRepository(reader).pending(10)] == [
            uuid.UUID(quick["event_id"])]
        await first.commit()
        rows = await OutboxRepository(reader).pending(10)
    assert [r["event_id"] for r in rows] == [uuid.UUID(slow["event_id"]),
                                             uuid.UUID(quick["event_id"])]
