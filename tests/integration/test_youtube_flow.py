"""The YouTube flow (app/platforms/youtube.py) against FakeYouTube and the fake M06 over real
HTTP, with its ledger on real PostgreSQL: one video per (item, key attempt), whatever
crashes, cut connections, lost answers and expired sessions come between leases."""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from datetime import datetime, timezone

import aiohttp
import pytest

from app.domain.model import ErrorClass, Outcome
from app.neighbours import Media
from app.platforms import youtube
from app.platforms.direct import run_flow
from fakes.media import FakeMediaServer, media_digest
from fakes.platform_kit import HANG, HANG_AFTER
from fakes.youtube import DropAfter, ErrorAfter, FakeYouTube
from tests.direct_flows import FlowRun, flow_run

MEDIA_SIZE = 300_000
TOKEN = "token-1"


@pytest.fixture
async def fake():
    async with FakeYouTube(processing_seconds=0.0) as server:
        yield server


@pytest.fixture
def new_run(pool, session, fake, media):
    async def make(**options) -> FlowRun:
        options = {"timeout_seconds": 0.3, "poll_seconds": 0.02, **options}
        return await flow_run(pool, session, youtube.publish, "youtube", fake.url, media,
                              access_token=TOKEN, **options)
    return make


def videos_of(fake: FakeYouTube, run: FlowRun) -> list:
    return fake.posts_with(run.caption["text"])


async def only_entry(run: FlowRun) -> dict:
    [entry] = await run.ledger()
    return entry


class Crash(Exception):
    """A worker dying between two ledger writes."""


async def lease_crashing_before(run: FlowRun, step: str) -> None:
    """One lease whose worker dies just before it would record `step`."""
    attempt = await run.attempt()
    record = attempt.ledger.record

    async def record_or_crash(name: str, **handles):
        if name == step:
            raise Crash(name)
        return await record(name, **handles)

    attempt.ledger.record = record_or_crash
    with pytest.raises(Crash):
        await run_flow(youtube.publish, attempt)


# --- happy path --------------------------------------------------------------------------

async def test_publishes_one_video_titled_by_the_caption_with_the_caption_as_description(
        new_run, fake, media):
    run = await new_run()

    outcome = await run.lease()

    assert outcome.outcome is Outcome.PUBLISHED
    [video] = videos_of(fake, run)
    assert outcome.post_id == video.post_id
    assert outcome.post_url == f"https://www.youtube.com/watch?v={video.post_id}"
    assert video.text == run.caption["text"]
    assert video.extra["description"] == f"{run.caption['text']} #ad #summer"
    assert video.extra["sha256"] == media_digest(run.clip_id, MEDIA_SIZE)
    assert video.account_id == fake.channel_for(TOKEN)
    entry = await only_entry(run)
    assert entry["step"] == youtube.UPLOADED
    assert entry["handles"]["video_id"] == video.post_id
    assert entry["handles"]["total"] == MEDIA_SIZE
    assert entry["handles"]["session_uri"].startswith(fake.url + youtube.UPLOAD_PATH)
    assert [c.step for c in fake.calls] == ["insert", "upload", "videos"]


async def test_asks_the_media_url_for_the_size_when_m06_did_not_say_it(
        pool, session, fake):
    async with FakeMediaServer(size_bytes=MEDIA_SIZE) as media:
        run = await flow_run(pool, session, youtube.publish, "youtube", fake.url, media,
                             access_token=TOKEN)
        attempt = await run.attempt()
        attempt.media = Media(url=attempt.media.url, duration_seconds=30.0, size_bytes=None,
                              content_type="video/mp4")

        outcome = await run_flow(youtube.publish, attempt)

    assert outcome.outcome is Outcome.PUBLISHED
    [video] = videos_of(fake, run)
    assert video.extra["size"] == MEDIA_SIZE
    assert video.extra["sha256"] == media_digest(run.clip_id, MEDIA_SIZE)


async def test_waits_for_processing_without_uploading_again(new_run, fake):
    fake.processing_seconds = 0.3
    run = await new_run()

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.PUBLISHED
    [video] = videos_of(fake, run)
    assert time.time() >= video.created_at + fake.processing_seconds
    *waiting, _ = run.outcomes
    assert waiting and all(o.outcome is Outcome.IN_PROGRESS and o.reason_code == "processing"
                           and o.retry_after == run.poll_seconds for o in waiting)
    assert len(fake.calls_to("insert")) == len(fake.calls_to("upload")) == 1
    assert len(fake.calls_to("videos")) == len(run.outcomes)
    assert fake.calls_to("probe") == []


async def test_uploads_by_streaming_never_holding_the_whole_file(pool, session, fake):
    size = 8 << 20
    async with FakeMediaServer(size_bytes=size) as big_media:
        run = await flow_run(pool, session, youtube.publish, "youtube", fake.url, big_media,
                             access_token=TOKEN, timeout_seconds=10.0)
        tracemalloc.start()
        try:
            outcome = await run.lease()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert outcome.outcome is Outcome.PUBLISHED
    [video] = videos_of(fake, run)
    assert video.extra["sha256"] == media_digest(run.clip_id, size)
    assert peak < size // 4, f"{peak} bytes traced at the peak for a {size}-byte file"


# --- error classes -----------------------------------------------------------------------

@pytest.mark.parametrize("reason, error_class", [
    ("quotaExceeded", ErrorClass.QUOTA),
    ("uploadLimitExceeded", ErrorClass.QUOTA),
    ("rateLimitExceeded", ErrorClass.TRANSIENT),
    ("userRateLimitExceeded", ErrorClass.TRANSIENT),
    ("backendError", ErrorClass.TRANSIENT),
    ("authError", ErrorClass.AUTH),
    ("forbidden", ErrorClass.AUTH),
    ("insufficientPermissions", ErrorClass.AUTH),
    ("authenticatedUserAccountSuspended", ErrorClass.POLICY),
    ("invalidTitle", ErrorClass.PERMANENT),
    ("forbiddenPrivacySetting", ErrorClass.PERMANENT),
])
async def test_an_error_at_the_session_start_is_classed_and_posts_nothing(
        new_run, fake, reason, error_class):
    fake.faults.script("insert", reason)
    run = await new_run()

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (error_class, reason)
    if error_class is ErrorClass.QUOTA:  # until the next midnight Pacific Time
        expected = youtube.seconds_until_quota_reset(datetime.now(timezone.utc))
        assert outcome.retry_after == pytest.approx(expected, abs=5)
    elif error_class is ErrorClass.TRANSIENT:
        assert outcome.retry_after == 1.0  # the fake's Retry-After
    else:
        assert outcome.retry_after is None
    assert videos_of(fake, run) == []
    assert (await only_entry(run))["step"] == youtube.STARTED


async def test_a_missing_token_is_an_auth_error(pool, session, fake, media):
    run = await flow_run(pool, session, youtube.publish, "youtube", fake.url, media,
                         access_token="")

    outcome = await run.lease()

    assert (outcome.error_class, outcome.reason_code) == (ErrorClass.AUTH, "authError")
    assert fake.posts == []


@pytest.mark.parametrize("end, error_class", [("codec", ErrorClass.MEDIA),
                                              ("duplicate", ErrorClass.POLICY)])
async def test_a_video_whose_processing_failed_is_classed_and_recorded_not_posted(
        new_run, fake, end, error_class):
    fake.faults.script("processing", end)
    run = await new_run()

    outcome = await run.until_settled()

    assert outcome.outcome is Outcome.REJECTED
    assert (outcome.error_class, outcome.reason_code) == (error_class, end)
    assert (await only_entry(run))["step"] == youtube.NOT_POSTED


async def test_an_auth_error_after_the_upload_is_rerun_without_uploading_again(new_run, fake):
    fake.faults.script("videos", "authError")
    run = await new_run()

    refused = await run.lease()
    rerun = await run.lease()  # what the runner does after refreshing the token

    assert (refused.error_class, refused.reason_code) == (ErrorClass.AUTH, "authError")
    assert rerun.outcome is Outcome.PUBLISHED
    assert [v.post_id for v in videos_of(fake, run)] == [rerun.post_id]
    assert len(fake.calls_to("upload")) == 1


# --- crashes and reconciliation ------------------------------------------------------------

@pytest.mark.parametrize("fault, reason_code", [
    (DropAfter(100_000), "connection_error"),
    (ErrorAfter(100_000, "backendError"), "backendError"),
])
async def test_a_cut_upload_is_resumed_with_only_the_missing_bytes(
        new_run, fake, fault, reason_code):
    fake.faults.script("upload", fault)
    run = await new_run()

    cut = await run.lease()
    assert (cut.error_class, cut.reason_code) == (ErrorClass.TRANSIENT, reason_code)
    assert (await only_entry(run))["step"] == youtube.UPLOADING
    assert videos_of(fake, run) == []
    resumed = await run.lease()

    assert resumed.outcome is Outcome.PUBLISHED
    [video] = videos_of(fake, run)
    assert video.extra["sha256"] == media_digest(run.clip_id, MEDIA_SIZE)
    assert [(p.start, p.kept) for p in fake.puts] == [(0, 100_000), (100_000, MEDIA_SIZE - 100_000)]
    assert len(fake.calls_to("probe")) == 1
    assert len(fake.calls_to("insert")) == 1


async def test_a_lost_answer_to_the_session_start_just_starts_another_session(new_run, fake):
    fake.faults.script("insert", HANG)
    run = await new_run()

    lost = await run.lease()
    outcome = await run.lease()

    assert (lost.error_class, lost.reason_code) == (ErrorClass.TRANSIENT, "timeout")
    assert outcome.outcome is Outcome.PUBLISHED
    assert len(videos_of(fake, run)) == 1
    assert len(fake.calls_to("insert")) == 2


async def test_a_lost_answer_to_the_last_byte_is_found_by_the_resume_probe(new_run, fake):
    fake.faults.script("upload", HANG_AFTER)
    run = await new_run()

    lost = await run.lease()
    assert (lost.error_class, lost.reason_code) == (ErrorClass.TRANSIENT, "timeout")
    assert (await only_entry(run))["step"] == youtube.UPLOADING
    found = await run.lease()

    assert found.outcome is Outcome.PUBLISHED
    [video] = videos_of(fake, run)
    assert found.post_id == video.post_id
    assert len(fake.calls_to("upload")) == 1
    assert len(fake.calls_to("probe")) == 1
    assert (await only_entry(run))["handles"]["video_id"] == video.post_id


async def test_a_session_expired_after_the_video_was_made_finds_it_in_the_uploads(
        new_run, fake):
    earlier = await new_run(caption={"text": "An earlier video", "hashtags": []})
    assert (await earlier.lease()).outcome is Outcome.PUBLISHED  # same channel, another title
    fake.faults.script("upload", HANG_AFTER)
    run = await new_run()
    await run.lease()
    fake.expire_sessions()

    outcome = await run.lease()

    assert outcome.outcome is Outcome.PUBLISHED
    [video] = videos_of(fake, run)
    assert outcome.post_id == video.post_id
    assert len(fake.posts) == 2
    assert len(fake.calls_to("upload")) == 2  # one per item
    assert len(fake.calls_to("playlist_items")) == 1


@pytest.mark.parametrize("refusal, outcome_then", [
    ("backendError", Outcome.TRANSIENT),   # looked for again on the next lease
    ("playlistNotFound", Outcome.UNKNOWN),  # never a failure: the video may exist
])
async def test_a_refused_uploads_lookup_never_fails_an_item_whose_video_may_exist(
        new_run, fake, refusal, outcome_then):
    fake.faults.script("upload", HANG_AFTER)
    fake.faults.script("playlist_items", refusal)
    run = await new_run()
    await run.lease()
    fake.expire_sessions()

    refused = await run.lease()

    assert (refused.outcome, refused.reason_code) == (outcome_then, refusal)
    assert len(fake.posts) == 1
    assert (await only_entry(run))["step"] == youtube.UPLOADING


async def test_a_session_expired_before_any_put_is_replaced_by_a_new_one(new_run, fake):
    run = await new_run()
    await lease_crashing_before(run, youtube.UPLOADING)
    first_session = (await only_entry(run))["handles"]["session_uri"]
    fake.expire_sessions()

    outcome = await run.lease()

    assert outcome.outcome is Outcome.PUBLISHED
    [video] = videos_of(fake, run)
    assert video.extra["sha256"] == media_digest(run.clip_id, MEDIA_SIZE)
    assert len(fake.calls_to("insert")) == 2
    assert len(fake.calls_to("upload")) == 1
    entry = await only_entry(run)
    assert entry["step"] == youtube.UPLOADED
    assert entry["handles"]["session_uri"] != first_session


async def test_a_session_expired_mid_upload_without_a_video_is_unknown_and_never_retried(
        new_run, fake):
    fake.faults.script("upload", DropAfter(100_000))
    run = await new_run()
    await run.lease()
    fake.expire_sessions()

    outcome = await run.lease()
    again = await run.lease()

    assert outcome.outcome is Outcome.UNKNOWN
    assert outcome.reason_code == "session_expired_outcome_unknown"
    assert again.outcome is Outcome.UNKNOWN
    assert fake.posts == []
    assert len(fake.calls_to("insert")) == 1
    assert len(fake.calls_to("upload")) == 1


async def test_the_fake_stores_nothing_of_a_block_that_does_not_continue_the_upload(
        fake, session):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with session.post(fake.url + youtube.UPLOAD_PATH,
                            params={"uploadType": "resumable", "part": "snippet,status"},
                            headers={**auth, "X-Upload-Content-Length": "10",
                                     "X-Upload-Content-Type": "video/mp4"},
                            json={"snippet": {"title": "t"}}) as started:
        session_uri = started.headers["Location"]

    async def put(content_range: str, data: bytes = b"") -> aiohttp.ClientResponse:
        async with session.put(session_uri, data=data, allow_redirects=False,
                               headers={**auth, "Content-Range": content_range}) as reply:
            await reply.read()
            return reply

    nothing = await put("bytes */10")
    first = await put("bytes 0-3/10", b"abcd")
    gap = await put("bytes 6-9/10", b"ghij")
    last = await put("bytes 4-9/10", b"efghij")

    assert (nothing.status, nothing.headers.get("Range")) == (308, None)
    assert (first.status, first.headers["Range"]) == (308, "bytes=0-3")
    assert (gap.status, gap.headers["Range"]) == (308, "bytes=0-3")
    assert last.status == 201
    [video] = fake.posts
    assert video.extra["sha256"] == hashlib.sha256(b"abcdefghij").hexdigest()


# --- pure mapping --------------------------------------------------------------------------

@pytest.mark.parametrize("caption, title", [
    ({"text": "Hello", "title": "Launch day"}, "Launch day"),
    ({"text": "x" * 150}, "x" * 100),
    ({"text": "<b>Bold</b> move"}, "bBold/b move"),
    ({"text": "  ", "hashtags": ["ad"]}, "Untitled"),
    ({"text": "<>"}, "Untitled"),
])
def test_the_title_is_the_caption_title_or_its_text_within_youtube_rules(caption, title):
    assert youtube.video_title(caption) == title


@pytest.mark.parametrize("now, seconds", [
    (datetime(2026, 7, 1, 6, 59, tzinfo=timezone.utc), 60),        # 23:59 PDT
    (datetime(2026, 3, 8, 8, 0, tzinfo=timezone.utc), 23 * 3600),   # 00:00 PST, 23-hour day
    (datetime(2026, 11, 1, 7, 0, tzinfo=timezone.utc), 25 * 3600),  # 00:00 PDT, 25-hour day
])
def test_quota_resets_at_the_next_midnight_pacific_time(now, seconds):
    assert youtube.seconds_until_quota_reset(now) == seconds


def test_an_error_without_a_reason_is_classed_by_its_status():
    now = datetime.now(timezone.utc)
    server = youtube.classify_error(502, None, 3.0, now)
    refused = youtube.classify_error(401, {"error": {"message": "nope"}}, None, now)

    assert (server.error_class, server.reason_code, server.retry_after) == \
        (ErrorClass.TRANSIENT, "http_502", 3.0)
    assert (refused.error_class, refused.reason_code) == (ErrorClass.AUTH, "http_401")
