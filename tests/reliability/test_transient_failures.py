"""Transient platform failures (timeouts, 429 with Retry-After, 5xx) are retried with
exponential backoff and jitter, with the same Idempotency-Key, up to the configured number
of attempts; any other 4xx fails the platform at once. Attempts, the last error and the
next attempt time are visible on the item while it retries (DESIGN §3 "Platform gateway").

The backoff of attempt n is drawn from [c/2, c] with c = min(max, base * 2**(n-1)); a
Retry-After is a floor (held to the maximum)."""

from __future__ import annotations

import time
from datetime import datetime

from app.topics import PUBLISHED
from tests.clients import claim_and_wait
from fakes.gateway import Answer, Call
from tests.support import eventually

MAX_ATTEMPTS = 4
BASE = 1.0          # backoff ceilings 1, 2, 4 s for attempts 1, 2, 3
BACKOFF_MAX = 8.0
TIMEOUT = 3.0       # each platform call (a hanging one must not hold back the others)
RETRY_AFTER = 2     # seconds, from a 429
#: what can come on top of a backoff before the next call: the publisher's poll interval
#: (0.2 s in tests), the result's trip through the command agent, a loaded machine
SLACK = 1.0

ENV = {"DISTRIBUTION_MAX_PLATFORM_ATTEMPTS": str(MAX_ATTEMPTS),
       "DISTRIBUTION_BACKOFF_BASE_SECONDS": str(BASE),
       "DISTRIBUTION_BACKOFF_MAX_SECONDS": str(BACKOFF_MAX),
       "DISTRIBUTION_PLATFORM_TIMEOUT_SECONDS": str(TIMEOUT)}


def ceiling(attempt: int) -> float:
    return min(BACKOFF_MAX, BASE * 2 ** (attempt - 1))


def gaps(calls: list[Call]) -> list[float]:
    return [b.monotonic - a.monotonic for a, b in zip(calls, calls[1:])]


def parse_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


async def watch_until_settled(api, item_id: str, influencer: str,
                              timeout: float = 60.0) -> tuple[dict, list[tuple[float, dict]]]:
    """GET the item every 50 ms until it is published or failed: (final item, every
    (time seen, platform_status row) observed on the way)."""
    seen: list[tuple[float, dict]] = []
    last: list[dict] = []

    async def probe():
        code, body = await api.get(item_id, influencer)
        assert code == 200, body
        now = time.time()
        seen.extend((now, row) for row in body["platform_status"])
        last[:] = [body]
        return body if body["status"] in ("published", "failed") else None

    try:
        final = await eventually(probe, timeout=timeout, interval=0.05,
                                 what=f"item {item_id} settled")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the item then: {last}") from None
    return final, seen


def observed(seen: list[tuple[float, dict]], platform: str) -> list[tuple[float, dict]]:
    return [(at, row) for at, row in seen if row["platform"] == platform]


def assert_seen_retrying(seen: list[tuple[float, dict]], platform: str, up_to: int) -> None:
    """While it retried, GET showed the attempts rising to `up_to`, and between attempts a
    pending row with the last error and a next attempt in the future."""
    rows = observed(seen, platform)
    attempts = [row["attempts"] for _, row in rows]
    assert attempts == sorted(attempts), (platform, attempts)  # never goes back
    assert set(range(1, up_to + 1)) <= set(attempts), (platform, sorted(set(attempts)))
    waiting = [(at, row) for at, row in rows
               if row["status"] == "pending" and row["attempts"] >= 1]
    assert waiting, (platform, "never seen waiting for its next attempt")
    assert all(row["error"] for _, row in waiting), waiting
    future = [(at, row) for at, row in waiting if parse_time(row["next_attempt_at"]) > at]
    assert future, (platform, "next_attempt_at never seen in the future", waiting[:3])
    # every attempt's wait was seen with its own error and next time
    assert {row["attempts"] for _, row in waiting} >= set(range(1, up_to)), waiting


async def published_events(stack, item_id: str) -> list[dict]:
    async def found():
        return await stack.topics.records_for(PUBLISHED, item_id) or None
    return await eventually(found, timeout=30, interval=0.2,
                            what=f"published event of {item_id}")


async def test_transient_failures_are_retried_with_backoff_and_one_key_until_published(
        stack, record_figures):
    started = time.monotonic()
    worker = await stack.started_worker(**ENV)
    api = stack.api(worker)
    item_id, influencer, _ = await claim_and_wait(stack.topics, api)

    p = stack.platforms
    p.script("tiktok", Answer.status(500), Answer.status(503, message="overloaded"),
             Answer.status(502))                       # then 201
    p.script("instagram", Answer.status(429, retry_after=RETRY_AFTER))   # then 201
    p.script("youtube", Answer.hang(TIMEOUT + 3))      # a timeout, then 201
    faults = 5
    code, body = await api.post(item_id, "publish-multi", influencer,
                                {"platforms": ["tiktok", "instagram", "youtube"]})
    assert code == 202, body
    final, seen = await watch_until_settled(api, item_id, influencer)

    assert final["status"] == "published", final
    rows = {r["platform"]: r for r in final["platform_status"]}
    assert {p: (r["status"], r["attempts"], r["error"]) for p, r in rows.items()} == {
        "tiktok": ("published", 4, None), "instagram": ("published", 2, None),
        "youtube": ("published", 2, None)}
    assert final["retry_count"] == 3 + 1 + 1
    assert_seen_retrying(seen, "tiktok", up_to=4)
    assert_seen_retrying(seen, "instagram", up_to=2)
    assert_seen_retrying(seen, "youtube", up_to=2)
    errors = {row["error"] for _, row in observed(seen, "tiktok") if row["error"]}
    assert {"HTTP 500 gateway error: scripted 500", "HTTP 503 gateway error: overloaded",
            "HTTP 502 gateway error: scripted 502"} <= errors, errors
    assert any(row["error"] == f"timeout: no answer within {TIMEOUT:g}s"
               for _, row in observed(seen, "youtube")), observed(seen, "youtube")
    assert any(row["error"].startswith("HTTP 429 rate limited")
               for _, row in observed(seen, "instagram") if row["error"])

    calls = {name: p.calls_for(item_id, name) for name in rows}
    # the same key on every attempt: no definite answer came before the last one
    for name, made in calls.items():
        assert [c.idempotency_key for c in made] == [f"{item_id}:{name}:1"] * len(made), made
    assert [c.status for c in calls["tiktok"]] == [500, 503, 502, 201]
    assert [c.status for c in calls["instagram"]] == [429, 201]
    assert [(c.answer, c.status) for c in calls["youtube"]] == [("hang", None), ("ok", 201)]

    # exponential backoff with jitter: each wait within [ceiling/2, ceiling] (+ slack)
    tiktok_gaps = gaps(calls["tiktok"])
    for attempt, gap in enumerate(tiktok_gaps, start=1):
        assert ceiling(attempt) / 2 - 0.05 <= gap <= ceiling(attempt) + SLACK, tiktok_gaps
    assert tiktok_gaps[2] > tiktok_gaps[0], tiktok_gaps  # [2, 4] s after [0.5, 1] s
    # Retry-After is honoured (it is above this attempt's backoff ceiling of 1 s)
    [instagram_gap] = gaps(calls["instagram"])
    assert RETRY_AFTER - 0.05 <= instagram_gap <= RETRY_AFTER + SLACK, instagram_gap
    # a timeout is a transient failure: the call is cut at the timeout, then backoff
    [youtube_gap] = gaps(calls["youtube"])
    assert TIMEOUT + ceiling(1) / 2 - 0.05 <= youtube_gap <= TIMEOUT + ceiling(1) + SLACK, \
        youtube_gap

    # one post per platform, each id on the item; one published event
    posts = {name: p.posts_for(item_id, name) for name in rows}
    lost = sum(1 for made in posts.values() if not made)
    doubled = sum(len(made) - 1 for made in posts.values())
    assert lost == 0 and doubled == 0, posts
    assert {n: r["post_id"] for n, r in rows.items()} == {
        n: made[0].post_id for n, made in posts.items()}
    events = await published_events(stack, item_id)
    assert len({e["event_id"] for e in events}) == 1, events

    record_figures(events=len(rows), faults=faults, lost=lost, doubled=doubled,
                   calls=sum(len(c) for c in calls.values()),
                   polls=len(seen) // len(rows),
                   tiktok_gaps=[round(g, 2) for g in tiktok_gaps],
                   retry_after_gap=round(instagram_gap, 2),
                   timeout_gap=round(youtube_gap, 2),
                   seconds=round(time.monotonic() - started, 1))


async def test_exhausted_attempts_fail_with_the_last_error_and_other_4xx_fail_at_once(
        stack, record_figures):
    started = time.monotonic()
    worker = await stack.started_worker(**ENV)
    api = stack.api(worker)
    item_id, influencer, _ = await claim_and_wait(stack.topics, api)

    p = stack.platforms
    p.script("tiktok", Answer.status(500), Answer.status(429, retry_after=1),
             Answer.hang(TIMEOUT + 3), Answer.status(503, message="still down"))
    p.script("instagram", Answer.status(400, message="caption breaks the community rules"))
    p.script("youtube", Answer.status(422, body={"error": {"message": "video too long"}}))
    faults = 6
    code, body = await api.post(item_id, "publish-multi", influencer,
                                {"platforms": ["tiktok", "instagram", "youtube"]})
    assert code == 202, body
    final, seen = await watch_until_settled(api, item_id, influencer)

    assert final["status"] == "failed", final
    assert final["failure_reason"] == "failed on instagram, tiktok, youtube"
    rows = {r["platform"]: r for r in final["platform_status"]}
    assert {n: (r["status"], r["attempts"], r["error"], r["next_attempt_at"])
            for n, r in rows.items()} == {
        "tiktok": ("failed", MAX_ATTEMPTS, "HTTP 503 gateway error: still down", None),
        "instagram": ("failed", 1, "caption breaks the community rules", None),
        "youtube": ("failed", 1, "video too long", None)}
    assert_seen_retrying(seen, "tiktok", up_to=MAX_ATTEMPTS)
    # a definite refusal is never retried: one call each, never seen waiting
    calls = {name: p.calls_for(item_id, name) for name in rows}
    assert [c.status for c in calls["instagram"]] == [400]
    assert [c.status for c in calls["youtube"]] == [422]
    for name in ("instagram", "youtube"):
        assert not [row for _, row in observed(seen, name) if row["status"] == "pending"
                    and row["attempts"] >= 1]
    assert [c.status for c in calls["tiktok"]] == [500, 429, None, 503]
    assert len({c.idempotency_key for c in calls["tiktok"]}) == 1
    tiktok_gaps = gaps(calls["tiktok"])  # after a 500, a 429 (Retry-After: 1), a timeout
    assert ceiling(1) / 2 - 0.05 <= tiktok_gaps[0] <= ceiling(1) + SLACK, tiktok_gaps
    assert max(1, ceiling(2) / 2) - 0.05 <= tiktok_gaps[1] <= ceiling(2) + SLACK, tiktok_gaps
    assert TIMEOUT + ceiling(3) / 2 - 0.05 <= tiktok_gaps[2] <= TIMEOUT + ceiling(3) + SLACK, \
        tiktok_gaps
    assert not p.posts_for(item_id)

    # the key advanced only where the platform answered for good
    keys = dict(await stack.pool.fetch(
        "SELECT platform, key_attempt FROM distribution_platform_status WHERE item_id = $1",
        item_id))
    assert keys == {"tiktok": 1, "instagram": 2, "youtube": 2}

    # a manual retry re-posts the failed platforms (all three), with attempts reset: the
    # unresolved transient one keeps its key, the refused ones use the next key
    code, body = await api.post(item_id, "retry", influencer)
    assert code == 202, body
    # (far less than the publish lease: an answer taken for a repeat would wait for it)
    final, _ = await watch_until_settled(api, item_id, influencer, timeout=30)
    assert final["status"] == "published", final
    assert {r["platform"]: (r["status"], r["attempts"]) for r in final["platform_status"]} == {
        n: ("published", 1) for n in rows}
    last_keys = {n: p.calls_for(item_id, n)[-1].idempotency_key for n in rows}
    assert last_keys == {"tiktok": f"{item_id}:tiktok:1",
                         "instagram": f"{item_id}:instagram:2",
                         "youtube": f"{item_id}:youtube:2"}
    posts = {n: p.posts_for(item_id, n) for n in rows}
    lost = sum(1 for made in posts.values() if not made)
    doubled = sum(len(made) - 1 for made in posts.values())
    assert lost == 0 and doubled == 0, posts

    record_figures(events=len(rows), faults=faults, lost=lost, doubled=doubled,
                   calls=sum(len(p.calls_for(item_id, n)) for n in rows),
                   tiktok_gaps=[round(g, 2) for g in tiktok_gaps],
                   attempts_before_giving_up=MAX_ATTEMPTS,
                   seconds=round(time.monotonic() - started, 1))
