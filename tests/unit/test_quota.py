"""Posting limits, checked when a post is planned: pure rules, the clock passed in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.domain import commands as c
from app.domain import events as e
from app.domain.errors import QuotaExceeded
from app.domain.model import Platform
from app.domain.quota import (PACIFIC, QuotaRule, Window, check_quota, earliest_fit, fits,
                              planned_posts)

T = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)
TWO_A_DAY = QuotaRule(2, Window.ROLLING_24H)


def test_a_rolling_window_counts_the_posts_of_the_24_hours_before_each_post():
    assert fits([T - 23 * H], T, TWO_A_DAY)
    assert not fits([T - 23 * H, T - H], T, TWO_A_DAY)
    assert fits([T - 24 * H, T - H], T, TWO_A_DAY)  # a day old: out of the window
    assert earliest_fit([T - 23 * H, T - H], T, TWO_A_DAY) == T + H  # the first one leaves


def test_a_post_must_not_overfill_the_windows_of_posts_planned_after_it():
    later = [T + H, T + 2 * H]
    assert not fits(later, T, TWO_A_DAY)  # at T + 2 h, three posts in 24 h
    assert fits(later, T - 23 * H, TWO_A_DAY)  # out of their window already
    assert earliest_fit(later, T, TWO_A_DAY) == T + 25 * H


def test_a_pacific_day_counts_posts_by_their_date_in_los_angeles():
    one = QuotaRule(1, Window.PACIFIC_DAY)
    morning = datetime(2026, 3, 1, 10, 0, tzinfo=PACIFIC)
    evening = datetime(2026, 3, 1, 23, 30, tzinfo=PACIFIC)
    assert not fits([morning], evening, one)
    midnight = earliest_fit([morning], evening, one)
    assert midnight == datetime(2026, 3, 2, 0, 0, tzinfo=PACIFIC)
    assert midnight.astimezone(timezone.utc) == datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    # 07:30 UTC on 2 March is still 1 March in Los Angeles; 08:30 UTC is the next day
    assert not fits([morning], datetime(2026, 3, 2, 7, 30, tzinfo=timezone.utc), one)
    assert fits([morning], datetime(2026, 3, 2, 8, 30, tzinfo=timezone.utc), one)


def test_a_pacific_day_fit_skips_full_days_across_a_dst_change():
    one = QuotaRule(1, Window.PACIFIC_DAY)
    full = [datetime(2026, 3, 7, 9, 0, tzinfo=PACIFIC), datetime(2026, 3, 8, 9, 0, tzinfo=PACIFIC)]
    # 8 March 2026: clocks go forward in Los Angeles; midnights stay midnights
    assert earliest_fit(full, datetime(2026, 3, 7, 12, 0, tzinfo=PACIFIC), one) == \
        datetime(2026, 3, 9, 0, 0, tzinfo=PACIFIC)


def test_the_refusal_names_the_platform_its_cap_and_the_earliest_time_that_fits():
    usage = {Platform.INSTAGRAM: [T - 23 * H, T - H], Platform.SNAPCHAT: [T] * 500}
    quotas = {Platform.INSTAGRAM: TWO_A_DAY}
    check_quota([(Platform.SNAPCHAT, T)], usage, quotas)  # no limit on snapchat
    check_quota([(Platform.INSTAGRAM, T + H)], usage, quotas)
    with pytest.raises(QuotaExceeded) as refused:
        check_quota([(Platform.SNAPCHAT, T), (Platform.INSTAGRAM, T)], usage, quotas)
    assert refused.value.details == {"platform": "instagram", "cap": 2,
                                     "window": "rolling_24h", "earliest": "2026-03-01T13:00:00Z"}


def test_the_posts_a_command_plans_come_from_what_it_did():
    platforms = (Platform.TIKTOK, Platform.YOUTUBE)
    scheduled = [e.ItemScheduled(T, platforms)]
    assert planned_posts(c.Schedule(["tiktok", "youtube"], "x"), scheduled, platforms, T - H) \
        == [(Platform.TIKTOK, T), (Platform.YOUTUBE, T)]
    assert planned_posts(c.Reschedule("x"), [e.ItemRescheduled(T + H)], platforms, T) == [
        (Platform.TIKTOK, T + H), (Platform.YOUTUBE, T + H)]
    assert planned_posts(c.Publish(["youtube"]), [e.PublishingStarted((Platform.YOUTUBE,))],
                         platforms, T) == [(Platform.YOUTUBE, T)]
    assert planned_posts(c.Retry(), [e.PublishingStarted(platforms)], platforms, T) == []
