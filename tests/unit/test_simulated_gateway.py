"""The in-process stand-in for the platform gateway."""

from __future__ import annotations

import logging

import pytest

from app.platforms.gateway import ErrorClass, Outcome, PostRequest
from app.platforms.simulated import FailureRule, SimulatedGateway, parse_failures


def make_request(item_id: str = "item-1", platform: str = "instagram",
                 key_attempt: int = 1) -> PostRequest:
    return PostRequest(item_id=item_id, platform=platform, clip_id="clip-1",
                       influencer_id="inf-1", media_url="https://media.example/c1.mp4",
                       key_attempt=key_attempt)


# ---- the failure string --------------------------------------------------------------


def test_a_failure_string_is_parsed_into_a_rule_per_platform():
    rules = parse_failures("instagram:rejected:1, youtube:transient:2,snapchat:rejected")

    assert rules == {
        "instagram": FailureRule(ErrorClass.PERMANENT, 1),
        "youtube": FailureRule(ErrorClass.TRANSIENT, 2),
        "snapchat": FailureRule(ErrorClass.PERMANENT, None),
    }


@pytest.mark.parametrize("text", ["", "   ", ","])
def test_a_blank_failure_string_means_no_failures(text):
    assert parse_failures(text) == {}


@pytest.mark.parametrize("text, complaint", [
    ("instagram", "is not 'platform:kind'"),
    ("instagram:rejected:1:2", "is not 'platform:kind'"),
    ("myspace:rejected", "unknown platform"),
    ("instagram:flaky", "unknown kind"),
    ("instagram:rejected:0", "not a positive whole number"),
    ("instagram:rejected:-1", "not a positive whole number"),
    ("instagram:rejected:two", "not a positive whole number"),
    ("instagram:rejected,instagram:transient", "given twice"),
])
def test_a_malformed_failure_string_raises_a_clear_value_error(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_failures(text)


def test_a_malformed_failure_string_is_refused_when_the_gateway_is_made():
    with pytest.raises(ValueError, match="unknown kind"):
        SimulatedGateway("youtube:sometimes")


# ---- posting ------------------------------------------------------------------------


async def test_a_post_is_published_with_a_deterministic_id_and_url():
    first, second = SimulatedGateway(), SimulatedGateway()
    request = make_request()

    a = await first.post(request)
    b = await second.post(request)

    assert a.outcome is Outcome.PUBLISHED
    assert a.post_id.startswith("sim-instagram-") and len(a.post_id) == len("sim-instagram-") + 12
    assert a.post_url == f"https://instagram.example/posts/{a.post_id}"
    assert (a.post_id, a.post_url) == (b.post_id, b.post_url)


async def test_the_same_key_twice_gives_the_same_post_and_posts_once():
    gateway = SimulatedGateway()
    request = make_request()

    first = await gateway.post(request)
    again = await gateway.post(request)

    assert again == first
    assert list(gateway.posts) == [request]
    assert len(gateway.attempts) == 2


async def test_a_long_running_gateway_keeps_its_last_requests_and_keys_only():
    gateway = SimulatedGateway(kept_requests=3, kept_keys=5)
    requests = [make_request(key_attempt=n) for n in range(1, 11)]
    outcomes = [await gateway.post(r) for r in requests]

    assert list(gateway.attempts) == requests[-3:] and list(gateway.posts) == requests[-3:]
    assert await gateway.post(requests[-1]) == outcomes[-1]  # a recent key: the same post
    assert len(gateway.posts) == 3 and gateway.posts[-1] == requests[-1]  # not posted again
    await gateway.post(requests[0])  # forgotten: a new post (the real gateway keeps its own)
    assert gateway.posts[-1] == requests[0]


async def test_a_new_key_attempt_gives_a_new_post():
    gateway = SimulatedGateway()

    first = await gateway.post(make_request(key_attempt=1))
    second = await gateway.post(make_request(key_attempt=2))

    assert first.post_id != second.post_id
    assert len(gateway.posts) == 2


async def test_the_first_n_attempts_fail_as_configured_then_posts_succeed():
    gateway = SimulatedGateway("youtube:transient:2")
    request = make_request(platform="youtube")

    outcomes = [await gateway.post(request) for _ in range(3)]

    assert [o.outcome for o in outcomes] == [Outcome.TRANSIENT, Outcome.TRANSIENT,
                                             Outcome.PUBLISHED]
    assert "transient" in outcomes[0].error
    assert list(gateway.posts) == [request]


async def test_a_counted_rejection_applies_to_the_first_attempt_only():
    gateway = SimulatedGateway("instagram:rejected:1")

    rejected = await gateway.post(make_request(item_id="item-a"))
    published = await gateway.post(make_request(item_id="item-b"))

    assert rejected.outcome is Outcome.REJECTED
    assert rejected.post_id is None and "permanent" in rejected.error
    assert (rejected.error_class, rejected.reason_code) == (ErrorClass.PERMANENT,
                                                            "simulated_permanent")
    assert published.outcome is Outcome.PUBLISHED


async def test_a_failure_without_a_count_applies_to_every_attempt():
    gateway = SimulatedGateway("snapchat:rejected")

    outcomes = [await gateway.post(make_request(item_id=f"item-{n}", platform="snapchat"))
                for n in range(5)]

    assert {o.outcome for o in outcomes} == {Outcome.REJECTED}
    assert not gateway.posts


@pytest.mark.parametrize("kind, outcome", [
    (ErrorClass.QUOTA, Outcome.TRANSIENT), (ErrorClass.AUTH, Outcome.REJECTED),
    (ErrorClass.MEDIA, Outcome.REJECTED), (ErrorClass.POLICY, Outcome.REJECTED)])
async def test_every_error_class_can_be_injected(kind, outcome):
    gateway = SimulatedGateway(f"tiktok:{kind.value}:1")

    failed = await gateway.post(make_request(platform="tiktok"))

    assert (failed.outcome, failed.error_class) == (outcome, kind)
    # a full window says when it resets: the item waits for it without spending an attempt
    assert (failed.retry_after is not None) is (kind is ErrorClass.QUOTA)
    assert (await gateway.post(make_request(platform="tiktok"))).outcome is Outcome.PUBLISHED


async def test_failures_on_one_platform_leave_the_others_alone():
    gateway = SimulatedGateway("snapchat:rejected,youtube:transient:1")

    tiktok = await gateway.post(make_request(platform="tiktok"))
    instagram = await gateway.post(make_request(platform="instagram"))

    assert tiktok.outcome is instagram.outcome is Outcome.PUBLISHED


async def test_a_key_already_posted_is_recognised_before_an_injected_failure():
    gateway = SimulatedGateway()
    request = make_request(platform="tiktok")
    posted = await gateway.post(request)
    gateway.failures = parse_failures("tiktok:transient")

    again = await gateway.post(request)

    assert again == posted


async def test_each_simulated_answer_is_logged_with_item_platform_key_and_outcome(caplog):
    gateway = SimulatedGateway()
    request = make_request()

    with caplog.at_level(logging.INFO, logger="distribution.platforms"):
        await gateway.post(request)

    [record] = [r for r in caplog.records if r.name == "distribution.platforms"]
    assert (record.item_id, record.platform, record.idempotency_key, record.outcome) == (
        "item-1", "instagram", "item-1:instagram:1", "published")


async def test_close_does_nothing_and_can_be_called_twice():
    gateway = SimulatedGateway()

    await gateway.close()
    await gateway.close()
