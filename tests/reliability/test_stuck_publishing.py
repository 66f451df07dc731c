"""An item left in `publishing` by a crash is taken again after the publish lease, and
finished without posting twice: the platform that had already answered is not called
again, and the one whose call was cut short is called again with the same
Idempotency-Key, so that it answers "already posted" (409) instead of posting again."""

from __future__ import annotations

import time

from app.topics import PUBLISHED
from tests.clients import claim_and_wait
from fakes.gateway import Answer
from tests.support import eventually

LEASE_SECONDS = 3
HANG_SECONDS = 20          # the call that posted, then never answered
TIMEOUT_SECONDS = 30       # longer than the hang: only the crash ends the call
DONE, STUCK = "tiktok", "instagram"


async def test_an_item_stuck_in_publishing_is_finished_after_the_lease_without_posting_twice(
        stack, record_figures):
    started = time.monotonic()
    env = {"DISTRIBUTION_PUBLISH_LEASE_SECONDS": str(LEASE_SECONDS),
           "DISTRIBUTION_PLATFORM_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)}
    first = await stack.started_worker(**env)
    api = stack.api(first)
    item_id, influencer, _ = await claim_and_wait(stack.topics, api)

    stack.platforms.script(STUCK, Answer.hang(HANG_SECONDS, posts=True))
    code, body = await api.post(item_id, "publish-multi", influencer,
                                {"platforms": [DONE, STUCK]})
    assert code == 202, body

    async def platform_rows() -> dict:
        rows = await stack.pool.fetch(
            "SELECT platform, status, attempts, key_attempt, post_id, next_attempt_at "
            "FROM distribution_platform_status WHERE item_id = $1", item_id)
        return {r["platform"]: dict(r) for r in rows}

    async def one_done_one_hanging():
        rows = await platform_rows()
        hanging = [c for c in stack.platforms.calls_for(item_id, STUCK) if c.answer == "hang"]
        return (rows.get(DONE, {}).get("status") == "published"
                and rows.get(STUCK, {}).get("status") == "publishing" and hanging)

    await eventually(one_done_one_hanging, timeout=30, interval=0.05,
                     what=f"{DONE} published and the {STUCK} call hanging")
    [hung] = stack.platforms.calls_for(item_id, STUCK)
    assert time.monotonic() - hung.monotonic < HANG_SECONDS  # still in flight
    first.kill()  # SIGKILL: the answer of the hung call will never be seen

    assert len(stack.platforms.calls_for(item_id, STUCK)) == 1, \
        "the lease ran out (and the call was repeated) before the kill"
    left = await platform_rows()
    assert (await stack.pool.fetchval(
        "SELECT status FROM distribution_items WHERE id = $1", item_id)) == "publishing"
    assert left[STUCK]["status"] == "publishing" and left[STUCK]["attempts"] == 1
    assert len(stack.platforms.posts_for(item_id, STUCK)) == 1  # it did post
    lease_expiry = left[STUCK]["next_attempt_at"].timestamp()

    second = await stack.started_worker(**env)
    item = await stack.api(second).wait_for_item(item_id, influencer, status="published",
                                                 timeout=60)
    assert {p["platform"]: p["status"] for p in item["platform_status"]} == {
        DONE: "published", STUCK: "published"}

    # the platform that had answered was not called again
    done_calls = stack.platforms.calls_for(item_id, DONE)
    assert [(c.idempotency_key, c.status, c.answer) for c in done_calls] == [
        (f"{item_id}:{DONE}:1", 201, "ok")]
    # the hung one was called again after the lease, with the same key, and said 409
    stuck_calls = stack.platforms.calls_for(item_id, STUCK)
    key = f"{item_id}:{STUCK}:1"
    assert [(c.idempotency_key, c.status, c.answer) for c in stuck_calls] == [
        (key, None, "hang"), (key, 409, "repeat")], stuck_calls
    retaken_after = stuck_calls[1].monotonic - stuck_calls[0].monotonic
    assert stuck_calls[1].at >= lease_expiry - 0.5  # not before the lease ran out

    # one post per platform, and the item carries each post's id
    posts = {p: stack.platforms.posts_for(item_id, p) for p in (DONE, STUCK)}
    lost = sum(1 for made in posts.values() if not made)
    doubled = sum(len(made) - 1 for made in posts.values() if len(made) > 1)
    assert lost == 0 and doubled == 0, posts
    rows = await platform_rows()
    assert {p: r["post_id"] for p, r in rows.items()} == {
        p: made[0].post_id for p, made in posts.items()}
    assert rows[STUCK]["key_attempt"] == 1 and rows[STUCK]["attempts"] == 2
    analytics = await stack.pool.fetch(
        "SELECT platform, event_type FROM publishing_analytics WHERE item_id = $1", item_id)
    assert sorted((r["platform"], r["event_type"]) for r in analytics) == sorted(
        [(DONE, "published"), (STUCK, "published")])

    # one outcome: one outbox row, relayed (at least once, always with its event id)
    outbox = await stack.pool.fetch(
        "SELECT topic, event_id FROM distribution_outbox WHERE partition_key = $1", item_id)
    assert [r["topic"] for r in outbox] == ["distribution.published"]
    event_id = str(outbox[0]["event_id"])

    async def relayed():
        records = await stack.topics.records_for(PUBLISHED, item_id)
        return records or None

    records = await eventually(relayed, timeout=30, interval=0.2,
                               what="the published event on the topic")
    assert {r["event_id"] for r in records} == {event_id}
    assert records[0]["data"]["status"] == "published"

    record_figures(events=len(posts), faults=2, lost=lost, doubled=doubled,
                   calls=len(done_calls) + len(stuck_calls), repeated_calls_409=1,
                   retaken_after_seconds=round(retaken_after, 1),
                   seconds=round(time.monotonic() - started, 1))
