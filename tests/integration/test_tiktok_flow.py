"""The TikTok direct flow (app/platforms/tiktok.py) against FakeTikTok over real HTTP, with
the clip pulled from FakeMediaServer and the attempt ledger on real PostgreSQL. Every
scenario counts the posts at the fake: none may be made twice."""

from __future__ import annotations

import dataclasses

import pytest

from app.domain.model import ErrorClass, Outcome
from app.platforms import tiktok
from app.platforms.tiktok import publish
from fakes.media import media_digest
from fakes.platform_kit import HANG, HANG_AFTER
from fakes.tiktok import PROXY_ERROR_AFTER, FakeTikTok
from tests.direct_flows import flow_run

TOKEN, OPEN_ID, USERNAME = "act.token-1", "open-1", "maya"
MEDIA_SIZE = 300_000
#: A call the fake hangs on ends this fast (a loaded machine must still answer the others
#: in time: 0.15 s failed in CI beside the browser tests), and within the listing grace of
#: 10 polls (0.8 s): an init that timed out is then listed before it is given up.
TIMEOUT_SECONDS, POLL_SECONDS = 0.4, 0.08


@pytest.fixture
def fake_options():
    """What a test changes of FakeTikTok (parametrized or overridden per test)."""
    return {}


@pytest.fixture
async def fake(fake_options):
    async with FakeTikTok(**{"processing_seconds": 0.02, **fake_options}) as server:
        server.add_creator(TOKEN, OPEN_ID, username=USERNAME)
        yield server


@pytest.fixture
async def run(pool, session, fake, media):
    return await new_run(pool, session, fake, media)


async def new_run(pool, session, fake, media, **options):
    return await flow_run(pool, session, publish, "tiktok", fake.url, media,
                          account_id=OPEN_ID, access_token=TOKEN, poll_seconds=POLL_SECONDS,
                          timeout_seconds=TIMEOUT_SECONDS, **options)


def posted_caption(run) -> str:
    return f"{run.caption['text']} #ad #summer"


async def ledger_entry(run) -> dict:
    [entry] = await run.ledger()
    return entry


async def assert_recorded_not_posted(run, reason_code: str) -> None:
    """The ledger holds the attempt as not posted, with the reason it was refused for."""
    entry = await ledger_entry(run)
    assert entry["step"] == tiktok.NOT_POSTED
    assert entry["handles"]["reason_code"] == reason_code


class Crash(Exception):
    """The worker died here."""


class CrashingLedger:
    """The lease's ledger, except that the worker dies right after `step` is recorded."""

    def __init__(self, ledger, step: str) -> None:
        self.ledger, self.step = ledger, step

    @property
    def entry(self):
        return self.ledger.entry

    async def record(self, step: str, **handles):
        entry = await self.ledger.record(step, **handles)
        if step == self.step:
            raise Crash(step)
        return entry


def crashing_after(step: str):
    async def flow(attempt):
        return await publish(dataclasses.replace(
            attempt, ledger=CrashingLedger(attempt.ledger, step)))
    return flow


# ---- the happy path ----------------------------------------------------------------------


async def test_a_clip_is_posted_once_with_the_rendered_caption_and_the_ledger_holds_its_handles(
        run, fake):
    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    [post] = fake.posts
    assert post.text == posted_caption(run)
    assert post.account_id == OPEN_ID
    assert post.extra["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert post.extra["sha256"] == media_digest(run.clip_id, MEDIA_SIZE)  # pulled whole
    assert outcome.post_id == post.post_id
    assert outcome.post_url == f"https://www.tiktok.com/@{USERNAME}/video/{post.post_id}"
    entry = await ledger_entry(run)
    assert entry["step"] == tiktok.PUBLISHED
    assert entry["handles"]["publish_id"] == post.extra["publish_id"]
    assert entry["handles"]["title"] == posted_caption(run)
    assert entry["handles"]["post_id"] == post.post_id
    assert entry["handles"]["found_by"] == "status"
    assert entry["handles"]["init_sent_at"]
    assert len(fake.calls_to("init")) == 1


async def test_a_lease_after_publishing_answers_from_the_ledger_without_calling_tiktok(
        run, fake):
    first = await run.until_settled()
    calls = len(fake.calls)

    again = await run.lease()

    assert again == first
    assert len(fake.calls) == calls


@pytest.mark.parametrize("fake_options", [{"processing_seconds": 0.15}])
async def test_while_tiktok_pulls_the_flow_is_in_progress_and_init_is_sent_once(run, fake):
    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    waiting = run.outcomes[:-1]
    assert waiting and all(o.outcome is Outcome.IN_PROGRESS for o in waiting)
    assert {o.reason_code for o in waiting} == {"PROCESSING_DOWNLOAD"}
    assert len(fake.calls_to("init")) == 1
    assert len(fake.calls_to("status")) == len(run.outcomes)
    assert len(fake.posts) == 1


@pytest.mark.parametrize("fake_options", [{"moderation_seconds": 0.15}])
async def test_a_complete_publish_waits_for_moderation_to_get_the_public_post_id(run, fake):
    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    assert "awaiting_moderation" in {o.reason_code for o in run.outcomes}
    [post] = fake.posts
    assert outcome.post_id == post.post_id
    assert len(fake.calls_to("init")) == 1


async def test_privacy_falls_back_to_the_creators_first_option_when_public_is_not_offered(
        run, fake):
    fake.add_creator(TOKEN, OPEN_ID, username=USERNAME,
                     privacy_level_options=("FOLLOWER_OF_CREATOR", "SELF_ONLY"))

    await run.lease()

    [started] = fake.publishes
    assert started.privacy_level == "FOLLOWER_OF_CREATOR"


async def test_a_post_that_is_not_public_is_published_under_its_publish_id(run, fake):
    fake.add_creator(TOKEN, OPEN_ID, username=USERNAME,
                     privacy_level_options=("FOLLOWER_OF_CREATOR", "SELF_ONLY"))

    outcome = await run.until_settled()

    # it never gets a public id: waiting for one would leave it publishing for good
    [started] = fake.publishes
    assert (outcome.outcome, outcome.post_id, outcome.post_url) == (
        Outcome.PUBLISHED, started.publish_id, None)
    assert len(fake.posts) == 1 and len(fake.calls_to("init")) == 1
    [entry] = await run.ledger()
    assert (entry["step"], entry["handles"]["found_by"]) == (
        "published", "status_without_public_id")


@pytest.mark.parametrize("fake_options", [{"moderation_seconds": 600}])
async def test_a_public_post_whose_moderation_outlasts_the_wait_is_published_under_its_publish_id(
        run, fake, monkeypatch):
    monkeypatch.setattr(tiktok, "MODERATION_WAIT_POLLS", 5)

    outcome = await run.until_settled()

    [started] = fake.publishes
    assert (outcome.outcome, outcome.post_id) == (Outcome.PUBLISHED, started.publish_id)
    assert "awaiting_moderation" in {o.reason_code for o in run.outcomes}
    assert len(fake.posts) == 1 and len(fake.calls_to("init")) == 1


# ---- error classes -----------------------------------------------------------------------


@pytest.mark.parametrize("code, error_class", [
    ("invalid_param", ErrorClass.PERMANENT),
    ("invalid_params", ErrorClass.PERMANENT),
    ("invalid_file_upload", ErrorClass.MEDIA),
    ("access_token_invalid", ErrorClass.AUTH),
    ("scope_not_authorized", ErrorClass.AUTH),
    ("scope_permission_missed", ErrorClass.AUTH),
    ("spam_risk_too_many_posts", ErrorClass.QUOTA),
    ("reached_active_user_cap", ErrorClass.QUOTA),
    ("spam_risk_user_banned_from_posting", ErrorClass.POLICY),
    ("unaudited_client_can_only_post_to_private_accounts", ErrorClass.POLICY),
    ("url_ownership_unverified", ErrorClass.PERMANENT),
    ("privacy_level_option_mismatch", ErrorClass.PERMANENT),
    ("rate_limit_exceeded", ErrorClass.TRANSIENT),
    ("internal_error", ErrorClass.TRANSIENT),
])
async def test_an_error_answer_to_init_is_classed_and_recorded_as_not_posted(
        run, fake, code, error_class):
    fake.faults.script("init", code)

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (error_class, code)
    assert fake.posts == [] and fake.publishes == []
    await assert_recorded_not_posted(run, code)


@pytest.mark.parametrize("code, retry_after", [
    pytest.param("rate_limit_exceeded", 30,  # the fake's Retry-After
                 id="rate_limit_honours_retry_after"),
    pytest.param("spam_risk_too_many_posts", tiktok.QUOTA_RECHECK_SECONDS,
                 id="creators_post_cap_waits_an_hour"),
])
async def test_an_init_refused_for_now_spends_no_attempt_and_says_how_long_to_wait(
        run, fake, code, retry_after):
    fake.faults.script("init", code)

    outcome = await run.lease()

    assert outcome.outcome is Outcome.TRANSIENT  # no attempt spent
    assert outcome.retry_after == retry_after


@pytest.mark.parametrize("code, error_class", [
    ("spam_risk_too_many_posts", ErrorClass.QUOTA),
    ("spam_risk_user_banned_from_posting", ErrorClass.POLICY),
    ("reached_active_user_cap", ErrorClass.QUOTA),
])
async def test_a_refusal_creator_info_answers_with_http_200_stops_before_init(
        run, fake, code, error_class):
    fake.faults.script("creator_info", code)

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (error_class, code)
    assert fake.calls_to("init") == []
    assert (await ledger_entry(run))["step"] == tiktok.STARTED


@pytest.mark.parametrize("fake_options", [{"daily_post_cap": 1}])
async def test_the_second_post_over_the_creators_daily_cap_is_quota_and_never_inits(
        pool, session, fake, media, run):
    assert (await run.until_settled()).outcome is Outcome.PUBLISHED
    second = await new_run(pool, session, fake, media)

    outcome = await second.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.QUOTA,
                                                          "spam_risk_too_many_posts")
    assert len(fake.calls_to("init")) == 1 and len(fake.posts) == 1


@pytest.mark.parametrize("fake_options", [{"init_calls_per_minute": 1}])
async def test_inits_over_the_per_token_rate_limit_are_transient_until_the_minute_ends(
        pool, session, fake, media, run):
    await run.lease()
    second = await new_run(pool, session, fake, media)

    outcome = await second.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.TRANSIENT,
                                                          "rate_limit_exceeded")
    assert 0 < outcome.retry_after <= 60
    assert len(fake.publishes) == 1


async def test_an_unknown_token_is_an_auth_failure(pool, session, fake, media):
    run = await new_run(pool, session, fake, media)
    fake.revoke(TOKEN)

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.AUTH,
                                                          "access_token_invalid")
    assert fake.calls_to("init") == []


async def test_a_clip_longer_than_the_creator_may_post_is_refused_before_init(run, fake):
    fake.add_creator(TOKEN, OPEN_ID, username=USERNAME, max_video_post_duration_sec=15)

    outcome = await run.lease()  # the fake M06 clip lasts 30 s

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.MEDIA,
                                                          "duration_check_failed")
    assert fake.calls_to("init") == []


@pytest.mark.parametrize("fake_options", [{"verified_url_prefixes": ("https://cdn.example/",)}])
async def test_a_video_url_outside_the_verified_prefixes_is_permanent(run, fake):
    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.PERMANENT,
                                                          "url_ownership_unverified")
    assert fake.posts == []


@pytest.mark.parametrize("fail_reason, error_class", [
    ("file_format_check_failed", ErrorClass.MEDIA),
    ("duration_check_failed", ErrorClass.MEDIA),
    ("frame_rate_check_failed", ErrorClass.MEDIA),
    ("picture_size_check_failed", ErrorClass.MEDIA),
    ("internal", ErrorClass.TRANSIENT),
    ("video_pull_failed", ErrorClass.TRANSIENT),
    ("publish_cancelled", ErrorClass.PERMANENT),
    ("auth_removed", ErrorClass.AUTH),
    ("spam_risk_too_many_posts", ErrorClass.QUOTA),
    ("spam_risk_user_banned_from_posting", ErrorClass.POLICY),
    ("spam_risk_text", ErrorClass.POLICY),
    ("spam_risk", ErrorClass.POLICY),
])
async def test_a_failed_publish_is_classed_by_its_fail_reason_and_posted_nothing(
        run, fake, fail_reason, error_class):
    fake.faults.script("processing", fail_reason)

    outcome = await run.until_settled()

    assert (outcome.error_class, outcome.reason_code) == (error_class, fail_reason)
    assert fake.posts == []
    await assert_recorded_not_posted(run, fail_reason)


async def test_an_unreachable_video_url_fails_the_publish_with_video_pull_failed(
        run, fake, media):
    await media.stop()  # TikTok's pull is refused

    outcome = await run.until_settled()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.TRANSIENT,
                                                          "video_pull_failed")
    assert fake.posts == []


async def test_after_a_failed_pull_the_same_key_starts_afresh_and_posts_once(run, fake):
    fake.faults.script("processing", "video_pull_failed")
    assert (await run.until_settled()).reason_code == "video_pull_failed"

    outcome = await run.until_settled()  # the same key attempt, retried

    assert outcome.outcome is Outcome.PUBLISHED
    assert len(fake.calls_to("init")) == 2
    assert [p.post_id for p in fake.posts] == [outcome.post_id]
    assert (await ledger_entry(run))["step"] == tiktok.PUBLISHED


async def test_a_refused_status_fetch_after_init_is_unknown_not_a_failure(run, fake):
    fake.faults.script("status", "invalid_param")

    outcome = await run.lease()

    assert (outcome.outcome, outcome.reason_code) == (Outcome.UNKNOWN, "invalid_param")
    assert (await ledger_entry(run))["step"] == tiktok.INIT_SENT


async def test_an_auth_error_after_init_is_safe_to_run_again_and_never_inits_twice(
        run, fake):
    fake.faults.script("status", "access_token_invalid")
    refused = await run.lease()
    assert (refused.error_class, refused.reason_code) == (ErrorClass.AUTH,
                                                          "access_token_invalid")

    outcome = await run.until_settled()  # the runner's rerun, after the refresh

    assert outcome.outcome is Outcome.PUBLISHED
    assert len(fake.calls_to("init")) == 1 and len(fake.posts) == 1


# ---- crashes and lost answers ------------------------------------------------------------


async def test_a_lost_answer_to_init_is_reconciled_through_video_list_to_the_one_post(
        run, fake):
    fake.faults.script("init", HANG_AFTER)

    lost = await run.lease()
    assert (lost.outcome, lost.reason_code) == (Outcome.TRANSIENT, "timeout")
    assert (await ledger_entry(run))["step"] == tiktok.INIT_SENDING

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    [post] = fake.posts
    assert outcome.post_id == post.post_id
    assert post.text == posted_caption(run)
    assert len(fake.calls_to("init")) == 1
    entry = await ledger_entry(run)
    assert entry["handles"]["found_by"] == "video_list"
    assert entry["handles"]["publish_id"] is None


async def test_an_init_answered_without_tiktoks_envelope_is_not_taken_as_nothing_posted(
        run, fake):
    fake.faults.script("init", PROXY_ERROR_AFTER)  # TikTok started; a proxy answered 502

    refused = await run.lease()
    assert (refused.outcome, refused.reason_code) == (Outcome.TRANSIENT, "http_502")
    assert (await ledger_entry(run))["step"] == tiktok.INIT_SENDING

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    assert [p.post_id for p in fake.posts] == [outcome.post_id]
    assert len(fake.calls_to("init")) == 1


async def test_an_init_that_never_reached_tiktok_ends_unknown_after_the_grace_and_never_inits_again(
        run, fake):
    fake.faults.script("init", HANG)
    assert (await run.lease()).reason_code == "timeout"

    outcome = await run.until_settled()

    assert (outcome.outcome, outcome.reason_code) == (Outcome.UNKNOWN, "init_outcome_unknown")
    assert "awaiting_listing" in {o.reason_code for o in run.outcomes}
    assert fake.posts == []
    assert len(fake.calls_to("init")) == 1
    assert fake.calls_to("list")


async def test_a_crash_after_the_publish_id_was_stored_polls_status_and_never_inits_again(
        run, fake):
    run.flow = crashing_after(tiktok.INIT_SENT)
    with pytest.raises(Crash):
        await run.lease()
    run.flow = publish

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    assert len(fake.calls_to("init")) == 1
    [post] = fake.posts
    assert outcome.post_id == post.post_id
    assert fake.calls_to("list") == []


async def test_a_crash_just_before_init_went_out_is_unknown_rather_than_posting_twice(
        run, fake):
    run.flow = crashing_after(tiktok.INIT_SENDING)
    with pytest.raises(Crash):
        await run.lease()
    run.flow = publish

    outcome = await run.until_settled()

    # The ledger cannot tell "never sent" from "sent, answer lost": never init then.
    assert (outcome.outcome, outcome.reason_code) == (Outcome.UNKNOWN, "init_outcome_unknown")
    assert fake.calls_to("init") == [] and fake.posts == []


async def test_reconciliation_pages_video_list_past_newer_videos(run, fake):
    fake.faults.script("init", HANG_AFTER)
    await run.lease()
    [ours] = fake.posts  # posted while the answer hung
    for n in range(25):  # posted since, from the TikTok app: page one is all theirs
        fake.seed_video(OPEN_ID, f"later video {n}")
    lists_before = len(fake.calls_to("list"))

    outcome = await run.until_settled()

    assert outcome.post_id == ours.post_id
    assert len(fake.calls_to("list")) - lists_before >= 2
    assert len(fake.calls_to("init")) == 1


async def test_two_listed_videos_matching_the_lost_init_leave_the_outcome_unknown(run, fake):
    fake.faults.script("init", HANG_AFTER)
    await run.lease()
    fake.seed_video(OPEN_ID, posted_caption(run))  # the same caption, posted by hand

    outcome = await run.until_settled()

    assert (outcome.outcome, outcome.reason_code) == (Outcome.UNKNOWN, "init_outcome_ambiguous")
    assert len(fake.calls_to("init")) == 1


# ---- the mapping, without I/O ------------------------------------------------------------


@pytest.mark.parametrize("http_status, code, error_class", [
    (403, "spam_risk_too_many_posts", ErrorClass.QUOTA),
    (200, "spam_risk_user_banned_from_posting", ErrorClass.POLICY),  # creator_info's way
    (401, "token_expired_someday", ErrorClass.AUTH),
    (429, "slow_down", ErrorClass.TRANSIENT),
    (503, None, ErrorClass.TRANSIENT),
    (403, "token_not_authorized_for_specified_publish_id", ErrorClass.PERMANENT),
])
def test_error_class_is_by_code_then_by_http_status(http_status, code, error_class):
    assert tiktok.error_class(http_status, code) is error_class


def test_an_unknown_fail_reason_is_permanent():
    assert tiktok.fail_reason_class("something_new") is ErrorClass.PERMANENT


def test_after_init_only_failures_that_keep_the_key_stay_failures():
    quota = tiktok.classed_failure(ErrorClass.QUOTA, "spam_risk_too_many_posts", "cap")
    permanent = tiktok.classed_failure(ErrorClass.PERMANENT, "invalid_param", "bad")

    assert tiktok.after_point_of_no_return(quota) == quota
    assert tiktok.after_point_of_no_return(permanent).outcome is Outcome.UNKNOWN


def test_a_listed_video_matches_on_title_and_a_create_time_not_before_the_init():
    from datetime import datetime, timezone
    sent = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    at = sent.timestamp()
    videos = [{"id": "1", "title": "Drop #ad", "create_time": at + 5},
              {"id": "2", "video_description": "Drop #ad", "create_time": at + 9},
              {"id": "3", "title": "Drop #ad", "create_time": at - 600},
              {"id": "4", "title": "Other", "create_time": at + 5}]

    matches = tiktok.matching_videos(videos, "Drop #ad", sent)

    assert [v["id"] for v in matches] == ["1", "2"]
