"""HttpGateway against a real HTTP server on loopback speaking the gateway protocol."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from app.platforms.gateway import Outcome, PostRequest
from app.platforms.http import HttpGateway, parse_retry_after
from fakes.gateway import Answer, FakePlatformServer


def make_request(platform: str = "instagram", key_attempt: int = 1, **fields) -> PostRequest:
    values = dict(item_id=f"item-{uuid.uuid4().hex[:10]}", platform=platform,
                  clip_id=f"clip-{uuid.uuid4().hex[:8]}", influencer_id="inf-42",
                  media_url="https://media.example/clips/c1.mp4",
                  caption={"text": "Summer drop", "hashtags": ["#ad", "#summer"]},
                  overlays=[{"type": "intro", "duration_seconds": 2.5}],
                  key_attempt=key_attempt)
    values.update(fields)
    return PostRequest(**values)


@pytest.fixture
async def fake():
    async with FakePlatformServer() as server:
        yield server


@pytest.fixture
async def gateway(fake):
    gw = HttpGateway(fake.url, timeout_seconds=2.0)
    yield gw
    await gw.close()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- definite answers --------------------------------------------------------------


async def test_a_201_is_published_with_the_post_id_and_url_from_the_answer(fake, gateway):
    request = make_request()

    outcome = await gateway.post(request)

    assert outcome.outcome is Outcome.PUBLISHED
    [post] = fake.posts_for(request.item_id, "instagram")
    assert outcome.post_id == post.post_id
    assert outcome.post_url == post.url
    assert outcome.error is None


async def test_the_idempotency_key_header_is_sent_on_every_post(fake, gateway):
    request = make_request(platform="youtube", key_attempt=3)

    await gateway.post(request)

    [call] = fake.calls_for(request.item_id)
    assert call.platform == "youtube"
    assert call.idempotency_key == f"{request.item_id}:youtube:3"


async def test_the_body_carries_every_field_of_the_request(fake, gateway):
    request = make_request(platform="tiktok")

    await gateway.post(request)

    [call] = fake.calls_for(request.item_id, "tiktok")
    assert call.body == {
        "item_id": request.item_id, "clip_id": request.clip_id,
        "influencer_id": "inf-42", "media_url": "https://media.example/clips/c1.mp4",
        "caption": {"text": "Summer drop", "hashtags": ["#ad", "#summer"]},
        "overlays": [{"type": "intro", "duration_seconds": 2.5}],
    }


async def test_a_409_counts_as_published_with_the_original_post_id(fake, gateway):
    request = make_request()
    first = await gateway.post(request)

    again = await gateway.post(request)

    assert again.outcome is Outcome.PUBLISHED
    assert (again.post_id, again.post_url) == (first.post_id, first.post_url)
    assert [c.status for c in fake.calls_for(request.item_id)] == [201, 409]
    assert len(fake.posts_for(request.item_id, "instagram")) == 1


async def test_a_409_without_a_post_id_is_transient_not_published(fake, gateway):
    fake.script("instagram", Answer.status(409, message="same key in flight"))

    outcome = await gateway.post(make_request())

    assert outcome.outcome is Outcome.TRANSIENT
    assert "same key in flight" in outcome.error


async def test_a_2xx_without_a_post_id_is_transient(fake, gateway):
    fake.script("instagram", Answer.status(200, body={"status": "queued"}))

    outcome = await gateway.post(make_request())

    assert outcome.outcome is Outcome.TRANSIENT
    assert "no post id" in outcome.error


async def test_a_400_is_rejected_with_the_gateways_message(fake, gateway):
    fake.script("instagram", Answer.status(400, message="caption rejected"))

    outcome = await gateway.post(make_request())

    assert outcome.outcome is Outcome.REJECTED
    assert outcome.error == "caption rejected"
    assert outcome.post_id is None


async def test_a_rejection_message_is_read_from_a_nested_error_object(fake, gateway):
    fake.script("tiktok", Answer.status(422, body={"error": {"message": "video too long"}}))

    outcome = await gateway.post(make_request(platform="tiktok"))

    assert outcome.outcome is Outcome.REJECTED
    assert outcome.error == "video too long"


async def test_a_plain_text_rejection_is_kept_and_cut_to_500_characters(fake, gateway):
    fake.script("snapchat", Answer.status(403, body="x" * 2000))

    outcome = await gateway.post(make_request(platform="snapchat"))

    assert outcome.outcome is Outcome.REJECTED
    assert outcome.error == "x" * 500


async def test_an_unknown_platform_is_rejected(fake, gateway):
    outcome = await gateway.post(make_request(platform="myspace"))

    assert outcome.outcome is Outcome.REJECTED
    assert "unknown platform" in outcome.error


# ---- transient answers ------------------------------------------------------------


async def test_a_429_is_transient_with_retry_after_in_seconds(fake, gateway):
    fake.script("instagram", Answer.status(429, retry_after=7))

    outcome = await gateway.post(make_request())

    assert outcome.outcome is Outcome.TRANSIENT
    assert outcome.retry_after == 7.0
    assert "429" in outcome.error


async def test_a_429_with_an_http_date_retry_after_gives_the_seconds_until_then(fake, gateway):
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=120)
    fake.script("instagram", Answer.status(429, retry_after=when))

    outcome = await gateway.post(make_request())

    assert outcome.outcome is Outcome.TRANSIENT
    assert 110 <= outcome.retry_after <= 120


async def test_a_429_without_retry_after_has_no_retry_after(fake, gateway):
    fake.script("instagram", Answer.status(429))

    outcome = await gateway.post(make_request())

    assert outcome.outcome is Outcome.TRANSIENT
    assert outcome.retry_after is None


async def test_a_500_is_transient_and_says_so(fake, gateway):
    fake.script("youtube", Answer.status(500, message="upstream exploded"))

    outcome = await gateway.post(make_request(platform="youtube"))

    assert outcome.outcome is Outcome.TRANSIENT
    assert outcome.error == "HTTP 500 gateway error: upstream exploded"
    assert outcome.retry_after is None


async def test_a_hang_beyond_the_timeout_is_transient_and_does_not_raise(fake):
    fake.script("instagram", Answer.hang(30))
    gateway = HttpGateway(fake.url, timeout_seconds=0.2)
    try:
        started = asyncio.get_running_loop().time()
        outcome = await gateway.post(make_request())
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        await gateway.close()

    assert outcome.outcome is Outcome.TRANSIENT
    assert "timeout" in outcome.error
    assert elapsed < 2.0


async def test_a_refused_connection_is_transient_and_does_not_raise():
    gateway = HttpGateway(f"http://127.0.0.1:{closed_port()}", timeout_seconds=2.0)
    try:
        outcome = await gateway.post(make_request())
    finally:
        await gateway.close()

    assert outcome.outcome is Outcome.TRANSIENT
    assert "connection refused" in outcome.error


async def test_a_post_whose_answer_was_lost_is_recognised_when_retried_with_the_same_key(
        fake, gateway):
    fake.script("instagram", Answer.posted_then_fail(502))
    request = make_request()

    lost = await gateway.post(request)
    retried = await gateway.post(request)

    assert lost.outcome is Outcome.TRANSIENT
    assert retried.outcome is Outcome.PUBLISHED
    [post] = fake.posts_for(request.item_id, "instagram")
    assert retried.post_id == post.post_id
    assert [c.status for c in fake.calls_for(request.item_id)] == [502, 409]


async def test_a_timed_out_post_retried_with_the_same_key_is_not_posted_twice(fake):
    fake.script("youtube", Answer.hang(30, posts=True))
    request = make_request(platform="youtube")
    gateway = HttpGateway(fake.url, timeout_seconds=0.2)
    try:
        timed_out = await gateway.post(request)
        retried = await gateway.post(request)
    finally:
        await gateway.close()

    assert timed_out.outcome is Outcome.TRANSIENT
    assert retried.outcome is Outcome.PUBLISHED
    assert len(fake.posts_for(request.item_id, "youtube")) == 1


async def test_a_new_key_attempt_creates_a_new_post(fake, gateway):
    first = await gateway.post(make_request(item_id="item-same", key_attempt=1))
    second = await gateway.post(make_request(item_id="item-same", key_attempt=2))

    assert first.post_id != second.post_id
    assert len(fake.posts_for("item-same", "instagram")) == 2


async def test_scripted_answers_are_used_in_order_and_then_the_server_posts(fake, gateway):
    fake.script("snapchat", Answer.status(503), Answer.status(429, retry_after=1))
    request = make_request(platform="snapchat")

    outcomes = [(await gateway.post(request)).outcome for _ in range(3)]

    assert outcomes == [Outcome.TRANSIENT, Outcome.TRANSIENT, Outcome.PUBLISHED]
    assert fake.scripted_left("snapchat") == 0


# ---- sessions and logs ------------------------------------------------------------


async def test_a_session_passed_in_is_used_and_left_open_on_close(fake):
    async with aiohttp.ClientSession() as session:
        gateway = HttpGateway(fake.url + "/", timeout_seconds=2.0, session=session)
        outcome = await gateway.post(make_request())
        await gateway.close()

        assert outcome.outcome is Outcome.PUBLISHED
        assert not session.closed


async def test_close_closes_the_session_the_gateway_made(fake):
    gateway = HttpGateway(fake.url, timeout_seconds=2.0)
    await gateway.post(make_request())
    session = gateway._session

    await gateway.close()

    assert session is not None and session.closed


async def test_each_answer_is_logged_with_item_platform_key_and_outcome(fake, gateway, caplog):
    fake.script("instagram", Answer.status(400, message="caption rejected"))
    request = make_request()

    with caplog.at_level(logging.INFO, logger="distribution.platforms"):
        await gateway.post(request)

    [record] = [r for r in caplog.records if r.name == "distribution.platforms"]
    assert record.levelno == logging.WARNING
    assert record.item_id == request.item_id
    assert record.platform == "instagram"
    assert record.idempotency_key == request.idempotency_key
    assert record.outcome == "rejected"
    assert record.http_status == 400


# ---- the fake from another thread ---------------------------------------------------


async def test_the_fake_runs_in_its_own_thread_and_can_be_scripted_from_outside():
    fake = FakePlatformServer()
    url = fake.start_in_thread()
    gateway = HttpGateway(url, timeout_seconds=2.0)
    try:
        fake.script("tiktok", Answer.status(500))
        request = make_request(platform="tiktok")
        first = await gateway.post(request)
        second = await gateway.post(request)
        calls = await fake.await_calls(2, timeout=5)
    finally:
        await gateway.close()
        fake.stop_thread()

    assert (first.outcome, second.outcome) == (Outcome.TRANSIENT, Outcome.PUBLISHED)
    assert [c.status for c in calls] == [500, 201]
    assert len(fake.posts_for(request.item_id, "tiktok")) == 1


# ---- Retry-After parsing ----------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("soon", None), ("-3", None), ("0", 0.0), ("12", 12.0),
    ("1.5", 1.5), ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
])
def test_retry_after_is_read_as_seconds_or_an_http_date(value, expected):
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)

    assert parse_retry_after(value, now=now) == expected
