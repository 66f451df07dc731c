"""The work of the worker's loops, in-process on the real database with no Faust and no
broker: each round is given the pool, the settings and a `send` that keeps what it is
handed (or refuses it, as a broker that is away would)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.db.queries import Q
from app.db.queue import lease_platform_attempts
from app.domain.errors import Unavailable
from app.domain.rules import Policy
from app.neighbours import MediaLocator
from app.platforms.simulated import QUOTA_RESET_SECONDS, SimulatedGateway
from app.relay import RelayFailed, relay_outbox
from app.publishing import publish_attempt
from app.scheduling import enqueue_due_items
from app.settings import Settings
from app.topics import COMMANDS, FAILED, PUBLISHED, Message
from app.wire import ClaimData, make_command, parse_commands
from tests.factories import claim, unique
from fakes.media import FakeMediaServer
from tests.support import SentMessages, apply_in_process

POLICY = Policy(min_schedule_lead=timedelta(seconds=0))
LEASE = timedelta(seconds=30)


def settings(**changes) -> Settings:
    return Settings(**{"scheduler_batch_size": 10, "outbox_batch_size": 10, **changes})


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


async def apply(pool, kind: str, item: ClaimData, payload: dict, now: datetime,
                actor: str | None = None) -> dict:
    command = make_command(kind, item.claim_id, unique("cmd"), payload, actor=actor)
    reply = await apply_in_process(pool, command, now, POLICY)
    assert reply["ok"], reply
    return reply["item"]


async def apply_sent(pool, messages: list[Message], now: datetime) -> list[dict]:
    """Applies sent commands as the command agent would; their replies."""
    replies = []
    for m in messages:
        assert m.topic == COMMANDS
        [command] = parse_commands(m.value)  # sent alone: no bundling here
        assert m.key == command.item_id.encode()  # the item's partition orders its commands
        replies.append(await apply_in_process(pool, command, now, POLICY))
    return replies


async def test_a_scheduler_round_sends_one_publish_due_command_per_due_item_and_a_repeat_applies_once(
        pool):
    now = utcnow()
    items = [await claim(pool, now) for _ in range(3)]
    for item in items:
        await apply(pool, "schedule", item, {"platforms": ["tiktok"],
                                             "scheduled_at": (now + timedelta(seconds=1)).isoformat()},
                    now, actor=item.influencer_id)
    send = SentMessages()
    later = now + timedelta(seconds=2)
    assert await enqueue_due_items(pool, settings(), send, later) == 3
    assert await enqueue_due_items(pool, settings(), send, later) == 0  # taken already
    assert sorted(m.key.decode() for m in send.messages) == sorted(i.claim_id for i in items)

    replies = await apply_sent(pool, send.messages, later)
    assert {r["item"]["status"] for r in replies} == {"publishing"}
    again = await apply_sent(pool, send.messages, later)  # a redelivery
    assert [r["item"]["version"] for r in again] == [r["item"]["version"] for r in replies]


async def test_due_items_whose_commands_were_not_sent_are_taken_again_after_the_requeue_delay(
        pool):
    now = utcnow()
    item = await claim(pool, now)
    await apply(pool, "schedule", item, {"platforms": ["tiktok"],
                                         "scheduled_at": (now + timedelta(seconds=1)).isoformat()},
                now, actor=item.influencer_id)
    send, s = SentMessages(), settings(due_requeue_seconds=30)
    send.away = True
    with pytest.raises(ConnectionError):
        await enqueue_due_items(pool, s, send, now + timedelta(seconds=2))
    send.away = False
    assert await enqueue_due_items(pool, s, send, now + timedelta(seconds=20)) == 0
    assert await enqueue_due_items(pool, s, send, now + timedelta(seconds=40)) == 1
    assert [m.key.decode() for m in send.messages] == [item.claim_id]


async def test_a_publishing_attempt_sends_the_platforms_answer_which_settles_the_item(pool):
    now = utcnow()
    item = await claim(pool, now)
    await apply(pool, "publish-multi", item, {"platforms": ["tiktok", "snapchat"]}, now,
                actor=item.influencer_id)
    attempts = await lease_platform_attempts(pool, now, 10, LEASE)
    assert sorted(a.platform for a in attempts) == ["snapchat", "tiktok"]
    gateway = SimulatedGateway("snapchat:rejected")
    media = MediaLocator(None, 1.0)
    send = SentMessages()
    answered = []  # each call frees its place before its answer is sent
    try:
        for attempt in attempts:
            await publish_attempt(attempt, gateway, media, send,
                                  answered=lambda: answered.append(len(send.messages)))
    finally:
        await gateway.close()
        await media.close()

    assert answered == [0, 1]
    commands = [c for m in send.messages for c in parse_commands(m.value)]
    assert {c.kind for c in commands} == {"platform-result"}
    assert {c.payload.platform: c.payload.outcome.value for c in commands} == {
        "tiktok": "published", "snapchat": "rejected"}
    replies = await apply_sent(pool, send.messages, now)
    final = replies[-1]["item"]
    assert final["status"] == "failed"
    assert {p["platform"]: p["status"] for p in final["platform_status"]} == {
        "tiktok": "published", "snapchat": "failed"}


async def test_an_attempt_whose_answer_could_not_be_sent_is_leased_again_after_its_lease(pool):
    now = utcnow()
    item = await claim(pool, now)
    await apply(pool, "publish", item, {"platforms": ["youtube"]}, now, actor=item.influencer_id)
    [attempt] = await lease_platform_attempts(pool, now, 10, LEASE)
    send, gateway, media = SentMessages(), SimulatedGateway(""), MediaLocator(None, 1.0)
    send.away = True
    answered = []  # the call's place is freed although its answer could not be sent
    try:
        with pytest.raises(ConnectionError):
            await publish_attempt(attempt, gateway, media, send,
                                  answered=lambda: answered.append(len(send.messages)))
        assert answered == [0]
        assert await lease_platform_attempts(pool, now + LEASE / 2, 10, LEASE) == []
        [again] = await lease_platform_attempts(pool, now + LEASE, 10, LEASE)
        assert (again.key_attempt, again.attempts) == (attempt.key_attempt, attempt.attempts + 1)
    finally:
        await gateway.close()
        await media.close()


async def outbox_rows(pool, item_id: str) -> list:
    return await pool.fetch("SELECT topic, status, attempts, last_error FROM distribution_outbox"
                            " WHERE partition_key = $1 ORDER BY id", item_id)


async def published_and_failed_items(pool, now: datetime) -> tuple[ClaimData, ClaimData]:
    ok, ko = await claim(pool, now), await claim(pool, now)
    for item, outcome in ((ok, "published"), (ko, "rejected")):
        await apply(pool, "publish", item, {"platforms": ["tiktok"]}, now,
                    actor=item.influencer_id)
        await apply(pool, "platform-result", item, {
            "platform": "tiktok", "key_attempt": 1, "outcome": outcome, "post_id": "p-1",
            "post_url": "https://tiktok.example/p-1"}, now)
    return ok, ko


async def test_the_relay_sends_pending_outcomes_keyed_by_item_and_marks_them_sent(pool):
    now = utcnow()
    ok, ko = await published_and_failed_items(pool, now)
    send = SentMessages()
    assert await relay_outbox(pool, settings(), send) == 2
    assert await relay_outbox(pool, settings(), send) == 0
    assert [(m.topic, m.key.decode()) for m in send.messages] == [
        (PUBLISHED, ok.claim_id), (FAILED, ko.claim_id)]
    assert [r["status"] for r in await outbox_rows(pool, ok.claim_id)] == ["published"]


async def test_outcomes_the_broker_did_not_take_stay_pending_with_the_failure_noted(pool):
    now = utcnow()
    ok, _ = await published_and_failed_items(pool, now)
    send = SentMessages()
    send.away = True
    with pytest.raises(RelayFailed) as failure:
        await relay_outbox(pool, settings(), send)
    assert isinstance(failure.value, Unavailable)  # the loop backs off and tries again
    [row] = await outbox_rows(pool, ok.claim_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "the broker is away" in row["last_error"]

    send.away = False
    assert await relay_outbox(pool, settings(), send) == 2
    assert [r["status"] for r in await outbox_rows(pool, ok.claim_id)] == ["published"]


async def test_only_one_relay_sends_at_a_time(pool):
    now = utcnow()
    await published_and_failed_items(pool, now)
    async with pool.acquire() as holder, holder.transaction():
        assert await holder.fetchval(Q["try_relay_lock"])
        send = SentMessages()
        assert await relay_outbox(pool, settings(), send) == 0  # another relay leads
        assert send.messages == []


# ------------------------------------------------------------------------------------------
# M06, the media lookup before each call


@pytest.fixture
async def m06():
    """A fake M06 over real HTTP, and the service's client of it."""
    async with FakeMediaServer() as server:
        media = MediaLocator(server.url, 2.0)
        try:
            yield server, media
        finally:
            await media.close()


async def publishing(pool, platform: str, now: datetime) -> ClaimData:
    """A claimed item its owner has just published to one platform."""
    item = await claim(pool, now)
    await apply(pool, "publish", item, {"platforms": [platform]}, now, actor=item.influencer_id)
    return item


async def attempt_round(pool, gateway, media, now: datetime) -> list[dict]:
    """Leases what is due at `now`, makes each attempt, applies the answers; the replies."""
    send = SentMessages()
    for attempt in await lease_platform_attempts(pool, now, 10, LEASE):
        await publish_attempt(attempt, gateway, media, send)
    return await apply_sent(pool, send.messages, now)


async def test_a_clip_m06_has_no_media_for_fails_that_platform_at_once_without_a_call(
        pool, m06):
    server, media = m06
    now = utcnow()
    item = await publishing(pool, "youtube", now)
    gateway = SimulatedGateway("")
    server.script(item.clip_id, 404)
    [reply] = await attempt_round(pool, gateway, media, now)
    final = reply["item"]
    assert (final["status"], final["failure_reason"]) == ("failed", "failed on youtube")
    [row] = final["platform_status"]
    assert row["status"] == "failed" and row["error"] == "media: M06 has no media for the clip"
    assert (row["error_class"], row["reason_code"]) == ("media", "media_not_found")
    assert not gateway.attempts  # nothing was sent to the platform


async def test_m06_failing_for_a_while_is_retried_with_backoff_then_the_platform_published(
        pool, m06):
    server, media = m06
    now = utcnow()
    item = await publishing(pool, "tiktok", now)
    gateway = SimulatedGateway("")
    server.script(item.clip_id, 503)
    [reply] = await attempt_round(pool, gateway, media, now)
    [row] = reply["item"]["platform_status"]
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["error"] == "media: M06 answered 503"
    assert (row["error_class"], row["reason_code"]) == ("transient", "media_unavailable")
    retry_at = datetime.fromisoformat(row["next_attempt_at"])
    assert retry_at >= now + timedelta(seconds=1)  # M06's Retry-After is a floor
    assert await attempt_round(pool, gateway, media,
                               retry_at - timedelta(milliseconds=1)) == []  # not before
    [reply] = await attempt_round(pool, gateway, media, retry_at)
    assert [lookup.status for lookup in server.lookups_for(item.clip_id)] == [503, 200]
    assert reply["item"]["status"] == "published"
    assert [r.media_url for r in gateway.posts] == [server.media_url(item.clip_id)]


async def test_m06_never_answering_fails_the_platform_once_its_attempts_are_spent(
        pool, m06):
    server, media = m06
    now = utcnow()
    item = await publishing(pool, "instagram", now)
    server.script(item.clip_id, *[503] * POLICY.max_platform_attempts)
    statuses = []
    for _ in range(POLICY.max_platform_attempts):
        now += timedelta(seconds=POLICY.backoff_max_seconds + 1)
        [reply] = await attempt_round(pool, SimulatedGateway(""), media, now)
        statuses.append(reply["item"]["platform_status"][0]["status"])
    assert statuses == ["pending"] * (POLICY.max_platform_attempts - 1) + ["failed"]
    assert reply["item"]["status"] == "failed"
    assert await lease_platform_attempts(pool, now + timedelta(days=1), 10, LEASE) == []


async def test_a_full_posting_window_is_waited_out_without_spending_an_attempt(pool):
    now = utcnow()
    await publishing(pool, "tiktok", now)
    gateway, media = SimulatedGateway("tiktok:quota:1"), MediaLocator(None, 1.0)

    [reply] = await attempt_round(pool, gateway, media, now)
    [row] = reply["item"]["platform_status"]
    assert (row["status"], row["attempts"], row["error_class"]) == ("pending", 0, "quota")
    reset = datetime.fromisoformat(row["next_attempt_at"])
    assert reset == now + timedelta(seconds=QUOTA_RESET_SECONDS)
    assert await attempt_round(pool, gateway, media, reset - timedelta(seconds=1)) == []

    [reply] = await attempt_round(pool, gateway, media, reset)
    [row] = reply["item"]["platform_status"]
    assert (reply["item"]["status"], row["attempts"], row["error_class"]) == (
        "published", 1, None)
