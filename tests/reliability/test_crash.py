"""A worker SIGKILLed in the middle of its work: what it had started is finished by the
next worker, nothing is lost and nothing is done twice.

(a) while it ingests a burst of claimed events (some delivered twice): every claim ends as
    exactly one item;
(b) while it publishes a batch of due items on two platforms: every platform gets exactly
    one post per item, every outcome exactly one outbox row, and every item its
    distribution.published event (repeats only with the same event id).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

from app.topics import CLAIMED_DLQ, PUBLISHED
from tests.factories import claimed_event, unique
from tests.stack import NO_POSTING_LIMITS
from tests.support import eventually

CLAIMS = 2_500
REDELIVERED = 250  # claims whose event is delivered a second time, unchanged

DUE_ITEMS = 200
PLATFORMS = ("tiktok", "instagram")
SCHEDULE_CHUNK = 20

POLL = 0.01  # seconds between probes while waiting for the moment to kill




async def test_a_worker_killed_while_ingesting_claims_loses_and_doubles_none(
        stack, record_figures):
    started = time.monotonic()
    influencer, campaign = unique("influencer"), unique("campaign")
    claims = {unique("claim"): unique("clip") for _ in range(CLAIMS)}
    events = [claimed_event(claim_id, clip_id, influencer, campaign)
              for claim_id, clip_id in claims.items()]
    rng = random.Random(31)
    stream = events + rng.sample(events, REDELIVERED)  # the same events, delivered again
    rng.shuffle(stream)

    async def count() -> int:
        return await stack.pool.fetchval(
            "SELECT count(*) FROM distribution_items WHERE influencer_id = $1", influencer)

    async def a_quarter_ingested() -> bool:
        return await count() >= CLAIMS // 4

    first = await stack.started_worker()
    producing = asyncio.create_task(stack.topics.produce_fast("distribution.claimed", stream))
    try:
        await eventually(a_quarter_ingested, timeout=60, interval=POLL,
                     what="a quarter of the claims")
        first.kill()  # SIGKILL, mid-stream
    finally:
        await producing
    at_kill = await count()
    assert 0 < at_kill < CLAIMS, f"the kill did not land mid-stream ({at_kill} of {CLAIMS})"

    killed_at = time.monotonic()
    second = await stack.started_worker()

    async def all_ingested():
        return await count() == CLAIMS

    await eventually(all_ingested, timeout=60, interval=0.1,
                     what=f"all {CLAIMS} claims ingested after the restart")
    recovered_in = time.monotonic() - killed_at

    rows = await stack.pool.fetch(
        "SELECT id, clip_id, campaign_id, status FROM distribution_items "
        "WHERE influencer_id = $1", influencer)
    ids = Counter(r["id"] for r in rows)
    doubled = sum(n - 1 for n in ids.values())
    lost = len(set(claims) - set(ids))
    assert lost == 0 and doubled == 0, (lost, doubled)
    assert len(rows) == len(claims)
    assert {r["id"]: r["clip_id"] for r in rows} == claims  # each claim is its own item
    assert {r["status"] for r in rows} == {"claimed"}
    assert {r["campaign_id"] for r in rows} == {campaign}
    # nothing refused: a redelivered event is a duplicate, not a dead letter
    dead = await stack.topics.read_all(CLAIMED_DLQ)
    assert [r for r in dead if r.key and r.key.decode() in claims] == []

    # the second worker saw part of the stream again (what the first had not committed)
    again = _logged_duplicates(second.log_path.read_text(errors="replace"))
    record_figures(events=len(stream), faults=1, lost=lost, doubled=doubled,
                   claims=CLAIMS, redelivered_in_input=REDELIVERED, items_at_kill=at_kill,
                   known_claims_after_restart=again,
                   recovery_seconds=round(recovered_in, 1),
                   seconds=round(time.monotonic() - started, 1))


def _logged_duplicates(log: str) -> int:
    total = 0
    for line in log.splitlines():
        if '"claims already known"' in line:
            try:
                total += json.loads(line).get("count", 0)
            except ValueError:
                pass
    return total


async def test_a_worker_killed_while_publishing_due_items_posts_each_once_per_platform(
        stack, record_figures):
    started = time.monotonic()
    # A short lease (default 60 s), so that the attempts the dead worker left in flight are
    # taken again soon after the restart, each with its idempotency key; not shorter, or a
    # worker whose results wait in the command agent's queue repeats its own calls (409s).
    # A short requeue, in case the kill fell between marking items due and sending them.
    # One account posts all 200: no posting limit (those have tests of their own).
    env = {"DISTRIBUTION_PUBLISH_LEASE_SECONDS": "8",
           "DISTRIBUTION_DUE_REQUEUE_SECONDS": "10", **NO_POSTING_LIMITS}
    first = await stack.started_worker(**env)
    api = stack.api(first)
    influencer, campaign = unique("influencer"), unique("campaign")
    ids = [unique("claim") for _ in range(DUE_ITEMS)]
    await stack.topics.produce_fast(
        "distribution.claimed", [claimed_event(i, unique("clip"), influencer, campaign)
                                 for i in ids])

    async def claimed_count():
        n = await stack.pool.fetchval(
            "SELECT count(*) FROM distribution_items WHERE influencer_id = $1", influencer)
        return n == DUE_ITEMS

    await eventually(claimed_count, timeout=60, interval=0.1, what="the claims ingested")

    # All due at one instant: far enough ahead for every schedule request to be accepted.
    due_at = datetime.now(timezone.utc) + timedelta(seconds=12)
    body = {"platforms": list(PLATFORMS), "scheduled_at": due_at.isoformat(),
            "caption": {"text": "crash test", "hashtags": ["ad"]}}
    scheduling = time.monotonic()
    for n in range(0, DUE_ITEMS, SCHEDULE_CHUNK):
        answers = await asyncio.gather(*(api.post(i, "schedule", influencer, body)
                                         for i in ids[n:n + SCHEDULE_CHUNK]))
        refused = [(code, answer) for code, answer in answers if code != 200]
        assert not refused, refused[:3]
    assert datetime.now(timezone.utc) < due_at, "scheduling took longer than the lead"
    scheduling = time.monotonic() - scheduling

    mine = set(ids)
    expected_posts = DUE_ITEMS * len(PLATFORMS)

    def posted() -> int:
        return sum(1 for p in stack.platforms.posts if p.item_id in mine)

    async def half_posted():
        return posted() >= expected_posts // 2

    await eventually(half_posted, timeout=60, interval=POLL, what="half of the posts")
    first.kill()  # SIGKILL while posting
    at_kill = posted()
    assert at_kill < expected_posts, f"the kill did not land mid-publishing ({at_kill})"
    killed_at = time.monotonic()

    await stack.started_worker(**env)

    async def settled():
        row = await stack.pool.fetchrow(
            """SELECT
                 (SELECT count(*) FROM distribution_items
                   WHERE id = ANY($1::text[]) AND status = 'published') AS items,
                 (SELECT count(*) FROM distribution_outbox
                   WHERE partition_key = ANY($1::text[]) AND status = 'pending') AS pending""",
            ids)
        return row["items"] == DUE_ITEMS and row["pending"] == 0

    try:
        await eventually(settled, timeout=75, interval=0.2,
                         what="every item published and its event relayed after the restart")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{await _publishing_state(stack, ids)}") from None
    recovered_in = time.monotonic() - killed_at

    # the service's record: one published row per item and platform, with the post's id
    rows = await stack.pool.fetch(
        "SELECT item_id, platform, status, post_id FROM distribution_platform_status "
        "WHERE item_id = ANY($1::text[])", ids)
    assert Counter((r["item_id"], r["platform"]) for r in rows) == Counter(
        {(i, p): 1 for i in ids for p in PLATFORMS})
    assert {r["status"] for r in rows} == {"published"}

    # the platforms' record: exactly one post per item and platform; a repeated call only
    # with the same key, answered 409 (already posted)
    posts = defaultdict(list)
    for p in stack.platforms.posts:
        if p.item_id in mine:
            posts[(p.item_id, p.platform)].append(p)
    calls = defaultdict(list)
    for c in stack.platforms.calls:
        if c.item_id in mine:
            calls[(c.item_id, c.platform)].append(c)
    lost = sum(1 for i in ids for p in PLATFORMS if not posts[(i, p)])
    doubled = sum(len(v) - 1 for v in posts.values() if len(v) > 1)
    assert lost == 0 and doubled == 0, (lost, doubled)
    repeats = 0
    for (item_id, platform), made in posts.items():
        [post] = made
        assert post.idempotency_key == f"{item_id}:{platform}:1"
        answered = [(c.idempotency_key, c.status, c.answer) for c in calls[(item_id, platform)]]
        assert answered[0] == (post.idempotency_key, 201, "ok"), answered
        assert all(a == (post.idempotency_key, 409, "repeat") for a in answered[1:]), answered
        repeats += len(answered) - 1
    post_ids = {(r["item_id"], r["platform"]): r["post_id"] for r in rows}
    assert post_ids == {k: v[0].post_id for k, v in posts.items()}
    analytics = await stack.pool.fetch(
        "SELECT item_id, platform, event_type FROM publishing_analytics "
        "WHERE item_id = ANY($1::text[])", ids)
    assert Counter((r["item_id"], r["platform"], r["event_type"]) for r in analytics) == \
        Counter({(i, p, "published"): 1 for i in ids for p in PLATFORMS})

    # one outcome, one outbox row; its event reaches the topic, repeats with the same id
    outbox = await stack.pool.fetch(
        "SELECT partition_key, topic, event_id FROM distribution_outbox "
        "WHERE partition_key = ANY($1::text[])", ids)
    per_item = Counter(r["partition_key"] for r in outbox)
    assert per_item == Counter({i: 1 for i in ids}), per_item.most_common(3)
    assert {r["topic"] for r in outbox} == {"distribution.published"}
    event_ids = {r["partition_key"]: str(r["event_id"]) for r in outbox}

    async def every_item_on_the_topic():
        seen = defaultdict(list)
        for record in await stack.topics.read_all(PUBLISHED):
            key = record.key.decode() if record.key else None
            if key in mine:
                seen[key].append(json.loads(record.value)["event_id"])
        return seen if all(seen[i] for i in ids) else None

    seen = await eventually(every_item_on_the_topic, timeout=30, interval=0.5,
                            what="a distribution.published event for every item")
    assert all(set(v) == {event_ids[k]} for k, v in seen.items()), \
        [(k, v) for k, v in seen.items() if set(v) != {event_ids[k]}][:3]
    events_repeated = sum(len(v) - 1 for v in seen.values())

    record_figures(events=expected_posts, faults=1, lost=lost, doubled=doubled,
                   items=DUE_ITEMS, platforms=len(PLATFORMS), posts_at_kill=at_kill,
                   repeated_calls_409=repeats, published_events_repeated=events_repeated,
                   schedule_seconds=round(scheduling, 1),
                   recovery_seconds=round(recovered_in, 1),
                   seconds=round(time.monotonic() - started, 1))


async def _publishing_state(stack, ids: list[str]) -> str:
    """What is left unfinished, for a failure message."""
    items = await stack.pool.fetch(
        "SELECT status, count(*) FROM distribution_items WHERE id = ANY($1::text[]) "
        "GROUP BY status", ids)
    platforms = await stack.pool.fetch(
        "SELECT status, attempts, key_attempt, count(*), min(next_attempt_at) AS next_at, "
        "min(last_error) AS error FROM distribution_platform_status "
        "WHERE item_id = ANY($1::text[]) GROUP BY 1, 2, 3", ids)
    outbox = await stack.pool.fetch(
        "SELECT status, count(*) FROM distribution_outbox "
        "WHERE partition_key = ANY($1::text[]) GROUP BY status", ids)
    tails = "\n".join(f"--- {w.log_path.name}\n{w.log_tail(20)}" for w in stack.workers)
    return (f"items {[dict(r) for r in items]}\nplatforms {[dict(r) for r in platforms]}\n"
            f"outbox {[dict(r) for r in outbox]}\nnow {datetime.now(timezone.utc)}\n{tails}")
