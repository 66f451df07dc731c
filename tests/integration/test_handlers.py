"""app.handlers on the real database: every command kind through `handle`, what each one
writes (item row, captions, overlays, platform rows, analytics, outbox), idempotency,
refusals that change nothing, claim ingestion, due publishing and concurrent commands."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app import handlers
from app.domain.rules import Policy
from app.envelope import rfc3339
from app.wire import ClaimData, Command, make_command, parse_commands
from tests.factories import claim, claim_data, unique
from tests.support import apply_in_process

POLICY = Policy(min_schedule_lead=timedelta(seconds=0))
EVENTS_DIR = Path(__file__).resolve().parents[2] / "contracts" / "events" / "v1"
ENVELOPE_KEYS = {"event_id", "event_type", "event_version", "occurred_at", "source",
                 "partition_key", "trace_id", "data"}
OWNER = object()  # the item's influencer, as the actor of a command


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def required_data_keys(topic: str) -> set[str]:
    schema = json.loads((EVENTS_DIR / f"{topic}.schema.json").read_text())
    return set(schema["properties"]["data"]["required"])


def command(item: ClaimData, kind: str, payload: dict[str, Any] | None = None, *,
            actor: Any = OWNER, command_id: str | None = None) -> Command:
    return make_command(kind, item.claim_id, command_id or unique("cmd"), payload,
                        actor=item.influencer_id if actor is OWNER else actor)


async def send(pool, item: ClaimData, kind: str, payload: dict[str, Any] | None = None, *,
               now: datetime, actor: Any = OWNER, command_id: str | None = None,
               policy: Policy = POLICY) -> dict[str, Any]:
    cmd = command(item, kind, payload, actor=actor, command_id=command_id)
    return await apply_in_process(pool, cmd, now, policy)


async def send_ok(pool, item: ClaimData, kind: str, payload: dict[str, Any] | None = None,
                  **kw) -> dict[str, Any]:
    reply = await send(pool, item, kind, payload, **kw)
    assert reply["ok"], reply
    return reply["item"]


async def state(pool, item_id: str) -> dict[str, Any]:
    """Everything the service keeps about one item."""
    async with pool.acquire() as conn:
        item = await conn.fetchrow("SELECT * FROM distribution_items WHERE id = $1", item_id)
        captions = await conn.fetch(
            "SELECT text, hashtags, title, variants, updated_at FROM distribution_captions"
            " WHERE item_id = $1", item_id)
        overlays = await conn.fetch(
            "SELECT type, duration_seconds, updated_at FROM distribution_overlays"
            " WHERE item_id = $1 ORDER BY type", item_id)
        platforms = await conn.fetch(
            "SELECT * FROM distribution_platform_status WHERE item_id = $1 ORDER BY platform",
            item_id)
        analytics = await conn.fetch(
            "SELECT platform, event_type, attempt, post_id, error, occurred_at, actor"
            " FROM publishing_analytics WHERE item_id = $1 ORDER BY id", item_id)
        outbox = await conn.fetch(
            "SELECT * FROM distribution_outbox WHERE partition_key = $1 ORDER BY id", item_id)
    return {"item": dict(item) if item else None,
            "captions": [dict(r) for r in captions],
            "overlays": [dict(r) for r in overlays],
            "platforms": {r["platform"]: dict(r) for r in platforms},
            "analytics": [dict(r) for r in analytics],
            "outbox": [dict(r) for r in outbox]}


def check_envelope(row: dict[str, Any], topic: str, item_id: str, now: datetime,
                   trace_id: str) -> dict[str, Any]:
    env = row["envelope"]
    assert row["topic"] == topic
    assert row["status"] == "pending"
    assert row["partition_key"] == item_id
    assert set(env) >= ENVELOPE_KEYS
    assert uuid.UUID(env["event_id"]) == row["event_id"]
    assert env["event_type"] == topic
    assert env["event_version"] == 1
    assert env["occurred_at"].endswith("Z")
    assert datetime.fromisoformat(env["occurred_at"]) == now
    assert env["source"] == "M31"
    assert env["partition_key"] == item_id
    assert env["trace_id"] == trace_id
    data = env["data"]
    assert required_data_keys(topic) <= set(data), set(data)
    assert data["item_id"] == item_id
    return data


# ------------------------------------------------------------------------------------------
# add-overlay, schedule, reschedule


async def test_an_overlay_is_stored_and_a_second_one_of_the_same_type_replaces_the_first(pool):
    now = utcnow()
    item = await claim(pool, now)
    await send_ok(pool, item, "add-overlay", {"type": "outro", "duration_seconds": 3}, now=now)
    await send_ok(pool, item, "add-overlay", {"type": "intro", "duration_seconds": 2.5}, now=now)
    reply = await send_ok(pool, item, "add-overlay", {"type": "intro", "duration_seconds": 1.25},
                          now=now)

    assert reply["overlays"] == [{"type": "intro", "duration_seconds": 1.25},
                                 {"type": "outro", "duration_seconds": 3.0}]
    assert reply["version"] == 4
    s = await state(pool, item.claim_id)
    assert [(o["type"], o["duration_seconds"]) for o in s["overlays"]] == [
        ("intro", 1.25), ("outro", 3.0)]
    assert s["item"]["version"] == 4 and s["item"]["status"] == "claimed"
    assert s["analytics"] == [] and s["outbox"] == [] and s["platforms"] == {}


async def test_scheduling_stores_the_utc_instant_the_zone_the_platforms_and_the_caption(pool):
    now = datetime(2030, 1, 10, 9, 0, tzinfo=timezone.utc)
    item = await claim(pool, now)
    caption = {"text": "Winter drop", "hashtags": ["snow", "drop"],
               "variants": {"youtube": {"text": "Winter drop (YT)", "hashtags": [],
                                        "title": "Winter"}}}
    reply = await send_ok(pool, item, "schedule", {
        "platforms": ["tiktok", "youtube"], "scheduled_at": "2030-01-10T18:30:00",
        "timezone": "Europe/Paris", "caption": caption}, now=now)

    assert reply["status"] == "scheduled"
    assert reply["scheduled_at"] == "2030-01-10T17:30:00Z"
    assert reply["scheduled_at_local"] == "2030-01-10T18:30:00+01:00"
    s = await state(pool, item.claim_id)
    row = s["item"]
    assert row["status"] == "scheduled"
    assert row["scheduled_at"] == datetime(2030, 1, 10, 17, 30, tzinfo=timezone.utc)
    assert row["timezone"] == "Europe/Paris"
    assert row["platforms"] == ["tiktok", "youtube"]
    assert row["version"] == 2
    assert row["due_enqueued_at"] is None
    [stored] = s["captions"]
    assert stored["text"] == "Winter drop" and stored["hashtags"] == ["snow", "drop"]
    assert stored["variants"]["youtube"]["title"] == "Winter"
    assert s["platforms"] == {} and s["outbox"] == [] and s["analytics"] == []


async def test_rescheduling_moves_the_time_and_clears_the_scheduler_mark(pool):
    now = utcnow()
    item = await claim(pool, now)
    first = now + timedelta(hours=2)
    await send_ok(pool, item, "schedule", {"platforms": ["snapchat"],
                                           "scheduled_at": first.isoformat()}, now=now)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE distribution_items SET due_enqueued_at = $2 WHERE id = $1",
                           item.claim_id, now)
    later = now + timedelta(hours=5)
    reply = await send_ok(pool, item, "reschedule",
                          {"scheduled_at": later.isoformat(), "timezone": "Asia/Tokyo"}, now=now)

    assert reply["status"] == "scheduled" and reply["version"] == 3
    row = (await state(pool, item.claim_id))["item"]
    assert row["scheduled_at"] == later
    assert row["timezone"] == "Asia/Tokyo"
    assert row["platforms"] == ["snapchat"]
    assert row["due_enqueued_at"] is None


# ------------------------------------------------------------------------------------------
# publish, publish-multi, platform-result, retry, download


async def test_publishing_one_platform_starts_publishing_with_one_pending_platform_row(pool):
    now = utcnow()
    item = await claim(pool, now)
    reply = await send_ok(pool, item, "publish", {"platforms": ["tiktok"]}, now=now)

    assert reply["status"] == "publishing" and reply["version"] == 2
    assert reply["platform_status"] == [{
        "platform": "tiktok", "status": "pending", "attempts": 0, "error": None,
        "error_class": None, "reason_code": None,
        "next_attempt_at": now.isoformat().replace("+00:00", "Z"), "post_id": None,
        "post_url": None, "published_at": None}]
    s = await state(pool, item.claim_id)
    assert s["item"]["status"] == "publishing" and s["item"]["platforms"] == ["tiktok"]
    row = s["platforms"]["tiktok"]
    assert (row["status"], row["attempts"], row["key_attempt"], row["next_attempt_at"],
            row["in_round"]) == ("pending", 0, 1, now, True)
    assert s["outbox"] == [] and s["analytics"] == []  # no outcome yet


async def test_all_platforms_published_publish_the_item_with_one_outbox_event(pool):
    now = utcnow()
    item = await claim(pool, now)
    await send_ok(pool, item, "publish-multi", {"platforms": ["tiktok", "instagram"]}, now=now)

    later = now + timedelta(seconds=5)
    reply = await send_ok(pool, item, "platform-result", {
        "platform": "tiktok", "key_attempt": 1, "outcome": "published", "post_id": "tt-1",
        "post_url": "https://tiktok.example/tt-1"}, now=later, actor=None)
    assert reply["status"] == "publishing"
    s = await state(pool, item.claim_id)
    assert s["outbox"] == []
    assert [(a["platform"], a["event_type"], a["post_id"]) for a in s["analytics"]] == [
        ("tiktok", "published", "tt-1")]

    done = now + timedelta(seconds=9)
    cmd = command(item, "platform-result", {
        "platform": "instagram", "key_attempt": 1, "outcome": "published", "post_id": "ig-1",
        "post_url": "https://instagram.example/ig-1"}, actor=None)
    applied = await handlers.handle(pool, cmd, done, POLICY)

    assert applied.outbox_written
    assert applied.reply == {"ok": True, "item": None, "error": None}  # nobody waits for it
    s = await state(pool, item.claim_id)
    assert s["item"]["status"] == "published"
    assert {p: (r["status"], r["post_id"], r["published_at"]) for p, r in s["platforms"].items()} \
        == {"tiktok": ("published", "tt-1", later), "instagram": ("published", "ig-1", done)}
    assert s["platforms"]["instagram"]["post_url"] == "https://instagram.example/ig-1"
    assert [(a["platform"], a["event_type"], a["post_id"]) for a in s["analytics"]] == [
        ("tiktok", "published", "tt-1"), ("instagram", "published", "ig-1")]
    assert [a["actor"] for a in s["analytics"]] == [None, None]  # the service's own results
    [event] = s["outbox"]
    data = check_envelope(event, "distribution.published", item.claim_id, done, cmd.trace_id)
    assert data["status"] == "published"
    assert data["campaign_id"] == item.campaign_id and data["clip_id"] == item.clip_id
    assert {p["platform"]: p["post_id"] for p in data["platforms"]} == {
        "tiktok": "tt-1", "instagram": "ig-1"}


async def fail_one_of_two(pool, now: datetime) -> tuple[ClaimData, Command]:
    """An item published on tiktok and refused for good by youtube."""
    item = await claim(pool, now)
    await send_ok(pool, item, "publish-multi", {"platforms": ["tiktok", "youtube"]}, now=now)
    await send_ok(pool, item, "platform-result", {
        "platform": "tiktok", "key_attempt": 1, "outcome": "published", "post_id": "tt-9",
        "post_url": "https://tiktok.example/tt-9"}, now=now, actor=None)
    cmd = command(item, "platform-result", {
        "platform": "youtube", "key_attempt": 1, "outcome": "rejected",
        "error": "video too long"}, actor=None)
    applied = await handlers.handle(pool, cmd, now, POLICY)
    assert applied.reply["ok"], applied.reply
    return item, cmd


async def test_one_platform_failing_fails_the_item_without_hiding_the_others_success(pool):
    now = utcnow()
    item, cmd = await fail_one_of_two(pool, now)

    s = await state(pool, item.claim_id)
    assert s["item"]["status"] == "failed"
    assert s["item"]["failure_reason"] == "failed on youtube"
    tiktok, youtube = s["platforms"]["tiktok"], s["platforms"]["youtube"]
    assert (tiktok["status"], tiktok["post_id"]) == ("published", "tt-9")
    assert (youtube["status"], youtube["last_error"], youtube["post_id"]) == (
        "failed", "video too long", None)
    assert youtube["key_attempt"] == 2  # a definite refusal advances the idempotency key
    assert [(a["platform"], a["event_type"], a["error"]) for a in s["analytics"]] == [
        ("tiktok", "published", None), ("youtube", "failed", "video too long")]
    [event] = s["outbox"]
    data = check_envelope(event, "distribution.failed", item.claim_id, now, cmd.trace_id)
    assert data["status"] == "failed" and data["reason"] == "failed on youtube"
    assert {p["platform"]: p["status"] for p in data["platforms"]} == {
        "tiktok": "published", "youtube": "failed"}


async def test_a_transient_answer_schedules_another_attempt_and_writes_no_outcome(pool):
    now = utcnow()
    item = await claim(pool, now)
    await send_ok(pool, item, "publish", {"platforms": ["instagram"]}, now=now)
    reply = await send_ok(pool, item, "platform-result", {
        "platform": "instagram", "key_attempt": 1, "outcome": "transient", "error": "503",
        "retry_after": 30, "jitter": 0}, now=now, actor=None)

    assert reply["status"] == "publishing" and reply["retry_count"] == 1
    s = await state(pool, item.claim_id)
    row = s["platforms"]["instagram"]
    assert (row["status"], row["last_error"], row["key_attempt"]) == ("pending", "503", 1)
    assert row["next_attempt_at"] == now + timedelta(seconds=30)
    assert s["analytics"] == [] and s["outbox"] == []


async def test_retry_reopens_only_the_failed_platforms(pool):
    now = utcnow()
    item, _ = await fail_one_of_two(pool, now)
    before = await state(pool, item.claim_id)

    later = now + timedelta(minutes=1)
    reply = await send_ok(pool, item, "retry", {}, now=later)

    assert reply["status"] == "publishing" and reply["retry_count"] == 0
    s = await state(pool, item.claim_id)
    assert s["item"]["version"] == before["item"]["version"] + 1
    assert s["item"]["failure_reason"] is None
    youtube, tiktok = s["platforms"]["youtube"], s["platforms"]["tiktok"]
    assert (youtube["status"], youtube["attempts"], youtube["last_error"],
            youtube["next_attempt_at"], youtube["in_round"]) == ("pending", 0, None, later, True)
    assert youtube["key_attempt"] == 2
    # the published platform is untouched, apart from leaving the round
    assert (tiktok["status"], tiktok["post_id"], tiktok["in_round"]) == ("published", "tt-9",
                                                                         False)
    assert tiktok["published_at"] == before["platforms"]["tiktok"]["published_at"]
    assert len(s["analytics"]) == 2 and len(s["outbox"]) == 1  # a retry is no outcome

    cmd = command(item, "platform-result", {
        "platform": "youtube", "key_attempt": 2, "outcome": "published", "post_id": "yt-2"},
        actor=None)
    applied = await handlers.handle(pool, cmd, later, POLICY)
    assert applied.reply == {"ok": True, "item": None, "error": None}
    s = await state(pool, item.claim_id)
    assert [r["topic"] for r in s["outbox"]] == ["distribution.failed", "distribution.published"]
    data = check_envelope(s["outbox"][1], "distribution.published", item.claim_id, later,
                          cmd.trace_id)
    assert [r["platform"] for r in data["results"]] == ["youtube"]
    assert len(s["analytics"]) == 3


async def test_a_download_is_recorded_in_analytics_with_who_asked_and_changes_nothing_else(
        pool):
    now = utcnow()
    item = await claim(pool, now)
    before = await state(pool, item.claim_id)
    reply = await send_ok(pool, item, "download", {}, now=now)

    assert reply["version"] == 1 and reply["status"] == "claimed"
    after = await state(pool, item.claim_id)
    assert after["item"] == before["item"]
    assert [(a["platform"], a["event_type"], a["occurred_at"], a["actor"])
            for a in after["analytics"]] == [(None, "download", now, item.influencer_id)]
    assert after["outbox"] == []


# ------------------------------------------------------------------------------------------
# publish-due


async def scheduled_item(pool, now: datetime, at: datetime,
                         platforms: list[str]) -> ClaimData:
    item = await claim(pool, now)
    await send_ok(pool, item, "schedule", {"platforms": platforms,
                                           "scheduled_at": at.isoformat()}, now=now)
    return item


async def test_a_due_item_goes_to_publishing_with_pending_platform_rows(pool):
    now = utcnow()
    at = now + timedelta(minutes=1)
    item = await scheduled_item(pool, now, at, ["tiktok", "snapchat"])
    then = at + timedelta(seconds=3)
    reply = await send_ok(pool, item, "publish-due", {"scheduled_at": at.isoformat()},
                          now=then, actor=None)

    assert reply["status"] == "publishing" and reply["version"] == 3
    s = await state(pool, item.claim_id)
    assert s["item"]["status"] == "publishing"
    assert {p: (r["status"], r["attempts"], r["next_attempt_at"])
            for p, r in s["platforms"].items()} == {
        "tiktok": ("pending", 0, then), "snapchat": ("pending", 0, then)}
    assert s["outbox"] == [] and s["analytics"] == []


async def test_an_item_found_later_than_max_lateness_fails_as_missed(pool):
    now = utcnow()
    at = now + timedelta(minutes=1)
    item = await scheduled_item(pool, now, at, ["instagram", "youtube"])
    then = at + timedelta(hours=1, seconds=1)
    cmd = command(item, "publish-due", {"scheduled_at": at.isoformat()}, actor=None)
    applied = await handlers.handle(pool, cmd, then, POLICY)

    assert applied.reply["ok"] and not applied.publishing_started
    s = await state(pool, item.claim_id)
    assert (s["item"]["status"], s["item"]["failure_reason"]) == ("failed", "missed")
    assert {p: (r["status"], r["last_error"], r["attempts"]) for p, r in s["platforms"].items()} \
        == {"instagram": ("failed", "missed", 0), "youtube": ("failed", "missed", 0)}
    assert sorted((a["platform"], a["event_type"], a["error"]) for a in s["analytics"]) == [
        ("instagram", "failed", "missed"), ("youtube", "failed", "missed")]
    [event] = s["outbox"]
    data = check_envelope(event, "distribution.failed", item.claim_id, then, cmd.trace_id)
    assert data["reason"] == "missed"


async def test_publish_due_does_nothing_before_the_time_or_for_a_schedule_since_moved(pool):
    now = utcnow()
    at = now + timedelta(minutes=10)
    item = await scheduled_item(pool, now, at, ["tiktok"])

    early = await send_ok(pool, item, "publish-due", {"scheduled_at": at.isoformat()},
                          now=at - timedelta(seconds=1), actor=None)
    assert early["status"] == "scheduled" and early["version"] == 2

    moved = at + timedelta(minutes=30)
    await send_ok(pool, item, "reschedule", {"scheduled_at": moved.isoformat()}, now=now)
    before = await state(pool, item.claim_id)
    stale = await send_ok(pool, item, "publish-due", {"scheduled_at": at.isoformat()},
                          now=at + timedelta(seconds=1), actor=None)
    assert stale["status"] == "scheduled"
    assert await state(pool, item.claim_id) == before


# ------------------------------------------------------------------------------------------
# idempotency and refusals


async def test_the_same_command_twice_takes_effect_once(pool):
    now = utcnow()
    item = await claim(pool, now)
    schedule = command(item, "schedule", {"platforms": ["tiktok"],
                                          "scheduled_at": (now + timedelta(hours=1)).isoformat()})
    first = await handlers.handle(pool, schedule, now, POLICY)
    again = await handlers.handle(pool, schedule, now + timedelta(seconds=1), POLICY)
    assert again.reply == first.reply
    assert (await state(pool, item.claim_id))["item"]["version"] == 2

    download = command(item, "download")
    await handlers.handle(pool, download, now, POLICY)
    await handlers.handle(pool, download, now, POLICY)
    assert len((await state(pool, item.claim_id))["analytics"]) == 1

    await send_ok(pool, item, "publish", {"platforms": ["tiktok"]}, now=now)
    result = command(item, "platform-result", {"platform": "tiktok", "key_attempt": 1,
                                               "outcome": "published", "post_id": "p"},
                     actor=None)
    first = await handlers.handle(pool, result, now, POLICY)
    before = await state(pool, item.claim_id)
    again = await handlers.handle(pool, result, now + timedelta(seconds=1), POLICY)
    assert again.reply == first.reply
    assert not again.outbox_written
    after = await state(pool, item.claim_id)
    assert after == before
    assert len(after["outbox"]) == 1 and len(after["analytics"]) == 2


async def refused(pool, item: ClaimData, kind: str, payload: dict[str, Any] | None, code: str,
                  *, now: datetime, actor: Any = OWNER) -> dict[str, Any]:
    before = await state(pool, item.claim_id)
    cmd = command(item, kind, payload, actor=actor)
    reply = (await handlers.handle(pool, cmd, now, POLICY)).reply
    assert reply["ok"] is False and reply["item"] is None, reply
    assert reply["error"]["code"] == code, reply
    assert await state(pool, item.claim_id) == before
    # the refusal is the reply to that command id from now on
    assert (await handlers.handle(pool, cmd, now, POLICY)).reply == reply
    return reply["error"]


async def test_a_command_for_an_unknown_item_is_refused_as_not_found(pool):
    ghost = ClaimData(claim_id=unique("ghost"), clip_id="c", influencer_id=unique("inf"),
                      campaign_id="k", claimed_at=utcnow())
    for kind, payload in [("add-overlay", {"type": "intro", "duration_seconds": 1}),
                          ("publish", {"platforms": ["tiktok"]}), ("download", {}),
                          ("publish-due", {"scheduled_at": utcnow().isoformat()})]:
        error = await refused(pool, ghost, kind, payload, "not_found", now=utcnow())
        assert error["details"]["item_id"] == ghost.claim_id
    assert (await state(pool, ghost.claim_id))["item"] is None


async def test_commands_from_another_influencer_are_answered_as_not_found(pool):
    now = utcnow()
    item = await claim(pool, now)
    stranger = unique("inf")
    for kind, payload in [
            ("add-overlay", {"type": "intro", "duration_seconds": 1}),
            ("schedule", {"platforms": ["tiktok"],
                          "scheduled_at": (now + timedelta(hours=1)).isoformat()}),
            ("publish", {"platforms": ["tiktok"]}),
            ("publish-multi", {"platforms": ["tiktok", "youtube"]}),
            ("download", {})]:
        error = await refused(pool, item, kind, payload, "not_found", now=now, actor=stranger)
        assert error["details"] == {"item_id": item.claim_id}
    error = await refused(pool, item, "download", {}, "not_found", now=now, actor=None)
    assert error["details"] == {"item_id": item.claim_id}


async def test_commands_the_status_does_not_allow_are_refused_as_invalid_transitions(pool):
    now = utcnow()
    item = await claim(pool, now)
    soon = (now + timedelta(hours=1)).isoformat()
    await refused(pool, item, "reschedule", {"scheduled_at": soon}, "invalid_state_transition",
                  now=now)
    await refused(pool, item, "retry", {}, "invalid_state_transition", now=now)

    await send_ok(pool, item, "publish", {"platforms": ["tiktok"]}, now=now)
    for kind, payload in [("add-overlay", {"type": "outro", "duration_seconds": 2}),
                          ("schedule", {"platforms": ["tiktok"], "scheduled_at": soon}),
                          ("reschedule", {"scheduled_at": soon}),
                          ("publish", {"platforms": ["youtube"]}), ("retry", {})]:
        await refused(pool, item, kind, payload, "invalid_state_transition", now=now)

    late = await claim(pool, now - timedelta(hours=25))  # claim window closed
    await refused(pool, late, "schedule", {"platforms": ["tiktok"], "scheduled_at": soon},
                  "invalid_state_transition", now=now)
    await refused(pool, late, "publish", {"platforms": ["tiktok"]}, "invalid_state_transition",
                  now=now)


async def test_payloads_the_domain_cannot_read_are_refused_as_invalid_requests(pool):
    now = utcnow()
    item = await claim(pool, now)
    for payload in [{"type": "intro", "duration_seconds": 0},
                    {"type": "outro", "duration_seconds": 3.001},
                    {"type": "middle", "duration_seconds": 1}]:
        await refused(pool, item, "add-overlay", payload, "invalid_request", now=now)
    for payload in [{"platforms": [], "scheduled_at": (now + timedelta(hours=1)).isoformat()},
                    {"platforms": ["tiktok"], "scheduled_at": "next tuesday"},
                    {"platforms": ["tiktok"], "scheduled_at": "2030-06-01T12:00:00",
                     "timezone": "Mars/Olympus_Mons"}]:
        await refused(pool, item, "schedule", payload, "invalid_request", now=now)
    await refused(pool, item, "publish", {"platforms": ["myspace"]}, "unsupported_platform",
                  now=now)


@pytest.mark.parametrize("kind, payload", [
    ("add-overlay", {"type": "intro"}),  # no duration
    ("add-overlay", {"type": "intro", "duration_seconds": "long"}),
    ("schedule", {"scheduled_at": "2030-06-01T12:00:00Z"}),  # no platforms
    ("platform-result", {"platform": "tiktok", "outcome": "maybe", "key_attempt": 1}),
    ("publish-due", {"scheduled_at": "2030-06-01T12:00:00"}),  # no offset
    ("retry", {"reason": "unexpected field"}),
])
def test_a_payload_that_does_not_fit_its_kind_never_reaches_a_handler(kind, payload):
    raw = json.dumps({"command_id": "c", "item_id": "i", "kind": kind, "payload": payload})
    with pytest.raises(ValueError, match="invalid command"):
        parse_commands(raw.encode())


async def test_well_formed_payloads_a_rule_refuses_are_refused_as_rule_violations(pool):
    now = utcnow()
    item = await claim(pool, now)
    for payload in [{"platforms": ["tiktok"], "scheduled_at": "2030-06-01T12:00:00"},  # no zone
                    {"platforms": ["tiktok"],
                     "scheduled_at": (now - timedelta(minutes=1)).isoformat()},
                    {"platforms": ["tiktok"],
                     "scheduled_at": (now + timedelta(days=31)).isoformat()},
                    {"platforms": ["tiktok"], "scheduled_at": "2030-03-31T02:30:00",
                     "timezone": "Europe/Paris"},  # daylight saving gap
                    {"platforms": ["tiktok"], "scheduled_at": "2030-10-27T02:30:00",
                     "timezone": "Europe/Paris"},  # daylight saving fold
                    {"platforms": ["snapchat"],
                     "scheduled_at": (now + timedelta(hours=1)).isoformat(),
                     "caption": {"text": "x" * 161}}]:
        await refused(pool, item, "schedule", payload, "rule_violation", now=now)
    await refused(pool, item, "publish", {"platforms": ["snapchat"],
                                          "caption": {"text": "x" * 161}},
                  "rule_violation", now=now)


# ------------------------------------------------------------------------------------------
# claims


async def test_a_claim_creates_a_claimed_item_with_a_24_hour_window_once(pool):
    c = claim_data()
    first = await handlers.ingest_claims(pool, [c])
    again = await handlers.ingest_claims(pool, [c])

    assert first.created == [c.claim_id] and first.duplicates == []
    assert again.created == [] and again.duplicates == [c.claim_id]
    row = (await state(pool, c.claim_id))["item"]
    assert (row["status"], row["influencer_id"], row["clip_id"], row["campaign_id"],
            row["version"]) == ("claimed", c.influencer_id, c.clip_id, c.campaign_id, 1)
    assert row["claimed_at"] == c.claimed_at
    assert row["claim_expires_at"] == c.claimed_at + timedelta(hours=24)


async def test_another_claim_for_the_same_influencer_clip_and_campaign_creates_nothing(pool):
    c = claim_data()
    await handlers.ingest_claims(pool, [c])
    twin = claim_data(influencer_id=c.influencer_id, clip_id=c.clip_id,
                      campaign_id=c.campaign_id)
    result = await handlers.ingest_claims(pool, [twin])

    assert result.created == [] and result.duplicates == [twin.claim_id]
    assert (await state(pool, twin.claim_id))["item"] is None
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM distribution_items WHERE influencer_id = $1",
            c.influencer_id) == 1


async def test_a_claim_without_campaign_is_resolved_from_clips_and_an_unknown_clip_reported(
        pool):
    known_clip, campaign = unique("clip"), unique("camp")
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO clips (id, campaign_id) VALUES ($1, $2)",
                           known_clip, campaign)
    resolved = claim_data(clip_id=known_clip, campaign_id=None)
    unknown = claim_data(campaign_id=None)
    given = claim_data()
    result = await handlers.ingest_claims(pool, [resolved, unknown, given])

    assert sorted(result.created) == sorted([resolved.claim_id, given.claim_id])
    assert [u.claim_id for u in result.unknown_clips] == [unknown.claim_id]
    assert (await state(pool, resolved.claim_id))["item"]["campaign_id"] == campaign
    assert (await state(pool, given.claim_id))["item"]["campaign_id"] == given.campaign_id
    assert (await state(pool, unknown.claim_id))["item"] is None
    async with pool.acquire() as conn:  # clips is only read
        assert await conn.fetchval("SELECT campaign_id FROM clips WHERE id = $1",
                                   known_clip) == campaign


# ------------------------------------------------------------------------------------------
# concurrency


async def test_twenty_concurrent_schedules_of_one_item_let_exactly_one_win(pool):
    now = utcnow()
    item = await claim(pool, now)
    cmds = [command(item, "schedule", {
        "platforms": ["tiktok"], "scheduled_at": (now + timedelta(minutes=10 + i)).isoformat()})
        for i in range(20)]
    replies = [a.reply for a in await asyncio.gather(
        *(handlers.handle(pool, c, now, POLICY) for c in cmds))]

    winners = [r for r in replies if r["ok"]]
    assert len(winners) == 1
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"invalid_state_transition"}
    row = (await state(pool, item.claim_id))["item"]
    assert row["version"] == 2 and row["status"] == "scheduled"
    assert row["scheduled_at"] == datetime.fromisoformat(winners[0]["item"]["scheduled_at"])


async def test_twenty_concurrent_schedules_and_publishes_change_the_item_once_per_transition(
        pool):
    now = utcnow()
    item = await claim(pool, now)
    cmds = []
    for i in range(10):
        cmds.append(command(item, "schedule", {
            "platforms": ["youtube"],
            "scheduled_at": (now + timedelta(minutes=10 + i)).isoformat()}))
        cmds.append(command(item, "publish-multi", {
            "platforms": [["tiktok", "instagram"], ["snapchat"]][i % 2]}))
    replies = [a.reply for a in await asyncio.gather(
        *(handlers.handle(pool, c, now, POLICY) for c in cmds))]

    won = [(c.kind, r) for c, r in zip(cmds, replies) if r["ok"]]
    kinds = [k for k, _ in won]
    assert kinds.count("publish-multi") == 1  # claimed or scheduled -> publishing, once
    assert kinds.count("schedule") <= 1  # claimed -> scheduled, only before the publish
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"invalid_state_transition"}
    versions = sorted(r["item"]["version"] for _, r in won)
    assert versions == list(range(2, 2 + len(won)))  # each change raised the version once
    s = await state(pool, item.claim_id)
    assert s["item"]["version"] == 1 + len(won)
    assert s["item"]["status"] == "publishing"
    [publish] = [r for k, r in won if k == "publish-multi"]
    assert set(s["platforms"]) == {p["platform"] for p in publish["item"]["platform_status"]}
    assert s["item"]["platforms"] == publish["item"]["platforms"]


async def test_one_command_delivered_five_times_at_once_takes_effect_once(pool):
    now = utcnow()
    item = await claim(pool, now)
    cmd = command(item, "add-overlay", {"type": "intro", "duration_seconds": 2})
    replies = [a.reply for a in await asyncio.gather(
        *(handlers.handle(pool, cmd, now, POLICY) for _ in range(5)))]

    assert all(r == replies[0] for r in replies) and replies[0]["ok"]
    s = await state(pool, item.claim_id)
    assert s["item"]["version"] == 2 and len(s["overlays"]) == 1


async def test_a_command_for_an_unknown_item_delivered_twice_at_once_is_refused_both_times(pool):
    ghost = ClaimData(claim_id=unique("ghost"), clip_id="c", influencer_id=unique("inf"),
                      campaign_id="k", claimed_at=utcnow())
    cmd = command(ghost, "download")
    replies = [a.reply for a in await asyncio.gather(
        *(handlers.handle(pool, cmd, utcnow(), POLICY) for _ in range(4)))]

    assert [r["error"]["code"] for r in replies] == ["not_found"] * 4


# --- batches -------------------------------------------------------------------------------

OVERLAY = {"type": "intro", "duration_seconds": 2.0}


async def test_a_batch_applies_its_commands_in_order_in_one_transaction(pool):
    now = utcnow()
    first, second = await claim(pool, now), await claim(pool, now)
    add = command(first, "add-overlay", OVERLAY)
    batch = [add, command(second, "add-overlay", OVERLAY),
             command(first, "add-overlay", {"type": "intro", "duration_seconds": 3.0}),
             add]  # the same command again, in the same batch
    results = await handlers.handle_batch(pool, batch, now, POLICY)
    assert [r.reply["ok"] for r in results] == [True, True, True, True]
    assert [r.repeated for r in results] == [False, False, False, True]
    assert results[3].reply == results[0].reply  # the first reply, again
    overlays = await pool.fetch("SELECT item_id, duration_seconds FROM distribution_overlays "
                                "WHERE item_id = ANY($1::text[])",
                                [first.claim_id, second.claim_id])
    assert {r["item_id"]: r["duration_seconds"] for r in overlays} == {
        first.claim_id: 3.0, second.claim_id: 2.0}  # the later command of `first` won


async def test_a_command_that_fails_in_a_batch_is_undone_alone(pool, monkeypatch):
    now = utcnow()
    items = [await claim(pool, now) for _ in range(3)]
    broken = items[1].claim_id

    real_apply = handlers.apply_command

    async def apply_command(uow, loaded, cmd, *args):
        applied = await real_apply(uow, loaded, cmd, *args)  # its writes are made, then it fails
        if cmd.item_id == broken:
            raise RuntimeError("a bug")
        return applied

    monkeypatch.setattr(handlers, "apply_command", apply_command)
    results = await handlers.handle_batch(
        pool, [command(i, "add-overlay", OVERLAY) for i in items], now, POLICY)
    assert [type(r).__name__ for r in results] == ["Applied", "RuntimeError", "Applied"]
    kept = await pool.fetch("SELECT item_id FROM distribution_overlays "
                            "WHERE item_id = ANY($1::text[])", [i.claim_id for i in items])
    assert {r["item_id"] for r in kept} == {items[0].claim_id, items[2].claim_id}
    versions = await pool.fetch("SELECT id, version FROM distribution_items "
                                "WHERE id = ANY($1::text[])", [i.claim_id for i in items])
    assert {r["id"]: r["version"] for r in versions}[broken] == 1  # untouched
    recorded = await pool.fetchval(
        "SELECT count(*) FROM distribution_processed_commands WHERE item_id = $1", broken)
    assert recorded == 0  # not remembered as applied: a redelivery applies it


async def test_a_command_the_database_refuses_in_a_batch_gets_one_result_in_its_place(pool):
    """Refused when its writes are flushed (text PostgreSQL cannot store), not while it is
    decided: still one result per command, in order, so that the agent answers and
    dead-letters the right one."""
    now = utcnow()
    items = [await claim(pool, now) for _ in range(3)]
    nul_caption = {"platforms": ["tiktok"], "scheduled_at": (now + timedelta(days=2)).isoformat(),
                   "caption": {"text": "hello\u0000world"}}
    batch = [command(items[0], "add-overlay", OVERLAY), command(items[1], "schedule", nul_caption),
             command(items[2], "add-overlay", OVERLAY)]
    results = await handlers.handle_batch(pool, batch, now, POLICY)
    assert [type(r).__name__ for r in results] == [
        "Applied", "CharacterNotInRepertoireError", "Applied"]
    statuses = await pool.fetch("SELECT id, status, version FROM distribution_items "
                                "WHERE id = ANY($1::text[])", [i.claim_id for i in items])
    assert {r["id"]: (r["status"], r["version"]) for r in statuses} == {
        items[0].claim_id: ("claimed", 2), items[1].claim_id: ("claimed", 1),
        items[2].claim_id: ("claimed", 2)}


async def test_a_batch_that_loses_a_deadlock_is_applied_again_whole(pool, monkeypatch):
    now = utcnow()
    items = [await claim(pool, now) for _ in range(2)]
    real_apply, failures = handlers.apply_command, iter([True])

    async def apply_command(uow, loaded, cmd, *args):
        applied = await real_apply(uow, loaded, cmd, *args)
        if cmd.item_id == items[1].claim_id and next(failures, False):
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return applied

    monkeypatch.setattr(handlers, "apply_command", apply_command)
    results = await handlers.handle_batch(
        pool, [command(i, "add-overlay", OVERLAY) for i in items], now, POLICY)
    assert [r.repeated for r in results] == [False, False]  # the first try left nothing
    versions = await pool.fetch("SELECT version FROM distribution_items "
                                "WHERE id = ANY($1::text[])", [i.claim_id for i in items])
    assert [r["version"] for r in versions] == [2, 2]  # applied once each


def comparable(s: dict[str, Any]) -> dict[str, Any]:
    """An item's stored state without what names the item or the moment of writing."""
    def drop(row: dict[str, Any], *keys: str) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in keys}
    return {
        "item": drop(s["item"], "id", "influencer_id", "clip_id", "campaign_id", "claimed_at",
                     "claim_expires_at", "created_at", "updated_at"),
        "overlays": [drop(r, "updated_at") for r in s["overlays"]],
        "platforms": {p: drop(r, "item_id", "created_at", "updated_at")
                      for p, r in s["platforms"].items()},
        "analytics": [drop(r, "occurred_at") for r in s["analytics"]],
        "outbox": [(r["topic"], r["envelope"]["data"]["status"]) for r in s["outbox"]]}


async def test_a_batch_leaves_what_its_commands_leave_one_at_a_time(pool):
    """The writes wait for the batch's end and go in one statement: the rows they leave
    are those of the same commands applied each in its own transaction."""
    now = utcnow()
    batched, alone = await claim(pool, now), await claim(pool, now)

    def commands(item: ClaimData) -> list[Command]:
        def result(platform: str, outcome: str, **more: Any) -> Command:
            return command(item, "platform-result", {
                "platform": platform, "key_attempt": 1, "outcome": outcome, **more},
                actor=None)
        return [
            command(item, "add-overlay", OVERLAY),
            command(item, "add-overlay", {"type": "intro", "duration_seconds": 2.5}),
            command(item, "publish-multi", {"platforms": ["tiktok", "youtube"]}),
            result("tiktok", "published", post_id="tt-1", post_url="https://t.example/1"),
            result("youtube", "rejected", error="too long", error_class="permanent",
                   reason_code="video_too_long")]

    results = await handlers.handle_batch(pool, commands(batched), now, POLICY)
    assert all(r.reply["ok"] for r in results), [r.reply["error"] for r in results]
    for cmd in commands(alone):
        assert (await handlers.handle(pool, cmd, now, POLICY)).reply["ok"]

    kept = await state(pool, batched.claim_id)
    assert kept["item"]["status"] == "failed"  # one platform published, one refused
    assert len(kept["analytics"]) == 2 and len(kept["outbox"]) >= 1
    assert comparable(kept) == comparable(await state(pool, alone.claim_id))
    # the batch's one transaction time (the platform answers' replies carry no item)
    assert results[2].reply["item"]["updated_at"] == rfc3339(kept["item"]["updated_at"])
