"""The Instagram direct flow (app/platforms/instagram.py) against FakeInstagram and the
fake M06 over real HTTP, with the attempt ledger on real PostgreSQL. A crash is a lease
whose flow stopped (a call that hung and timed out), followed by another lease."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.domain.model import ErrorClass, Outcome
from app.platforms import instagram as flow
from app.platforms.direct import Credentials, Reply
from fakes.instagram import FakeInstagram, permalink
from fakes.media import FakeMediaServer
from fakes.platform_kit import HANG, HANG_AFTER
from tests.direct_flows import FlowRun, flow_run

ACCOUNT = "17841400000000001"
MEDIA_SIZE = 300_000


@pytest.fixture
async def instagram():
    async with FakeInstagram(processing_seconds=0.05) as fake:
        yield fake


@pytest.fixture
def new_run(pool, session, instagram, media):
    """`await new_run(**options)`: one item's Instagram attempt, short timeouts."""
    async def make(media_server: FakeMediaServer = media, **options) -> FlowRun:
        options = {"timeout_seconds": 0.25, "poll_seconds": 0.02, **options}
        return await flow_run(pool, session, flow.publish, flow.PLATFORM, instagram.url,
                              media_server, account_id=ACCOUNT, **options)
    return make


def posted_caption(run: FlowRun) -> str:
    return f"{run.caption['text']} #ad #summer"


async def only_entry(run: FlowRun) -> dict:
    entries = await run.ledger()
    assert len(entries) == 1
    return entries[0]


async def published_after(run: FlowRun, stopped, reason_code: str, step: str):
    """Checks that the attempt which `stopped` with `reason_code` left the ledger at `step`,
    then leases the run to its end; that outcome, which must be a publish."""
    assert stopped.reason_code == reason_code
    assert (await only_entry(run))["step"] == step
    outcome = await run.until_settled()
    assert outcome.outcome is Outcome.PUBLISHED
    return outcome


# --- the happy path and waiting ---------------------------------------------------------

async def test_publishes_one_reel_with_the_rendered_caption_and_records_its_handles(
        new_run, instagram, media):
    run = await new_run()

    outcome = await run.until_settled()

    [post] = instagram.posts
    [container] = instagram.containers
    assert outcome.outcome is Outcome.PUBLISHED
    assert (outcome.post_id, outcome.post_url) == (post.post_id, permalink(post))
    assert post.text == posted_caption(run)
    assert post.account_id == ACCOUNT
    assert post.media_url == media.media_url(run.clip_id)
    assert container.downloaded_bytes == MEDIA_SIZE  # Meta really pulled the clip
    entry = await only_entry(run)
    assert entry["step"] == flow.PUBLISHED
    handles = entry["handles"]
    assert handles["container_id"] == container.id
    assert handles["media_id"] == post.post_id
    assert handles["post_url"] == permalink(post)
    assert handles["quota_total"] == 50
    assert handles["ig_user_id"] == ACCOUNT
    assert handles["publish_sent_at"]


async def test_in_progress_while_processing_then_publishes_once_after_it_finished(
        new_run, instagram):
    instagram.processing_seconds = 0.2
    run = await new_run()

    outcome = await run.until_settled()

    waiting, last = run.outcomes[:-1], run.outcomes[-1]
    assert outcome is last and last.outcome is Outcome.PUBLISHED
    assert len(waiting) >= 2
    assert all(o.outcome is Outcome.IN_PROGRESS and o.reason_code == "IN_PROGRESS"
               and o.retry_after == run.poll_seconds for o in waiting)
    # The fake refuses media_publish before FINISHED: one call that worked came after.
    assert len(instagram.calls_to("media_publish")) == 1
    assert len(instagram.calls_to("create_container")) == 1
    assert len(instagram.posts) == 1


async def test_media_not_ready_at_publish_is_in_progress_then_published_once(
        new_run, instagram):
    instagram.faults.script("media_publish", "2207027")
    run = await new_run()

    outcome = await run.until_settled()

    assert [o.reason_code for o in run.outcomes if o.reason_code == "2207027"] == ["2207027"]
    assert outcome.outcome is Outcome.PUBLISHED
    assert len(instagram.calls_to("media_publish")) == 2
    assert len(instagram.containers) == 1
    assert len(instagram.posts) == 1


# --- error classes ----------------------------------------------------------------------

@pytest.mark.parametrize("step, fault, error_class, retry_after", [
    ("create_container", "1", ErrorClass.TRANSIENT, None),
    ("create_container", "2", ErrorClass.TRANSIENT, 7.0),  # Retry-After honoured
    ("create_container", "2207001", ErrorClass.TRANSIENT, None),
    ("container_status", "2207008", ErrorClass.TRANSIENT, None),
    ("create_container", "613", ErrorClass.QUOTA, flow.THROTTLE_RETRY_SECONDS),
    ("create_container", "80002", ErrorClass.QUOTA, 120.0),  # the BUC usage header
    ("media_publish", "2207042", ErrorClass.QUOTA, flow.QUOTA_WINDOW_RETRY_SECONDS),
    ("content_publishing_limit", "463", ErrorClass.AUTH, None),
    ("create_container", "200", ErrorClass.AUTH, None),
    ("container_status", "2207006", ErrorClass.AUTH, None),
    ("media_publish", "2207051", ErrorClass.POLICY, None),
    ("create_container", "2207050", ErrorClass.POLICY, None),
    ("create_container", "368", ErrorClass.POLICY, None),
    ("create_container", "2207026", ErrorClass.MEDIA, None),
    ("create_container", "2207052", ErrorClass.MEDIA, None),
    ("create_container", "2207010", ErrorClass.PERMANENT, None),
    ("media_publish", "2207020", ErrorClass.PERMANENT, None),
])
async def test_graph_error_is_classed_with_its_subcode_or_code(
        new_run, instagram, step, fault, error_class, retry_after):
    instagram.faults.script(step, fault)
    run = await new_run()

    outcome = await run.until_settled()

    assert (outcome.error_class, outcome.reason_code) == (error_class, fault)
    assert outcome.retry_after == retry_after
    assert instagram.posts == []
    entry = await only_entry(run)
    if step == "create_container":
        assert entry["step"] == flow.NOT_POSTED  # the next attempt starts afresh
    if step == "media_publish":
        assert entry["step"] == flow.PUBLISH_REFUSED  # the container's status decides


async def test_full_publishing_window_fails_quota_before_making_a_container(
        new_run, instagram):
    instagram.quota_total = 1
    instagram.add_post(ACCOUNT, "posted earlier today", None)
    run = await new_run()

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.QUOTA, "2207042")
    assert outcome.retry_after == flow.QUOTA_WINDOW_RETRY_SECONDS
    assert instagram.calls_to("create_container") == []
    entry = await only_entry(run)
    assert (entry["step"], entry["handles"]["quota_total"]) == (flow.NOT_POSTED, 1)


async def test_missing_token_is_refused_as_auth_190(new_run, instagram):
    run = await new_run(access_token="")

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.AUTH, "190")
    assert instagram.containers == []


async def test_unreachable_video_url_makes_the_container_error_2207052(new_run, instagram):
    async with FakeMediaServer(size_bytes=MEDIA_SIZE) as gone:
        pass  # stopped: Meta's pull is refused
    run = await new_run(media_server=gone)

    outcome = await run.until_settled()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.MEDIA, "2207052")
    assert instagram.posts == []
    assert (await only_entry(run))["step"] == flow.NOT_POSTED


async def test_auth_failure_mid_flow_then_rerun_with_a_new_token_resumes_the_container(
        new_run, instagram):
    instagram.faults.script("container_status", "463")
    run = await new_run()

    refused = await run.lease()
    run.credentials = Credentials("token-2", ACCOUNT)  # what the runner's refresh does
    outcome = await run.until_settled()

    assert (refused.error_class, refused.reason_code) == (ErrorClass.AUTH, "463")
    assert outcome.outcome is Outcome.PUBLISHED
    assert len(instagram.containers) == 1
    assert len(instagram.posts) == 1


# --- crashes and reconciliation ---------------------------------------------------------

async def test_answer_lost_after_publish_next_lease_finds_the_media_in_the_list(
        new_run, instagram):
    instagram.faults.script("media_publish", HANG_AFTER)
    run = await new_run()

    lost = await run.until_settled()
    assert (lost.outcome, lost.reason_code) == (Outcome.TRANSIENT, "timeout")
    assert (await only_entry(run))["step"] == flow.PUBLISH_SENDING
    outcome = await run.lease()

    [post] = instagram.posts
    assert outcome.outcome is Outcome.PUBLISHED
    assert (outcome.post_id, outcome.post_url) == (post.post_id, permalink(post))
    assert len(instagram.calls_to("media_publish")) == 1  # never published again
    entry = await only_entry(run)
    assert (entry["step"], entry["handles"]["media_id"]) == (flow.PUBLISHED, post.post_id)


async def test_lost_publish_answer_is_found_across_media_list_pages(new_run, instagram):
    instagram.page_size = 2
    instagram.faults.script("media_publish", HANG_AFTER)
    run = await new_run()
    await run.until_settled()
    for n in range(5):  # newer posts push ours to the third page
        instagram.add_post(ACCOUNT, f"another reel {n}", None)

    outcome = await run.lease()

    ours = instagram.posts_with(run.caption["text"])
    assert len(ours) == 1 and outcome.post_id == ours[0].post_id
    assert len(instagram.calls_to("media_list")) == 3
    assert len(instagram.calls_to("media_publish")) == 1


async def test_two_listed_media_with_our_caption_leave_the_outcome_unknown(
        new_run, instagram):
    instagram.faults.script("media_publish", HANG_AFTER)
    run = await new_run()
    await run.until_settled()
    instagram.add_post(ACCOUNT, posted_caption(run), None)  # posted by hand meanwhile

    outcome = await run.lease()

    assert (outcome.outcome, outcome.reason_code) == (Outcome.UNKNOWN, "ambiguous_media")
    assert len(instagram.calls_to("media_publish")) == 1


async def test_published_media_missing_from_the_list_is_waited_for_then_found(
        new_run, instagram):
    instagram.listing_delay_seconds = 0.4  # longer than the lost call's timeout
    instagram.faults.script("media_publish", HANG_AFTER)
    run = await new_run()
    await run.until_settled()

    outcome = await run.until_settled()

    assert "media_not_listed" in [o.reason_code for o in run.outcomes]
    assert outcome.outcome is Outcome.PUBLISHED
    assert outcome.post_id == instagram.posts[0].post_id
    assert len(instagram.posts) == 1


async def test_published_media_never_listed_is_unknown_after_the_grace_period(
        new_run, instagram, monkeypatch):
    monkeypatch.setattr(flow, "LISTING_GRACE_SECONDS", 0.0)
    instagram.listing_delay_seconds = 3600
    instagram.faults.script("media_publish", HANG_AFTER)
    run = await new_run()
    await run.until_settled()

    first, second = await run.lease(), await run.lease()

    assert (first.outcome, first.reason_code) == (Outcome.IN_PROGRESS, "media_not_listed")
    assert (second.outcome, second.reason_code) == (Outcome.UNKNOWN, "media_not_listed")
    assert len(instagram.posts) == 1
    assert len(instagram.calls_to("media_publish")) == 1


async def test_crash_after_container_created_next_lease_polls_the_same_container(
        new_run, instagram):
    instagram.faults.script("container_status", HANG)
    run = await new_run()

    await published_after(run, await run.lease(), "timeout", flow.CONTAINER_CREATED)

    assert len(instagram.calls_to("create_container")) == 1
    assert len(instagram.containers) == 1
    assert len(instagram.posts) == 1


async def test_publish_sent_but_never_reached_meta_container_finished_publishes_once(
        new_run, instagram):
    instagram.faults.script("media_publish", HANG)  # the call is lost before Meta acts
    run = await new_run()

    crashed = await run.until_settled()
    assert instagram.posts == []

    await published_after(run, crashed, "timeout", flow.PUBLISH_SENDING)

    assert len(instagram.calls_to("media_publish")) == 2
    assert len(instagram.containers) == 1
    assert len(instagram.posts) == 1


async def test_container_error_then_next_attempt_makes_a_new_container_and_posts_once(
        new_run, instagram):
    instagram.faults.script("processing", "2207001")
    run = await new_run()

    failed = await run.until_settled()
    assert failed.error_class is ErrorClass.TRANSIENT

    await published_after(run, failed, "2207001", flow.NOT_POSTED)

    first, second = instagram.containers
    assert instagram.status_of(first) == "ERROR"
    assert [p.extra["container_id"] for p in instagram.posts] == [second.id]
    assert (await only_entry(run))["handles"]["container_id"] == second.id


async def test_expired_container_is_replaced_and_published_once(new_run, instagram):
    instagram.processing_seconds = 60  # still processing at the first look
    run = await new_run()
    assert (await run.lease()).outcome is Outcome.IN_PROGRESS
    instagram.advance(24 * 3600 + 1)  # a day later, never published
    instagram.processing_seconds = 0.05

    outcome = await run.until_settled()

    first, second = instagram.containers
    assert instagram.status_of(first) == "EXPIRED"
    assert outcome.outcome is Outcome.PUBLISHED
    assert [p.extra["container_id"] for p in instagram.posts] == [second.id]


async def test_fake_publishes_a_published_container_again_only_the_ledger_prevents_it(
        new_run, instagram, session):
    run = await new_run()
    await run.until_settled()
    [container] = instagram.containers

    async with session.post(f"{instagram.url}/{ACCOUNT}/media_publish",
                            params={"creation_id": container.id,
                                    "access_token": "token-1"}) as response:
        assert response.status == 200

    assert len(instagram.posts) == 2  # Meta's behaviour is unconfirmed: the worst case


# --- the error mapping, on its own ------------------------------------------------------

@pytest.mark.parametrize("code, subcode, expected", [
    (24, 2207008, ErrorClass.TRANSIENT), (24, 2207006, ErrorClass.AUTH),
    (4, None, ErrorClass.QUOTA), (4, 2207051, ErrorClass.POLICY),
    (-2, 2207003, ErrorClass.TRANSIENT), (-2, 2207020, ErrorClass.PERMANENT),
    (190, 460, ErrorClass.AUTH), (250, None, ErrorClass.AUTH), (80014, None, ErrorClass.QUOTA),
    (9004, 2207052, ErrorClass.MEDIA), (100, 33, ErrorClass.PERMANENT),
    (None, None, ErrorClass.PERMANENT),
])
def test_error_class_prefers_the_subcode_over_the_code(code, subcode, expected):
    assert flow.error_class(code, subcode) is expected


def test_error_without_graph_shape_is_classed_by_http_status():
    error = flow.graph_error(Reply(502, {"Retry-After": "3"}, b"<html>bad gateway</html>"))
    assert (error.error_class, error.reason_code, error.retry_after) == (
        ErrorClass.TRANSIENT, "http_502", 3.0)


def test_container_error_status_carries_the_subcode():
    media = flow.container_error("Error: Media upload has failed with error code 2207026")
    unexplained = flow.container_error("Error: something went wrong")
    assert (media.error_class, media.reason_code) == (ErrorClass.MEDIA, "2207026")
    assert (unexplained.error_class, unexplained.reason_code) == (
        ErrorClass.TRANSIENT, "container_error")


def test_listed_media_match_on_caption_and_time_since_the_publish_was_sent():
    earliest = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)
    listed = [{"id": "ours", "caption": "Drop #ad", "timestamp": "2026-11-29T10:00:05+0000"},
              {"id": "older", "caption": "Drop #ad", "timestamp": "2026-11-29T09:59:59+0000"},
              {"id": "other", "caption": "Another", "timestamp": "2026-11-29T10:01:00+0000"},
              {"id": "no-time", "caption": "Drop #ad"}]
    assert [m["id"] for m in flow.matching_media(listed, "Drop #ad", earliest)] == ["ours"]
