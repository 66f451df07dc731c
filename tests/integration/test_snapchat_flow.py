"""The Snapchat Spotlight flow (app/platforms/snapchat.py) against FakeSnapchat and the fake
M06 over real HTTP, with the attempt ledger on real PostgreSQL: one post per attempt at
most, whatever is lost, refused or crashed on the way."""

from __future__ import annotations

import functools
from dataclasses import replace

import pytest

from app.domain.model import ErrorClass, Outcome
from app.domain.rules import rendered_caption
from app.platforms import snapchat
from app.platforms.direct import Credentials, Reply
from app.platforms.snapchat import publish
from fakes.media import FakeMediaServer, media_digest
from fakes.platform_kit import HANG, HANG_AFTER
from fakes.snapchat import (BAD_GATEWAY, MEDIA_EXPIRED, MEDIA_POSTING_ALREADY_IN_PROGRESS,
                            MEDIA_UPLOAD_INVALID, PERMISSION_DENIED, RATE_LIMITED,
                            SERVER_ERROR, UNAUTHORIZED, FakeSnapchat)
from tests.direct_flows import flow_run

MEDIA_SIZE = 300_000
PROFILE = "profile-1"


@pytest.fixture
async def snap(media):
    async with FakeSnapchat(media=media, processing_seconds=0.02) as fake:
        yield fake


@pytest.fixture
def new_run(pool, session, snap, media):
    """`await new_run(flow=..., **FlowRun options)`: an item ready for its Snapchat flow."""
    async def make(flow=publish, api_url=None, **options):
        options.setdefault("poll_seconds", 0.04)
        options.setdefault("timeout_seconds", 2.0)
        return await flow_run(pool, session, flow, "snapchat", api_url or snap.url, media,
                              account_id=PROFILE, **options)
    return make


def as_posted(run) -> str:
    return rendered_caption(run.caption["text"], tuple(run.caption["hashtags"]))


async def entry(run) -> dict:
    [only] = await run.ledger()
    return only


class Crash(Exception):
    """The worker dies right after a ledger write."""


async def after_a_transient_failure(new_run, snap, step: str, fault, reason_code: str,
                                    **options):
    """A run whose `step` call met `fault` once, settled as transient with `reason_code`."""
    snap.faults.script(step, fault)
    run = await new_run(**options)
    failed = await run.until_settled()
    assert (failed.error_class, failed.reason_code) == (ErrorClass.TRANSIENT, reason_code)
    return run


def crashing_after(step: str):
    """The Snapchat flow on a ledger whose write of `step` commits, then kills the lease."""
    async def flow(attempt):
        ledger = attempt.ledger

        class DyingLedger:
            @property
            def entry(self):
                return ledger.entry

            async def record(self, name, **handles):
                written = await ledger.record(name, **handles)
                if name == step:
                    raise Crash(name)
                return written

        return await publish(replace(attempt, ledger=DyingLedger()))
    return flow


# ---- the way it should go ------------------------------------------------------------


async def test_a_clip_is_posted_once_as_a_spotlight_with_the_caption_as_rendered(
        new_run, snap):
    run = await new_run()

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    [post] = snap.posts
    assert (post.account_id, post.text) == (PROFILE, as_posted(run))
    assert outcome.post_id == post.post_id
    assert outcome.post_url == f"https://www.snapchat.com/spotlight/{post.post_id}"
    ledger = await entry(run)
    assert ledger["step"] == snapchat.POSTED
    handles = ledger["handles"]
    assert handles["spotlight_id"] == post.post_id
    assert handles["media_id"] == post.extra["media_id"]
    assert handles["profile_id"] == PROFILE
    assert handles["add_path"].endswith("?action=ADD")
    assert handles["finalize_path"].endswith("?action=FINALIZE")
    assert {"media_created_at", "finalized_at", "posting_sent_at"} <= handles.keys()
    assert snap.media[post.extra["media_id"]].digest == media_digest(run.clip_id, MEDIA_SIZE)


async def test_the_spotlight_is_requested_once_after_processing_ended(new_run, snap):
    snap.processing_seconds = 0.05
    run = await new_run(poll_seconds=0.1)

    outcome = await run.until_settled()

    assert [o.outcome for o in run.outcomes] == [Outcome.IN_PROGRESS, Outcome.PUBLISHED]
    assert run.outcomes[0].reason_code == "MEDIA_PROCESSING"
    assert len(snap.calls_to("spotlights")) == 1
    [post] = snap.posts
    assert post.post_id == outcome.post_id
    assert post.created_at >= snap.media[post.extra["media_id"]].ready_at


async def test_a_spotlight_refused_as_still_processing_is_asked_again_and_posted_once(
        new_run, snap):
    snap.processing_seconds = 0.2
    run = await new_run(poll_seconds=0.04)

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    refused = run.outcomes[1:-1]
    assert refused and all(o.reason_code == "MEDIA_PROCESSING" for o in refused)
    assert all(o.outcome is Outcome.IN_PROGRESS for o in refused)
    assert len(snap.calls_to("spotlights")) == len(refused) + 1
    assert len(snap.media) == 1  # the same media each time
    assert len(snap.posts) == 1


async def test_a_clip_over_several_parts_is_decrypted_by_snap_into_the_clip(
        new_run, snap):
    run = await new_run(flow=functools.partial(publish, part_bytes=100_000))

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    [media] = snap.media.values()
    # 300,000 bytes pad to 300,016 encrypted: three full parts and a last one.
    assert media.part_sizes == [100_000, 100_000, 100_000, 16]
    assert len(snap.calls_to("add")) == 4
    assert media.digest == media_digest(run.clip_id, MEDIA_SIZE)
    assert (await entry(run))["handles"]["parts"] == 4
    assert len(snap.posts) == 1


async def test_a_posted_spotlight_is_submitted_then_live(new_run, snap, session):
    now = [1_000.0]
    snap.clock = lambda: now[0]
    snap.processing_seconds = 5.0
    run = await new_run()
    assert (await run.lease()).outcome is Outcome.IN_PROGRESS
    now[0] += 5.0
    outcome = await run.lease()

    async def review_status() -> str:
        async with session.get(f"{snap.url}/v1/spotlights/{outcome.post_id}",
                               headers={"Authorization": "Bearer token-1"}) as response:
            [found] = (await response.json())["spotlights"]
            return found["spotlight"]["status"]

    assert outcome.outcome is Outcome.PUBLISHED
    assert await review_status() == "SUBMITTED"
    now[0] += 5.0
    assert await review_status() == "LIVE"


# ---- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("fault, error_class, reason_code, retry_after", [
    (UNAUTHORIZED, ErrorClass.AUTH, "UNAUTHORIZED", None),
    (PERMISSION_DENIED, ErrorClass.AUTH, "AUTHORIZATION_PERMISSION_DENIED", None),
    (RATE_LIMITED, ErrorClass.TRANSIENT, "RATE_LIMIT_EXCEEDED", 1.0),
    (SERVER_ERROR, ErrorClass.TRANSIENT, "INTERNAL_SERVER_ERROR", None),
    (MEDIA_EXPIRED, ErrorClass.PERMANENT, "MEDIA_EXPIRED", None),
])
async def test_a_refused_spotlight_is_classed_and_recorded_as_not_posted(
        new_run, snap, fault, error_class, reason_code, retry_after):
    snap.faults.script("spotlights", fault)
    run = await new_run()

    outcome = await run.until_settled()

    assert (outcome.error_class, outcome.reason_code) == (error_class, reason_code)
    assert outcome.retry_after == retry_after
    assert snap.posts == []
    ledger = await entry(run)
    assert (ledger["step"], ledger["handles"]["refused_with"]) == (snapchat.NOT_POSTED,
                                                                   reason_code)


async def test_after_a_refused_spotlight_and_a_token_refresh_the_attempt_posts_once(
        new_run, snap):
    snap.faults.script("spotlights", UNAUTHORIZED)
    run = await new_run()
    assert (await run.until_settled()).error_class is ErrorClass.AUTH

    run.credentials = Credentials("token-2", PROFILE)  # what the runner gets from M10
    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    assert len(snap.media) == 2  # not_posted: the attempt started afresh
    [post] = snap.posts
    assert post.extra["media_id"] == (await entry(run))["handles"]["media_id"]


async def test_media_expired_before_its_spotlight_fails_for_good_without_a_post(
        new_run, snap):
    run = await new_run()
    assert (await run.lease()).outcome is Outcome.IN_PROGRESS
    snap.media_ttl_seconds = 0  # the 24 h have passed

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.PERMANENT,
                                                          "MEDIA_EXPIRED")
    assert snap.posts == []
    assert (await entry(run))["step"] == snapchat.NOT_POSTED


@pytest.mark.parametrize("step", ["media", "add", "finalize"])
async def test_a_refusal_before_the_spotlight_is_classed_and_the_next_lease_posts_once(
        new_run, snap, step):
    run = await after_a_transient_failure(new_run, snap, step, SERVER_ERROR,
                                          "INTERNAL_SERVER_ERROR")

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    assert len(snap.posts) == 1


async def test_a_call_without_a_token_is_an_auth_failure(new_run, snap):
    run = await new_run(access_token="")

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.AUTH, "UNAUTHORIZED")
    assert snap.media == {}


async def test_a_description_over_160_characters_fails_before_any_upload(new_run, snap):
    run = await new_run(caption={"text": "x" * 150, "hashtags": ["summer", "drop"]})

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.PERMANENT,
                                                          "description_too_long")
    assert snap.calls == []


async def test_a_clip_that_snap_cannot_decrypt_into_the_clip_fails_the_media(
        new_run, media):
    expecting_other_bytes = FakeMediaServer(size_bytes=MEDIA_SIZE + 1)  # never started
    async with FakeSnapchat(media=expecting_other_bytes) as snap:
        run = await new_run(api_url=snap.url)

        outcome = await run.lease()

        assert (outcome.error_class, outcome.reason_code) == (ErrorClass.PERMANENT,
                                                              MEDIA_UPLOAD_INVALID)
        assert snap.calls_to("spotlights") == [] and snap.posts == []


# ---- lost answers and crashes ------------------------------------------------------------


async def test_a_spotlight_whose_answer_was_lost_is_unknown_and_never_requested_again(
        new_run, snap):
    run = await after_a_transient_failure(new_run, snap, "spotlights", HANG_AFTER, "timeout",
                                          timeout_seconds=0.3)

    outcome = await run.lease()

    assert (outcome.outcome, outcome.reason_code) == (Outcome.UNKNOWN,
                                                      "spotlight_outcome_unknown")
    assert len(snap.posts) == 1
    assert len(snap.calls_to("spotlights")) == 1
    assert (await entry(run))["step"] == snapchat.POSTING


async def test_media_already_being_posted_is_unknown_and_never_reposted(new_run, snap):
    snap.faults.script("spotlights", MEDIA_POSTING_ALREADY_IN_PROGRESS)
    run = await new_run()

    outcome = await run.until_settled()
    again = await run.lease()

    assert (outcome.outcome, outcome.reason_code) == (Outcome.UNKNOWN,
                                                      MEDIA_POSTING_ALREADY_IN_PROGRESS)
    assert again.outcome is Outcome.UNKNOWN
    assert len(snap.calls_to("spotlights")) == 1
    assert len(snap.media) == 1


async def test_a_proxy_error_to_the_spotlight_call_leaves_it_unknown(new_run, snap):
    run = await after_a_transient_failure(new_run, snap, "spotlights", BAD_GATEWAY, "http_502")

    outcome = await run.lease()

    assert outcome.outcome is Outcome.UNKNOWN
    assert len(snap.calls_to("spotlights")) == 1


async def test_a_crash_after_media_was_created_makes_new_media_and_posts_once(
        new_run, snap):
    run = await new_run(flow=crashing_after(snapchat.MEDIA_CREATED))
    with pytest.raises(Crash):
        await run.lease()
    abandoned = (await entry(run))["handles"]["media_id"]

    run.flow = publish
    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    assert len(snap.media) == 2
    [post] = snap.posts
    assert post.extra["media_id"] != abandoned


async def test_a_crash_after_finalizing_posts_the_same_media_once(new_run, snap):
    run = await new_run(flow=crashing_after(snapchat.FINALIZED))
    with pytest.raises(Crash):
        await run.lease()

    run.flow = publish
    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    [only_media] = snap.media
    [post] = snap.posts
    assert post.extra["media_id"] == only_media


async def test_an_upload_that_hangs_is_abandoned_for_new_media_posted_once(new_run, snap):
    snap.faults.script("add", HANG)
    run = await new_run(timeout_seconds=0.3)

    stopped = await run.lease()
    outcome = await run.until_settled()

    assert stopped.reason_code == "timeout"
    assert outcome.outcome is Outcome.PUBLISHED
    assert len(snap.media) == 2 and len(snap.posts) == 1


# ---- the error mapping on its own ------------------------------------------------------


def snap_error(status: int, code: str | None = None, headers=None) -> Reply:
    body = b'{"request_status": "ERROR", "error_code": "%s", "debug_message": "m"}' % (
        code or "").encode() if code else b"<html>oops</html>"
    return Reply(status, headers or {}, body)


@pytest.mark.parametrize("reply, error_class, code, definite", [
    (snap_error(401, "UNAUTHORIZED"), ErrorClass.AUTH, "UNAUTHORIZED", True),
    (snap_error(403, "AUTHORIZATION_PERMISSION_DENIED"), ErrorClass.AUTH,
     "AUTHORIZATION_PERMISSION_DENIED", True),
    (snap_error(400, "MEDIA_EXPIRED"), ErrorClass.PERMANENT, "MEDIA_EXPIRED", True),
    (snap_error(429, "RATE_LIMIT_EXCEEDED"), ErrorClass.TRANSIENT, "RATE_LIMIT_EXCEEDED",
     True),
    (snap_error(503, "SERVICE_UNAVAILABLE"), ErrorClass.TRANSIENT, "SERVICE_UNAVAILABLE",
     True),
    (snap_error(504), ErrorClass.TRANSIENT, "http_504", False),
    (snap_error(400, "E1001"), ErrorClass.PERMANENT, "E1001", True),
])
def test_snaps_answers_map_to_a_class_and_their_own_code(reply, error_class, code, definite):
    error = snapchat.read_error(reply)

    assert (snapchat.error_class(error), error.code, error.definite) == (error_class, code,
                                                                         definite)


def test_a_rate_limit_keeps_its_retry_after():
    outcome = snapchat.failure_of(snapchat.read_error(
        snap_error(429, "RATE_LIMIT_EXCEEDED", {"Retry-After": "7"})))

    assert (outcome.outcome, outcome.retry_after) == (Outcome.TRANSIENT, 7.0)
