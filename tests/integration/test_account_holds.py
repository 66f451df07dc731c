"""An account whose token is refused even after a refresh, on real PostgreSQL through the
real handlers, with DirectGateway against the direct-mode fakes: its posts are held (not
failed), it is announced once on distribution.accounts, the lease passes its rows over, and
once it is reconnected they are leased again and publish."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from app import handlers
from app.accounts import AccountsClient, account_reconnected
from app.db.queue import lease_platform_attempts
from app.domain.model import Platform
from app.domain.rules import Policy
from app.neighbours import MediaLocator
from app.platforms.direct_gateway import DirectGateway
from app.publishing import publish_attempt
from app.topics import ACCOUNTS, COMMANDS, NEEDS_RECONNECT, RECONNECTED
from app.wire import make_command, parse_commands
from fakes.direct import DirectFakes
from tests.factories import claim_data, unique
from tests.support import SentMessages, apply_in_process, event_schema_errors

POLICY = Policy(min_schedule_lead=timedelta(seconds=0))
LEASE = timedelta(seconds=30)
SCHEMA = "distribution.accounts.schema.json"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
async def publisher(pool, fakes):
    gateway = DirectGateway(pool, AccountsClient(fakes.accounts.url, None, 2.0),
                            {Platform.TIKTOK: fakes.tiktok.url}, timeout_seconds=2.0,
                            poll_seconds=0.03, lease_seconds=30)
    media = MediaLocator(fakes.media.url, 2.0)
    try:
        yield gateway, media
    finally:
        await gateway.close()
        await media.close()


async def publishing_items(pool, influencer: str, count: int, now: datetime) -> list[str]:
    """Items of `influencer` claimed and just published to TikTok; their ids."""
    claims = [claim_data(influencer_id=influencer, claimed_at=now - timedelta(minutes=1))
              for _ in range(count)]
    assert len((await handlers.ingest_claims(pool, claims)).created) == count
    for claimed in claims:
        command = make_command("publish", claimed.claim_id, unique("cmd"),
                               {"platforms": ["tiktok"]}, actor=influencer)
        reply = (await handlers.handle(pool, command, now, POLICY)).reply
        assert reply["ok"], reply
    return [c.claim_id for c in claims]


async def lease_of(pool, item_ids: list[str], now: datetime):
    """What a lease round at `now` takes of these items."""
    return [a for a in await lease_platform_attempts(pool, now, 50, LEASE)
            if a.item_id in item_ids]


async def attempt_and_apply(pool, publisher, attempts, now: datetime) -> list[dict]:
    """Each attempt made through the gateway, its answer applied as the command agent
    would; the replies' items."""
    gateway, media = publisher
    send = SentMessages()
    for attempt in attempts:
        await publish_attempt(attempt, gateway, media, send)
    items = []
    for message in send.messages:
        assert message.topic == COMMANDS
        [command] = parse_commands(message.value)
        reply = await apply_in_process(pool, command, now, POLICY)
        assert reply["ok"], reply
        items.append(reply["item"])
    return items


async def account_events(pool, influencer: str) -> list[dict]:
    rows = await pool.fetch("SELECT topic, envelope FROM distribution_outbox"
                            " WHERE partition_key = $1 ORDER BY id", f"{influencer}:tiktok")
    events = []
    for row in rows:
        envelope = row["envelope"]
        envelope = json.loads(envelope) if isinstance(envelope, str) else envelope
        assert row["topic"] == ACCOUNTS
        assert event_schema_errors(envelope, SCHEMA) == [], envelope
        events.append(envelope)
    return events


async def held(pool, influencer: str) -> list:
    return await pool.fetch("SELECT platform, reason_code FROM distribution_account_holds"
                            " WHERE influencer_id = $1", influencer)


def refuse_account(fakes: DirectFakes, influencer: str) -> None:
    """The account's token is refused by TikTok, and M10 cannot refresh it."""
    fakes.tiktok.revoke(fakes.accounts.token_of(influencer, "tiktok"))
    fakes.accounts.refuse_refresh(influencer, "tiktok")


async def test_a_refused_account_is_held_once_passed_over_then_published_once_reconnected(
        pool, fakes, publisher):
    now = utcnow()
    influencer = unique("inf")
    first, second = await publishing_items(pool, influencer, 2, now)
    refuse_account(fakes, influencer)
    attempts = await lease_of(pool, [first, second], now)
    assert sorted(a.item_id for a in attempts) == sorted([first, second])
    by_item = {a.item_id: a for a in attempts}

    # the first meets the refusal: its row waits (attempt refunded), the account is held
    [item] = await attempt_and_apply(pool, publisher, [by_item[first]], now)
    assert item["status"] == "publishing"
    [row] = item["platform_status"]
    assert (row["status"], row["attempts"], row["error_class"]) == ("pending", 0, "auth")
    assert [(h["platform"], h["reason_code"]) for h in await held(pool, influencer)] == [
        ("tiktok", row["reason_code"])]
    [needs] = await account_events(pool, influencer)
    assert needs["event_type"] == NEEDS_RECONNECT
    assert needs["data"]["influencer_id"] == influencer
    assert needs["data"]["platform"] == "tiktok"
    assert needs["data"]["reason_code"] == row["reason_code"]

    # the second meets the same refusal: held too, announced no second time
    [item] = await attempt_and_apply(pool, publisher, [by_item[second]], now)
    assert item["status"] == "publishing"
    assert [(r["status"], r["attempts"], r["error_class"]) for r in item["platform_status"]] == [
        ("pending", 0, "auth")]
    assert [e["event_type"] for e in await account_events(pool, influencer)] == [
        NEEDS_RECONNECT]
    assert fakes.tiktok.posts_with(first) == [] and fakes.tiktok.publishes == []

    # due, but held: the lease passes both over
    for later in (now, now + timedelta(hours=1), now + timedelta(days=2)):
        assert await lease_of(pool, [first, second], later) == []

    # the influencer reconnects (M10 can refresh again): the hold lifts, said once
    fakes.accounts.refuse_refresh(influencer, "tiktok", False)
    assert await account_reconnected(pool, influencer, "tiktok", now) is True
    assert await held(pool, influencer) == []
    assert [e["event_type"] for e in await account_events(pool, influencer)] == [
        NEEDS_RECONNECT, RECONNECTED]
    assert await account_reconnected(pool, influencer, "tiktok", now) is False  # not held now
    assert len(await account_events(pool, influencer)) == 2

    # leased again and published, each once
    statuses: dict[str, str] = {}
    when, deadline = now, time.monotonic() + 20
    while set(statuses.values()) != {"published"} or len(statuses) < 2:
        assert time.monotonic() < deadline, statuses
        when += timedelta(seconds=1)
        for item in await attempt_and_apply(pool, publisher,
                                            await lease_of(pool, [first, second], when), when):
            statuses[item["id"]] = item["status"]
    assert statuses == {first: "published", second: "published"}
    assert fakes.accounts.calls[("POST", influencer, "tiktok")] == 3  # 2 refused, 1 issued
    assert len(fakes.tiktok.publishes) == 2
    assert [e["event_type"] for e in await account_events(pool, influencer)] == [
        NEEDS_RECONNECT, RECONNECTED]


async def test_reconnecting_an_account_that_is_not_held_changes_nothing(pool):
    influencer = unique("inf")
    assert await account_reconnected(pool, influencer, "tiktok", utcnow()) is False
    assert await account_events(pool, influencer) == []
    assert await held(pool, influencer) == []


async def test_an_account_m10_does_not_know_is_held_without_a_platform_call(
        pool, fakes, publisher):
    now = utcnow()
    influencer = unique("inf")
    [item_id] = await publishing_items(pool, influencer, 1, now)
    fakes.accounts.disconnect(influencer, "tiktok")

    [item] = await attempt_and_apply(pool, publisher, await lease_of(pool, [item_id], now), now)

    [row] = item["platform_status"]
    assert (item["status"], row["status"], row["error_class"], row["reason_code"]) == (
        "publishing", "pending", "auth", "account_not_connected")
    assert fakes.tiktok.calls == []
    [needs] = await account_events(pool, influencer)
    assert (needs["event_type"], needs["data"]["reason_code"]) == (
        NEEDS_RECONNECT, "account_not_connected")
    assert await lease_of(pool, [item_id], now + timedelta(hours=1)) == []
