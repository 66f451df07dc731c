"""DirectGateway (app/platforms/direct_gateway.py) against the direct-mode fakes over real
HTTP: tokens from the fake M10 (which the TikTok fake only accepts while they are current),
the clip from the fake M06, the attempt ledger and the lease on real PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime, timedelta, timezone

import pytest

from app.accounts import AccountsClient
from app.db.ledger import PgLedger, ledger_entries
from app.domain.errors import Unavailable
from app.domain.model import ErrorClass, Outcome, Platform
from app.neighbours import Media
from app.platforms.direct import LeaseLost
from app.platforms.direct_gateway import DirectGateway
from app.platforms.gateway import PostRequest, PublishOutcome
from fakes.accounts import FakeAccounts
from fakes.direct import DirectFakes
from fakes.media import CONTENT_TYPE, DURATION_SECONDS
from fakes.platform_kit import HANG
from tests.factories import make_item, make_platform_row, unique

POLL_SECONDS = 0.03
GETS, REFRESHES = "GET", "POST"


def new_gateway(pool, fakes: DirectFakes, *, lease_seconds: float = 30.0,
                timeout_seconds: float = 2.0) -> DirectGateway:
    return DirectGateway(pool, AccountsClient(fakes.accounts.url, None, 2.0),
                         {Platform.TIKTOK: fakes.tiktok.url}, timeout_seconds=timeout_seconds,
                         poll_seconds=POLL_SECONDS, lease_seconds=lease_seconds)


@pytest.fixture
async def gateway(pool, fakes):
    gateway = new_gateway(pool, fakes)
    try:
        yield gateway
    finally:
        await gateway.close()


class Post:
    """One (item, tiktok) of an influencer, each `request()` the next lease of its attempt."""

    def __init__(self, fakes: DirectFakes, item_id: str, influencer_id: str) -> None:
        self.fakes, self.item_id, self.influencer_id = fakes, item_id, influencer_id
        self.text = f"Summer drop {item_id}"  # unique: what the fake's posts are matched on
        self._leases = itertools.count(1)

    def request(self, lease: int | None = None) -> PostRequest:
        clip_id = f"clip-{self.item_id}"
        media = Media(url=self.fakes.media.media_url(clip_id), duration_seconds=DURATION_SECONDS,
                      size_bytes=self.fakes.media.size_bytes, content_type=CONTENT_TYPE)
        return PostRequest(item_id=self.item_id, platform="tiktok", clip_id=clip_id,
                           influencer_id=self.influencer_id, media_url=media.url,
                           caption={"text": self.text, "hashtags": ["ad"]}, key_attempt=1,
                           media=media, lease=lease if lease is not None else next(self._leases))

    def posts(self):
        return self.fakes.tiktok.posts_with(self.text)


async def new_post(pool, fakes: DirectFakes, influencer_id: str | None = None,
                   lease: int = 0) -> Post:
    item_id = unique("item")
    influencer_id = influencer_id or unique("inf")
    async with pool.acquire() as conn:
        await make_item(conn, status="publishing", platforms=("tiktok",), id=item_id,
                        influencer_id=influencer_id)
        await make_platform_row(conn, item_id, "tiktok", status="publishing", attempts=1,
                                next_attempt_at=datetime.now(timezone.utc))
        await conn.execute("UPDATE distribution_platform_status SET lease = $2"
                           " WHERE item_id = $1", item_id, lease)
    return Post(fakes, item_id, influencer_id)


async def settled(gateway: DirectGateway, post: Post, timeout: float = 10.0,
                  first: PublishOutcome | None = None) -> PublishOutcome:
    """Leases of the post until its outcome is no longer in progress."""
    deadline = time.monotonic() + timeout
    outcome = first or await gateway.post(post.request())
    while outcome.outcome is Outcome.IN_PROGRESS:
        if time.monotonic() > deadline:
            raise AssertionError(f"still in progress after {timeout} s: {outcome}")
        await asyncio.sleep(outcome.retry_after or POLL_SECONDS)
        outcome = await gateway.post(post.request())
    return outcome


def m10_calls(fakes: DirectFakes, method: str, post: Post) -> int:
    return fakes.accounts.calls[(method, post.influencer_id, "tiktok")]


# ---- credentials from M10 ------------------------------------------------------------------


async def test_a_post_uses_m10s_token_and_account_and_a_second_post_reuses_the_token(
        pool, fakes, gateway):
    first = await new_post(pool, fakes)
    outcome = await settled(gateway, first)

    assert outcome.outcome is Outcome.PUBLISHED, outcome
    [post] = first.posts()
    assert post.account_id == fakes.accounts.account_id(first.influencer_id, "tiktok")
    assert outcome.post_id == post.post_id
    assert (m10_calls(fakes, GETS, first), m10_calls(fakes, REFRESHES, first)) == (1, 0)

    second = await new_post(pool, fakes, first.influencer_id)
    again = await settled(gateway, second)

    assert again.outcome is Outcome.PUBLISHED, again
    assert len(second.posts()) == 1
    assert (m10_calls(fakes, GETS, first), m10_calls(fakes, REFRESHES, first)) == (1, 0)


@pytest.mark.parametrize("step", ["creator_info", "init"])
async def test_a_token_refused_once_is_refreshed_at_m10_once_and_the_post_made_once(
        pool, fakes, gateway, step):
    post = await new_post(pool, fakes)
    issued = fakes.accounts.token_of(post.influencer_id, "tiktok")
    fakes.tiktok.faults.script(step, "access_token_invalid")

    outcome = await settled(gateway, post)

    assert outcome.outcome is Outcome.PUBLISHED, outcome
    assert len(post.posts()) == 1
    assert (m10_calls(fakes, GETS, post), m10_calls(fakes, REFRESHES, post)) == (1, 1)
    assert len(fakes.tiktok.calls_to(step)) == 2  # refused, then again with the new token
    assert fakes.accounts.token_of(post.influencer_id, "tiktok") != issued


async def test_a_token_refused_again_after_the_refresh_is_an_auth_failure_without_a_post(
        pool, fakes, gateway):
    post = await new_post(pool, fakes)
    fakes.tiktok.faults.script("init", "access_token_invalid", "access_token_invalid")

    outcome = await gateway.post(post.request())

    assert (outcome.outcome, outcome.error_class) == (Outcome.REJECTED, ErrorClass.AUTH), outcome
    assert outcome.reason_code == "access_token_invalid"
    assert post.posts() == [] and fakes.tiktok.publishes == []
    assert m10_calls(fakes, REFRESHES, post) == 1  # once, not once per refusal
    assert len(fakes.tiktok.calls_to("init")) == 2


async def test_a_refresh_m10_refuses_is_an_auth_failure_without_a_second_run(
        pool, fakes, gateway):
    post = await new_post(pool, fakes)
    fakes.accounts.refuse_refresh(post.influencer_id, "tiktok")
    fakes.tiktok.faults.script("creator_info", "access_token_invalid")

    outcome = await gateway.post(post.request())

    assert (outcome.outcome, outcome.error_class) == (Outcome.REJECTED, ErrorClass.AUTH), outcome
    assert post.posts() == []
    assert m10_calls(fakes, REFRESHES, post) == 1
    assert len(fakes.tiktok.calls_to("creator_info")) == 1
    assert fakes.tiktok.calls_to("init") == []


async def test_an_account_m10_does_not_know_is_auth_without_a_platform_call(
        pool, fakes, gateway):
    post = await new_post(pool, fakes)
    fakes.accounts.disconnect(post.influencer_id, "tiktok")

    outcome = await gateway.post(post.request())

    assert (outcome.outcome, outcome.error_class, outcome.reason_code) == (
        Outcome.REJECTED, ErrorClass.AUTH, "account_not_connected"), outcome
    assert m10_calls(fakes, GETS, post) == 1
    assert fakes.tiktok.calls == []
    assert await ledger_entries(pool, post.item_id) == []  # not even claimed


async def test_m10_unavailable_is_transient_without_a_platform_call_then_the_post_is_made(
        pool, fakes, gateway):
    post = await new_post(pool, fakes)
    fakes.accounts.script(post.influencer_id, "tiktok", 503)

    outcome = await gateway.post(post.request())

    assert (outcome.outcome, outcome.error_class, outcome.reason_code) == (
        Outcome.TRANSIENT, ErrorClass.TRANSIENT, "accounts_unavailable"), outcome
    assert fakes.tiktok.calls == []
    assert (await settled(gateway, post)).outcome is Outcome.PUBLISHED  # M10 is back
    assert len(post.posts()) == 1


async def test_concurrent_posts_meeting_one_refused_token_refresh_it_at_m10_once(
        pool, fakes, gateway):
    influencer = unique("inf")
    posts = [await new_post(pool, fakes, influencer) for _ in range(10)]
    refused = await gateway.accounts.credentials(influencer, "tiktok")  # cached
    fakes.tiktok.revoke(refused.access_token)  # e.g. the influencer changed the password

    firsts = await asyncio.gather(*(gateway.post(p.request()) for p in posts))

    assert all(o.error_class is None for o in firsts), firsts
    assert m10_calls(fakes, REFRESHES, posts[0]) == 1
    outcomes = [await settled(gateway, p, first=o) for p, o in zip(posts, firsts)]
    assert {o.outcome for o in outcomes} == {Outcome.PUBLISHED}
    assert [len(p.posts()) for p in posts] == [1] * 10
    assert (m10_calls(fakes, GETS, posts[0]), m10_calls(fakes, REFRESHES, posts[0])) == (1, 1)


# ---- the lease -------------------------------------------------------------------------------


async def test_a_lease_a_later_lease_took_over_raises_lease_lost_without_a_platform_call(
        pool, fakes, gateway):
    post = await new_post(pool, fakes)
    await PgLedger(pool, post.item_id, "tiktok", 1, 5).claim()  # lease 5 holds the entry

    with pytest.raises(LeaseLost):
        await gateway.post(post.request(lease=4))

    assert fakes.tiktok.calls == []
    [entry] = await ledger_entries(pool, post.item_id)
    assert (entry["lease"], entry["step"]) == (5, "started")


async def next_attempt_at(pool, item_id: str) -> datetime:
    return await pool.fetchval("SELECT next_attempt_at FROM distribution_platform_status"
                               " WHERE item_id = $1 AND platform = 'tiktok'", item_id)


async def test_the_lease_is_kept_while_a_slow_call_runs(pool, fakes):
    gateway = new_gateway(pool, fakes, lease_seconds=0.6, timeout_seconds=1.0)
    try:
        post = await new_post(pool, fakes, lease=1)
        before = await next_attempt_at(pool, post.item_id)
        fakes.tiktok.faults.script("creator_info", HANG)  # answered by our timeout, 1 s

        outcome = await gateway.post(post.request(lease=1))
        returned = datetime.now(timezone.utc)
    finally:
        await gateway.close()

    assert outcome.outcome is not Outcome.PUBLISHED and post.posts() == []
    kept = await next_attempt_at(pool, post.item_id)
    # kept every 0.2 s for 0.6 s more: still leased when the call ended, 1 s after `before`
    assert kept > returned
    assert kept - before > timedelta(seconds=0.9)


async def test_the_service_token_goes_to_m10_and_a_refused_one_holds_no_account():
    async with FakeAccounts(required_token="service-token") as m10:
        good = AccountsClient(m10.url, "service-token", 2.0)
        wrong = AccountsClient(m10.url, "not-the-token", 2.0)
        try:
            credentials = await good.credentials("inf-1", "tiktok")
            assert credentials.access_token == m10.token_of("inf-1", "tiktok")
            with pytest.raises(Unavailable):  # transient: the account is not to blame
                await wrong.credentials("inf-1", "tiktok")
        finally:
            await good.close()
            await wrong.close()
