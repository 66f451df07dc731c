"""A claimed clip carried through every route to a published outcome, on real servers."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from app.domain.quota import PACIFIC
from app.topics import FAILED, PUBLISHED
from tests.clients import claim_all_and_wait, claim_and_wait
from tests.factories import claimed_event, new_claimed_event, unique
from fakes.gateway import Answer
from tests.support import event_schema_errors, eventually, openapi_schema_errors, token

ENVELOPE_FIELDS = {"event_id", "event_type", "event_version", "occurred_at", "source",
                   "partition_key", "trace_id", "data"}


async def claim_item(topics, api, pool, with_campaign: bool = False):
    """A claim of a clip M09 knows (in `clips`), once the service shows its item:
    (item id, clip id, influencer, campaign, the item)."""
    item_id, clip_id, influencer = unique("claim"), unique("clip"), unique("influencer")
    campaign = unique("campaign")
    await pool.execute("INSERT INTO clips (id, campaign_id) VALUES ($1, $2)", clip_id, campaign)
    _, _, item = await claim_and_wait(topics, api, claimed_event(
        item_id, clip_id, influencer, campaign if with_campaign else None))
    return item_id, clip_id, influencer, campaign, item


async def test_a_claim_goes_through_overlays_schedule_publish_failure_retry_and_download(
        api, topics, pool, fake_platforms):
    item_id, clip_id, influencer, campaign, item = await claim_item(topics, api, pool)

    assert item["status"] == "claimed"
    assert item["campaign_id"] == campaign  # resolved from M09's clips
    claimed_at = datetime.fromisoformat(item["claimed_at"])
    assert datetime.fromisoformat(item["claim_expires_at"]) - claimed_at == timedelta(hours=24)

    code, item = await api.post(item_id, "overlays", influencer,
                                {"type": "intro", "duration_seconds": 2.5})
    assert code == 200, item
    assert item["overlays"] == [{"type": "intro", "duration_seconds": 2.5}]

    paris = ZoneInfo("Europe/Paris")
    local = (datetime.now(paris) + timedelta(hours=2)).replace(microsecond=0, tzinfo=None)
    code, item = await api.post(item_id, "schedule", influencer, {
        "platforms": ["tiktok", "instagram", "youtube"],
        "scheduled_at": local.isoformat(), "timezone": "Europe/Paris",
        "caption": {"text": "Summer drop", "hashtags": ["ad", "summer"]}})
    assert code == 200, item
    assert item["status"] == "scheduled" and item["timezone"] == "Europe/Paris"
    assert datetime.fromisoformat(item["scheduled_at"]) == local.replace(tzinfo=paris)

    later = local + timedelta(hours=1)
    code, item = await api.post(item_id, "reschedule", influencer,
                                {"scheduled_at": later.isoformat(), "timezone": "Europe/Paris"})
    assert code == 200, item
    assert datetime.fromisoformat(item["scheduled_at"]) == later.replace(tzinfo=paris)
    assert datetime.fromisoformat(item["scheduled_at_local"]).replace(tzinfo=None) == later

    code, preview = await api.get(item_id, influencer, "preview")
    assert code == 200, preview
    assert [o["type"] for o in preview["overlays"]] == ["intro"]
    assert preview["total_duration_seconds"] == preview["clip"]["duration_seconds"] + 2.5
    assert {c["platform"] for c in preview["captions"]} == {"tiktok", "instagram", "youtube"}
    assert preview["captions"][0]["rendered"] == "Summer drop #ad #summer"
    assert preview["schedule"]["timezone"] == "Europe/Paris"
    assert openapi_schema_errors("Preview", preview) == []

    fake_platforms.script("instagram", Answer.status(400, message="caption rejected"))
    code, item = await api.post(item_id, "publish-multi", influencer,
                                {"platforms": ["tiktok", "instagram", "youtube"]})
    assert code == 202, item
    item = await api.wait_for_item(item_id, influencer, status="failed")
    assert item["publication"] == "partially_published"  # tiktok and youtube are out
    by_platform = {p["platform"]: p for p in item["platform_status"]}
    assert by_platform["instagram"]["status"] == "failed"
    assert "caption rejected" in by_platform["instagram"]["error"]
    assert (by_platform["instagram"]["error_class"], by_platform["instagram"]["reason_code"]) \
        == ("permanent", "http_400")
    assert by_platform["tiktok"]["status"] == by_platform["youtube"]["status"] == "published"

    code, item = await api.post(item_id, "retry", influencer)
    assert code == 202, item
    item = await api.wait_for_item(item_id, influencer, status="published")
    assert {p["status"] for p in item["platform_status"]} == {"published"}
    assert item["publication"] == "published"
    assert all(p["post_id"] for p in item["platform_status"])
    assert openapi_schema_errors("Item", item) == []

    # the failed platform alone was posted again; the others exactly once
    assert len(fake_platforms.calls_for(item_id, "instagram")) == 2
    assert len(fake_platforms.posts_for(item_id, "instagram")) == 1
    for platform in ("tiktok", "youtube"):
        assert len(fake_platforms.calls_for(item_id, platform)) == 1
        assert len(fake_platforms.posts_for(item_id, platform)) == 1

    published = await eventually(
        lambda: topics.records_for(PUBLISHED, item_id), timeout=20,
        what="the published event")
    assert len({e["event_id"] for e in published}) == 1
    event = published[0]
    assert set(event) >= ENVELOPE_FIELDS
    assert event["event_type"] == "distribution.published" and event["source"] == "M31"
    assert event["partition_key"] == item_id and event["data"]["item_id"] == item_id
    assert {p["platform"] for p in event["data"]["platforms"]} == {"tiktok", "instagram",
                                                                  "youtube"}
    assert [r["platform"] for r in event["data"]["results"]] == ["instagram"]
    failed = await topics.records_for(FAILED, item_id)
    assert len({e["event_id"] for e in failed}) == 1
    assert event_schema_errors(event, "distribution.published.schema.json") == []
    assert event_schema_errors(failed[0], "distribution.failed.schema.json") == []
    assert (failed[0]["data"]["publication"], event["data"]["publication"]) == (
        "partially_published", "published")

    analytics = await pool.fetch(
        "SELECT platform, event_type FROM publishing_analytics WHERE item_id = $1", item_id)
    assert sorted((a["platform"], a["event_type"]) for a in analytics) == [
        ("instagram", "failed"), ("instagram", "published"), ("tiktok", "published"),
        ("youtube", "published")]

    code, link = await api.post(item_id, "download", influencer)
    assert code == 200, link
    assert datetime.fromisoformat(link["expires_at"]) > datetime.now(timezone.utc)
    assert openapi_schema_errors("DownloadLink", link) == []
    code, _ = await api.call("GET", link["url"])
    assert code == 302
    parts = urlsplit(link["url"])
    tampered = urlunsplit(parts._replace(query=parts.query[:-1] + (
        "0" if parts.query[-1] != "0" else "1")))
    code, body = await api.call("GET", tampered)
    assert code == 403 and body["error"]["code"] == "forbidden"
    downloads = await pool.fetchval(
        "SELECT count(*) FROM publishing_analytics WHERE item_id = $1 AND event_type = 'download'",
        item_id)
    assert downloads == 1


async def test_a_scheduled_item_is_published_when_its_time_comes_without_any_request(
        api, topics, pool, fake_platforms):
    item_id, _, influencer, _, _ = await claim_item(topics, api, pool, with_campaign=True)
    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    code, item = await api.post(item_id, "schedule", influencer,
                                {"platforms": ["tiktok", "snapchat"],
                                 "scheduled_at": when.isoformat()})
    assert code == 200, item
    item = await api.wait_for_item(item_id, influencer, status="published", timeout=30)
    assert {p["platform"] for p in item["platform_status"]} == {"tiktok", "snapchat"}
    first_post = min(datetime.fromisoformat(p["published_at"]) for p in item["platform_status"])
    assert first_post >= when
    assert len(fake_platforms.posts_for(item_id)) == 2


async def test_m06_outages_are_retried_and_a_clip_without_media_fails_without_a_post(
        api, topics, pool, fake_platforms, fake_media):
    flaky_id, flaky_clip, influencer, _, _ = await claim_item(topics, api, pool, True)
    lost_id, lost_clip, lost_owner, _, _ = await claim_item(topics, api, pool, True)
    fake_media.script(flaky_clip, 503)  # M06 down once: retried after its Retry-After
    fake_media.script(lost_clip, 404)  # M06 has no media for this clip

    assert (await api.post(flaky_id, "publish", influencer, {"platform": "tiktok"}))[0] == 202
    assert (await api.post(lost_id, "publish", lost_owner, {"platform": "youtube"}))[0] == 202

    published = await api.wait_for_item(flaky_id, influencer, status="published")
    [row] = published["platform_status"]
    assert row["attempts"] == 2 and row["post_id"]
    assert [p.body["media_url"] for p in fake_platforms.posts_for(flaky_id)] == [
        fake_media.media_url(flaky_clip)]
    failed = await api.wait_for_item(lost_id, lost_owner, status="failed")
    assert failed["publication"] == "failed"
    [row] = failed["platform_status"]
    assert row["error"] == "media: M06 has no media for the clip"
    assert row["error_class"] == "media"
    assert failed["failure_reason"] == "failed on youtube"
    assert fake_platforms.calls_for(lost_id) == []  # no platform was asked to post it


async def test_a_schedule_past_the_accounts_daily_youtube_limit_is_a_409_naming_when_it_fits(
        api, topics):
    influencer = unique("influencer")
    claimed = await claim_all_and_wait(topics, [api], [new_claimed_event(influencer)
                                                       for _ in range(3)])
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    body = {"platforms": ["youtube", "snapchat"], "scheduled_at": when.isoformat()}
    for item in claimed[:2]:  # the service runs with 2 YouTube uploads per Pacific day
        code, answer = await api.post(item.item_id, "schedule", influencer, body)
        assert code == 200, answer

    async with api.session.post(api.item_url(claimed[2].item_id, "schedule"), json=body,
                                headers={"Authorization": f"Bearer {token(influencer)}"}) as r:
        code, answer, retry_after = r.status, await r.json(), r.headers.get("Retry-After")

    assert code == 409 and answer["error"]["code"] == "quota_exceeded", answer
    assert retry_after is None  # asking again will not help; another time will
    assert openapi_schema_errors("Error", answer) == []
    details = answer["error"]["details"]
    assert (details["platform"], details["cap"], details["window"]) == ("youtube", 2,
                                                                        "pacific_day")
    next_day = (when.astimezone(PACIFIC) + timedelta(days=1)).date()
    assert datetime.fromisoformat(details["earliest"]) == datetime.combine(next_day, time(),
                                                                           PACIFIC)
    code, item = await api.get(claimed[2].item_id, influencer)
    assert item["status"] == "claimed"
    code, item = await api.post(claimed[2].item_id, "schedule", influencer,
                                {**body, "scheduled_at": details["earliest"]})
    assert code == 200, item


async def test_a_platform_answer_that_cannot_be_recorded_leaves_the_platform_unknown_once(
        api, topics, pool, fake_platforms):
    """The platform's refusal carries text PostgreSQL cannot store, so its answer fails in
    the handler (dead-lettered): the platform is left `unknown` for an operator at once,
    not leased and called again at every lease."""
    item_id, influencer, _ = await claim_and_wait(topics, api)
    fake_platforms.script("snapchat", Answer.status(400, message="caption\u0000rejected"))
    code, _ = await api.post(item_id, "publish-multi", influencer,
                             {"platforms": ["tiktok", "snapchat"]})
    assert code == 202

    async def unknown_row():
        return await pool.fetchrow(
            "SELECT status, reason_code, last_error, next_attempt_at "
            "FROM distribution_platform_status WHERE item_id = $1 AND platform = 'snapchat' "
            "AND status = 'unknown'", item_id)
    row = await eventually(unknown_row, timeout=30, what="snapchat left unknown")
    assert row["reason_code"] == "answer_not_recorded" and row["next_attempt_at"] is None
    assert "could not be recorded: CharacterNotInRepertoireError" in row["last_error"]
    assert "rejected" in row["last_error"]  # what the platform answered, by its outcome
    unknown_event = await eventually(lambda: pool.fetchval(
        "SELECT envelope FROM distribution_outbox WHERE partition_key = $1 "
        "AND topic = 'distribution.unknown'", item_id), timeout=30, what="the unknown event")
    assert unknown_event["data"]["platform"] == "snapchat"
    assert len(fake_platforms.calls_for(item_id, "snapchat")) == 1  # called once, not again
    code, item = await api.get(item_id, influencer)
    assert code == 200 and item["status"] == "publishing"  # until an operator settles it
