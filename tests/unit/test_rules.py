"""The validation rules of DESIGN §1, each at its boundaries."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from app.domain import commands as c
from app.domain.errors import (InvalidRequest, InvalidStateTransition, RuleViolation,
                               UnsupportedPlatform)
from app.domain.model import Caption, CaptionText, OverlayType, Platform, Status
from app.domain.rules import (CaptionLimits, Policy, check_caption, check_claim_open,
                              check_overlay, check_platform, check_platforms,
                              check_schedule_window, claim_expires_at, parse_schedule_time,
                              parse_zone, rendered_caption, resolve_local_time)

from .builders import NOW, POLICY, apply, claimed_item, scheduled_item

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
LIMITS = CaptionLimits()
SECOND = timedelta(seconds=1)


def schedule_at(moment: datetime, now: datetime = NOW, **kwargs):
    return apply(claimed_item(), c.Schedule(["tiktok"], moment.isoformat(), **kwargs), now=now)


# --- schedule window: [now + 5 min, now + 30 days] ----------------------------------------

def test_a_schedule_exactly_five_minutes_ahead_is_accepted():
    item = schedule_at(NOW + timedelta(minutes=5)).item
    assert item.status is Status.SCHEDULED
    assert item.scheduled_at == NOW + timedelta(minutes=5)


def test_a_schedule_one_second_less_than_five_minutes_ahead_is_a_rule_violation():
    with pytest.raises(RuleViolation) as err:
        schedule_at(NOW + timedelta(minutes=5) - SECOND)
    assert err.value.code == "rule_violation"
    assert err.value.details["field"] == "scheduled_at"


def test_a_schedule_one_microsecond_too_early_is_a_rule_violation():
    with pytest.raises(RuleViolation):
        check_schedule_window(NOW + timedelta(minutes=5, microseconds=-1), NOW, POLICY)


def test_a_schedule_exactly_thirty_days_ahead_is_accepted():
    item = schedule_at(NOW + timedelta(days=30)).item
    assert item.scheduled_at == NOW + timedelta(days=30)


def test_a_schedule_thirty_days_and_one_second_ahead_is_a_rule_violation():
    with pytest.raises(RuleViolation) as err:
        schedule_at(NOW + timedelta(days=30) + SECOND)
    assert err.value.details["field"] == "scheduled_at"


def test_a_schedule_in_the_past_is_a_rule_violation():
    with pytest.raises(RuleViolation) as err:
        schedule_at(NOW - timedelta(hours=1))
    assert err.value.code == "rule_violation"


def test_the_error_names_the_earliest_and_latest_allowed_instants():
    with pytest.raises(RuleViolation) as err:
        check_schedule_window(NOW, NOW, POLICY)
    assert datetime.fromisoformat(err.value.details["earliest"]) == NOW + timedelta(minutes=5)
    assert datetime.fromisoformat(err.value.details["latest"]) == NOW + timedelta(days=30)


def test_a_lowered_minimum_lead_from_the_settings_is_honoured():
    policy = Policy(min_schedule_lead=timedelta(seconds=2))
    check_schedule_window(NOW + timedelta(seconds=2), NOW, policy)
    with pytest.raises(RuleViolation):
        check_schedule_window(NOW + SECOND, NOW, policy)


def test_a_reschedule_obeys_the_same_window():
    item = scheduled_item()
    ok = apply(item, c.Reschedule((NOW + timedelta(minutes=5)).isoformat())).item
    assert ok.scheduled_at == NOW + timedelta(minutes=5)
    with pytest.raises(RuleViolation):
        apply(item, c.Reschedule((NOW + timedelta(minutes=5) - SECOND).isoformat()))
    with pytest.raises(RuleViolation):
        apply(item, c.Reschedule((NOW + timedelta(days=30) + SECOND).isoformat()))


# --- time zones and the way a schedule time is written ------------------------------------

def test_an_rfc3339_time_with_an_offset_is_accepted_without_a_zone():
    when, zone = parse_schedule_time("2026-03-01T13:30:00+01:00", None)
    assert when == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert when.utcoffset() == timedelta(0)
    assert zone == "UTC"


def test_an_rfc3339_time_in_zulu_is_accepted():
    when, _ = parse_schedule_time("2026-03-01T12:30:00Z", None)
    assert when == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def test_an_offset_time_given_with_a_zone_keeps_the_instant_and_records_the_zone():
    when, zone = parse_schedule_time("2026-03-01T13:30:00+01:00", "Europe/Paris")
    assert when == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert zone == "Europe/Paris"


def test_a_local_time_with_an_iana_zone_is_stored_as_a_utc_instant_beside_the_zone():
    when, zone = parse_schedule_time("2026-07-01T09:00:00", "Europe/Paris")
    assert when == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # CEST is UTC+2
    assert when.tzinfo is UTC
    assert zone == "Europe/Paris"


def test_a_naive_time_without_a_zone_is_a_rule_violation():
    with pytest.raises(RuleViolation) as err:
        parse_schedule_time("2026-03-01T13:30:00", None)
    assert err.value.code == "rule_violation"
    assert err.value.details["field"] == "timezone"


def test_a_naive_time_without_a_zone_is_a_rule_violation_of_schedule():
    with pytest.raises(RuleViolation):
        apply(claimed_item(), c.Schedule(["tiktok"], "2026-03-01T13:30:00"))


def test_a_time_that_is_not_a_timestamp_is_an_invalid_request_not_a_rule_violation():
    with pytest.raises(InvalidRequest) as err:
        parse_schedule_time("next tuesday", "Europe/Paris")
    assert err.value.code == "invalid_request"
    assert err.value.details["field"] == "scheduled_at"


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", " Europe/Paris", "Europe/Paris ",
                                  "/etc/localtime", "../zoneinfo/Europe/Paris", "+01:00"])
def test_an_unknown_zone_is_an_invalid_request(name):
    with pytest.raises(InvalidRequest) as err:
        parse_zone(name)
    assert err.value.details["field"] == "timezone"


def test_an_unknown_zone_is_rejected_by_schedule_even_with_an_offset():
    with pytest.raises(InvalidRequest):
        schedule_at(NOW + timedelta(hours=1), timezone="Mars/Olympus_Mons")


def test_a_local_time_in_the_dst_gap_is_a_rule_violation_not_guessed():
    # 2026-03-29 02:00 -> 03:00 in Paris: 02:30 never happens.
    with pytest.raises(RuleViolation) as err:
        parse_schedule_time("2026-03-29T02:30:00", "Europe/Paris")
    assert err.value.code == "rule_violation"
    assert "gap" in err.value.message
    assert err.value.details["field"] == "scheduled_at"


def test_a_local_time_in_the_dst_fold_is_a_rule_violation_not_guessed():
    # 2026-10-25 03:00 -> 02:00 in Paris: 02:30 happens twice.
    with pytest.raises(RuleViolation) as err:
        parse_schedule_time("2026-10-25T02:30:00", "Europe/Paris")
    assert "fold" in err.value.message
    assert err.value.code == "rule_violation"
    assert err.value.details["field"] == "scheduled_at"


def test_the_dst_gap_and_fold_are_rejected_by_schedule_as_a_rule_violation():
    for local, now in (("2026-03-29T02:30:00", datetime(2026, 3, 20, tzinfo=UTC)),
                       ("2026-10-25T02:30:00", datetime(2026, 10, 20, tzinfo=UTC))):
        with pytest.raises(RuleViolation) as err:
            apply(claimed_item(claimed_at=now), c.Schedule(["tiktok"], local, "Europe/Paris"),
                  now=now)
        assert err.value.code == "rule_violation"


def test_the_fold_can_be_chosen_with_an_explicit_offset():
    first, _ = parse_schedule_time("2026-10-25T02:30:00+02:00", "Europe/Paris")
    second, _ = parse_schedule_time("2026-10-25T02:30:00+01:00", "Europe/Paris")
    assert second - first == timedelta(hours=1)


def test_the_minutes_around_the_dst_changes_resolve_normally():
    before_gap = resolve_local_time(datetime(2026, 3, 29, 1, 59), PARIS)
    after_gap = resolve_local_time(datetime(2026, 3, 29, 3, 0), PARIS)
    assert after_gap - before_gap == timedelta(minutes=1)
    before_fold = resolve_local_time(datetime(2026, 10, 25, 1, 59), PARIS)
    after_fold = resolve_local_time(datetime(2026, 10, 25, 3, 0), PARIS)
    assert after_fold - before_fold == timedelta(hours=2, minutes=1)
    for edge in (datetime(2026, 3, 29, 2, 0), datetime(2026, 10, 25, 2, 0),
                 datetime(2026, 10, 25, 2, 59)):
        with pytest.raises(RuleViolation):
            resolve_local_time(edge, PARIS)


def _parse_all():
    return [parse_schedule_time("2026-07-01T09:00:00", "Europe/Paris"),
            parse_schedule_time("2026-07-01T09:00:00", "America/New_York"),
            parse_schedule_time("2026-07-01T09:00:00+09:00", None),
            parse_schedule_time("2026-01-15T23:30:00", "Asia/Kolkata")]


def test_the_result_does_not_depend_on_the_host_time_zone():
    saved = os.environ.get("TZ")
    try:
        os.environ["TZ"] = "UTC"
        time.tzset()
        in_utc = _parse_all()
        for host_zone in ("Pacific/Kiritimati", "America/Los_Angeles", "Europe/Paris"):
            os.environ["TZ"] = host_zone
            time.tzset()
            assert _parse_all() == in_utc
            with pytest.raises(RuleViolation):
                parse_schedule_time("2026-03-29T02:30:00", "Europe/Paris")
            with pytest.raises(RuleViolation):
                parse_schedule_time("2026-07-01T09:00:00", None)
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()
    assert in_utc[0] == (datetime(2026, 7, 1, 7, 0, tzinfo=UTC), "Europe/Paris")
    assert in_utc[1] == (datetime(2026, 7, 1, 13, 0, tzinfo=UTC), "America/New_York")


# --- overlays -----------------------------------------------------------------------------

def test_an_overlay_of_zero_seconds_is_rejected():
    with pytest.raises(InvalidRequest) as err:
        check_overlay("intro", 0)
    assert err.value.details["field"] == "duration_seconds"


def test_an_overlay_of_exactly_three_seconds_is_accepted():
    overlay = check_overlay("outro", 3.0)
    assert overlay.type is OverlayType.OUTRO and overlay.duration_seconds == 3.0


def test_an_overlay_of_three_seconds_and_a_millisecond_is_rejected():
    with pytest.raises(InvalidRequest):
        check_overlay("intro", 3.001)


@pytest.mark.parametrize("duration", [-1.0, float("nan"), float("inf"), 0.0])
def test_an_overlay_duration_outside_zero_to_three_is_rejected(duration):
    with pytest.raises(InvalidRequest):
        check_overlay("intro", duration)


def test_a_very_short_overlay_is_accepted():
    assert check_overlay("intro", 0.001).duration_seconds == 0.001


@pytest.mark.parametrize("kind", ["bumper", "INTRO", "", "midroll"])
def test_an_overlay_type_other_than_intro_or_outro_is_rejected(kind):
    with pytest.raises(InvalidRequest) as err:
        check_overlay(kind, 1.0)
    assert err.value.details["field"] == "type"


# --- platforms ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiktok", "instagram", "youtube", "snapchat"])
def test_each_supported_platform_is_accepted(name):
    assert check_platform(name) is Platform(name)


@pytest.mark.parametrize("name", ["myspace", "TikTok", "", "facebook"])
def test_an_unsupported_platform_is_an_unsupported_platform_error(name):
    with pytest.raises(UnsupportedPlatform) as err:
        check_platform(name)
    assert err.value.code == "unsupported_platform"
    assert set(err.value.details["supported"]) == {"tiktok", "instagram", "youtube", "snapchat"}


def test_one_unsupported_platform_among_supported_ones_rejects_the_request():
    with pytest.raises(UnsupportedPlatform):
        check_platforms(["tiktok", "vine"])
    with pytest.raises(UnsupportedPlatform):
        apply(claimed_item(),
              c.Schedule(["tiktok", "vine"], (NOW + timedelta(hours=1)).isoformat()))


def test_duplicate_platforms_are_removed_keeping_the_order_given():
    assert check_platforms(["youtube", "tiktok", "youtube", "tiktok"]) == (
        Platform.YOUTUBE, Platform.TIKTOK)


def test_an_empty_platform_list_is_an_invalid_request():
    with pytest.raises(InvalidRequest):
        check_platforms([])


def test_a_schedule_keeps_each_platform_once():
    item = apply(claimed_item(), c.Schedule(["snapchat", "snapchat", "instagram"],
                                            (NOW + timedelta(hours=1)).isoformat())).item
    assert item.platforms == (Platform.SNAPCHAT, Platform.INSTAGRAM)


# --- captions, per platform ---------------------------------------------------------------

def caption(text: str, hashtags: tuple[str, ...] = (), title: str | None = None) -> Caption:
    return Caption(CaptionText(text, hashtags, title))


def check(cap: Caption, *platforms: str, limits: CaptionLimits = LIMITS) -> None:
    check_caption(cap, tuple(Platform(p) for p in platforms), limits)


def test_a_caption_is_rendered_as_text_then_hashtags_each_with_one_hash():
    assert rendered_caption("hello", ("a", "#b")) == "hello #a #b"
    assert rendered_caption("hello", ()) == "hello"
    assert rendered_caption("", ("a",)) == "#a"


def test_a_tiktok_caption_of_2200_characters_is_accepted():
    check(caption("x" * 2200), "tiktok")


def test_a_tiktok_caption_of_2201_characters_is_a_rule_violation():
    with pytest.raises(RuleViolation) as err:
        check(caption("x" * 2201), "tiktok")
    assert err.value.code == "rule_violation"
    assert err.value.details == {"field": "caption", "platform": "tiktok"}


def test_tiktok_counts_the_hashtags_in_the_caption_length():
    text = "x" * (2200 - len(" #ab"))
    check(caption(text, ("ab",)), "tiktok")
    with pytest.raises(RuleViolation):
        check(caption(text, ("abc",)), "tiktok")


def test_tiktok_counts_characters_not_bytes():
    check(caption("é" * 2200), "tiktok")


def test_an_instagram_caption_of_2200_characters_is_accepted():
    check(caption("x" * 2200), "instagram")


def test_an_instagram_caption_of_2201_characters_is_a_rule_violation():
    with pytest.raises(RuleViolation):
        check(caption("x" * 2201), "instagram")


def test_instagram_accepts_30_hashtags_and_refuses_31_as_a_rule_violation():
    tags = tuple(f"tag{i}" for i in range(31))
    check(caption("hi", tags[:30]), "instagram")
    with pytest.raises(RuleViolation) as err:
        check(caption("hi", tags), "instagram")
    assert "hashtags" in err.value.message


def test_31_hashtags_are_fine_where_only_instagram_counts_them():
    check(caption("hi", tuple(f"t{i}" for i in range(31))), "tiktok", "youtube")


def test_a_youtube_description_of_5000_bytes_is_accepted():
    check(caption("é" * 2500), "youtube")      # 2 bytes each
    check(caption("😀" * 1250), "youtube")     # 4 bytes each


def test_a_youtube_description_of_5001_bytes_is_a_rule_violation_though_it_has_far_fewer_characters():
    for text in ("é" * 2500 + "a", "😀" * 1250 + "a", "€" * 1667):  # 5001 bytes
        assert len(text.encode()) == 5001 and len(text) < 2600
        with pytest.raises(RuleViolation) as err:
            check(caption(text), "youtube")
        assert "bytes" in err.value.message


def test_youtube_counts_the_hashtags_in_the_description_bytes():
    text = "é" * 2497  # 4994 bytes, plus " #abcd" (6) = 5000
    check(caption(text, ("abcd",)), "youtube")
    with pytest.raises(RuleViolation):
        check(caption(text, ("abcde",)), "youtube")


def test_a_youtube_title_of_100_characters_is_accepted_and_101_a_rule_violation():
    check(caption("desc", title="t" * 100), "youtube")
    check(caption("desc", title="é" * 100), "youtube")  # characters, not bytes
    with pytest.raises(RuleViolation) as err:
        check(caption("desc", title="t" * 101), "youtube")
    assert "title" in err.value.message


def test_a_youtube_caption_without_a_title_needs_none():
    check(caption("desc", title=None), "youtube")


def test_a_title_is_only_limited_on_youtube():
    check(caption("desc", title="t" * 500), "tiktok", "instagram", "snapchat")


def test_a_snapchat_caption_of_160_characters_including_hashtags_is_accepted():
    text = "x" * (160 - len(" #abc #de"))
    assert len(rendered_caption(text, ("abc", "de"))) == 160
    check(caption(text, ("abc", "de")), "snapchat")


def test_a_snapchat_caption_of_161_characters_including_hashtags_is_a_rule_violation():
    text = "x" * (160 - len(" #abc #de"))
    with pytest.raises(RuleViolation) as err:
        check(caption(text, ("abc", "def")), "snapchat")
    assert err.value.details["platform"] == "snapchat"
    with pytest.raises(RuleViolation):
        check(caption("x" * 161), "snapchat")


def test_a_caption_fine_for_one_platform_is_a_rule_violation_for_a_stricter_one_in_the_same_request():
    long = caption("x" * 200)
    check(long, "tiktok", "instagram", "youtube")
    with pytest.raises(RuleViolation) as err:
        check(long, "tiktok", "snapchat")
    assert err.value.details["platform"] == "snapchat"


def test_a_platform_variant_replaces_the_default_caption_for_that_platform():
    cap = Caption(CaptionText("x" * 200), {Platform.SNAPCHAT: CaptionText("short", ("tag",))})
    check(cap, "tiktok", "snapchat")
    cap = Caption(CaptionText("short"), {Platform.SNAPCHAT: CaptionText("x" * 161)})
    with pytest.raises(RuleViolation):
        check(cap, "snapchat")


def test_caption_limits_come_from_the_settings():
    limits = CaptionLimits(snapchat_caption_chars=10)
    check(caption("x" * 10), "snapchat", limits=limits)
    with pytest.raises(RuleViolation):
        check(caption("x" * 11), "snapchat", limits=limits)


def test_no_caption_is_always_fine():
    check_caption(None, tuple(Platform), LIMITS)


def test_captions_are_checked_when_the_item_is_scheduled():
    at = (NOW + timedelta(hours=1)).isoformat()
    with pytest.raises(RuleViolation):
        apply(claimed_item(), c.Schedule(["snapchat"], at, caption=caption("x" * 161)))
    item = apply(claimed_item(), c.Schedule(["tiktok"], at, caption=caption("x" * 161))).item
    assert item.caption == caption("x" * 161)


def test_captions_are_checked_when_an_item_is_published_by_hand():
    with pytest.raises(RuleViolation):
        apply(claimed_item(), c.Publish(["snapchat"], caption=caption("x" * 161)))


def test_a_caption_stored_earlier_is_checked_against_the_platforms_published_later():
    at = (NOW + timedelta(hours=1)).isoformat()
    item = apply(claimed_item(), c.Schedule(["tiktok"], at, caption=caption("x" * 161))).item
    with pytest.raises(RuleViolation):
        apply(item, c.Publish(["snapchat"]))


# --- the 24 h claim window ----------------------------------------------------------------

def test_a_claim_window_is_24_hours_from_the_claim_in_utc():
    claimed = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert claim_expires_at(claimed) == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_a_naive_claim_time_is_refused():
    with pytest.raises(ValueError):
        claim_expires_at(datetime(2026, 3, 1, 12, 0))


def test_scheduling_exactly_24_hours_after_the_claim_is_accepted():
    now = NOW + timedelta(hours=24)
    item = schedule_at(now + timedelta(hours=1), now=now).item
    assert item.status is Status.SCHEDULED


def test_scheduling_24_hours_and_one_second_after_the_claim_is_an_invalid_state_transition():
    now = NOW + timedelta(hours=24) + SECOND
    with pytest.raises(InvalidStateTransition) as err:
        schedule_at(now + timedelta(hours=1), now=now)
    assert err.value.code == "invalid_state_transition"


def test_publishing_a_claimed_item_after_the_claim_window_is_an_invalid_state_transition():
    apply(claimed_item(), c.Publish(["tiktok"]), now=NOW + timedelta(hours=24))
    with pytest.raises(InvalidStateTransition):
        apply(claimed_item(), c.Publish(["tiktok"]), now=NOW + timedelta(hours=24) + SECOND)


def test_a_scheduled_item_is_no_longer_bound_by_the_claim_window():
    item = scheduled_item(at=NOW + timedelta(days=3))
    later = NOW + timedelta(days=2)
    assert apply(item, c.Reschedule((later + timedelta(hours=1)).isoformat()),
                 now=later).item.status is Status.SCHEDULED
    assert apply(item, c.Publish(["tiktok"]), now=later).item.status is Status.PUBLISHING


def test_check_claim_open_is_inclusive_at_the_expiry_instant():
    item = claimed_item()
    check_claim_open(item, item.claim_expires_at)
    with pytest.raises(InvalidStateTransition):
        check_claim_open(item, item.claim_expires_at + timedelta(microseconds=1))
