"""Idempotency-Key records on real PostgreSQL: taken once, replayed, released, forgotten,
and pruned together with old applied-command records."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from app.db import idempotency
from app.db.idempotency import KeyScope, Run, StoredAnswer
from app.domain.errors import IdempotencyKeyInUse, IdempotencyKeyMismatch
from tests.factories import unique

DAY, LEASE = timedelta(hours=24), timedelta(seconds=15)


def now() -> datetime:
    return datetime.now(timezone.utc)


def scope(**changes) -> KeyScope:
    values = dict(caller=unique("inf"), route="schedule", item_id=unique("claim"),
                  key=unique("key"))
    return KeyScope(**{**values, **changes})


async def test_the_first_request_takes_the_key_and_the_next_finds_it_in_flight(pool):
    s = scope()
    first = await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
    assert isinstance(first, Run) and first.command_id.startswith("http:")
    with pytest.raises(IdempotencyKeyInUse):
        await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)


async def test_concurrent_first_requests_let_exactly_one_run(pool):
    s = scope()
    results = await asyncio.gather(*(idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
                                     for _ in range(10)), return_exceptions=True)
    assert sum(isinstance(r, Run) for r in results) == 1
    assert sum(isinstance(r, IdempotencyKeyInUse) for r in results) == 9


async def test_a_completed_key_replays_its_answer_and_refuses_another_body(pool):
    s = scope()
    await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
    await idempotency.complete(pool, s, 202, {"id": s.item_id, "status": "publishing"})
    again = await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
    assert again == StoredAnswer(202, {"id": s.item_id, "status": "publishing"})
    with pytest.raises(IdempotencyKeyMismatch):
        await idempotency.begin(pool, s, "h2", now(), DAY, LEASE)


async def test_a_key_is_scoped_by_caller_route_and_item(pool):
    s = scope()
    await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
    for other in (scope(caller="someone-else", route=s.route, item_id=s.item_id, key=s.key),
                  scope(caller=s.caller, route="publish", item_id=s.item_id, key=s.key),
                  scope(caller=s.caller, route=s.route, item_id="another-item", key=s.key)):
        assert isinstance(await idempotency.begin(pool, other, "h2", now(), DAY, LEASE), Run)


async def test_a_released_key_sends_the_same_command_again(pool):
    s = scope()
    first = await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
    await idempotency.release(pool, s)
    assert await idempotency.begin(pool, s, "h1", now(), DAY, LEASE) == first


async def test_a_key_left_in_flight_by_a_crash_is_taken_over_after_its_lease(pool):
    s = scope()
    first = await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
    later = now() + LEASE + timedelta(seconds=1)
    assert await idempotency.begin(pool, s, "h1", later, DAY, LEASE) == first
    with pytest.raises(IdempotencyKeyInUse):  # and it is in flight again
        await idempotency.begin(pool, s, "h1", later, DAY, LEASE)


async def test_a_forgotten_key_can_be_used_with_another_body(pool):
    s = scope()
    first = await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
    await idempotency.forget(pool, s)
    second = await idempotency.begin(pool, s, "h2", now(), DAY, LEASE)
    assert isinstance(second, Run) and second != first


async def test_a_key_older_than_its_retention_counts_as_unused(pool):
    s = scope()
    await idempotency.begin(pool, s, "h1", now(), DAY, LEASE)
    await idempotency.complete(pool, s, 200, {"old": True})
    tomorrow = now() + DAY + timedelta(minutes=1)
    assert isinstance(await idempotency.begin(pool, s, "h2", tomorrow, DAY, LEASE), Run)


async def test_pruning_deletes_only_what_is_past_each_retention(pool):
    old, fresh = scope(), scope()
    for s in (old, fresh):
        await idempotency.begin(pool, s, "h", now(), DAY, LEASE)
    old_command, fresh_command = unique("cmd"), unique("cmd")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE distribution_idempotency_keys SET created_at = now() - "
                           "interval '25 hours' WHERE item_id = $1", old.item_id)
        for command_id, age in ((old_command, "15 days"), (fresh_command, "13 days")):
            await conn.execute(
                "INSERT INTO distribution_processed_commands (command_id, item_id, kind, reply,"
                f" processed_at) VALUES ($1, 'i', 'retry', '{{}}', now() - interval '{age}')",
                command_id)
    keys, commands = await idempotency.prune(pool, now(), DAY, timedelta(days=14), batch=1)
    assert keys >= 1 and commands >= 1
    async with pool.acquire() as conn:
        left = {r["item_id"] for r in await conn.fetch(
            "SELECT item_id FROM distribution_idempotency_keys WHERE item_id = ANY($1)",
            [old.item_id, fresh.item_id])}
        commands_left = {r["command_id"] for r in await conn.fetch(
            "SELECT command_id FROM distribution_processed_commands WHERE command_id = ANY($1)",
            [old_command, fresh_command])}
    assert left == {fresh.item_id}
    assert commands_left == {fresh_command}
