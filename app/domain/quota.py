"""How many posts an account may make on a platform, checked when a post is planned
(scheduled, rescheduled or published now), so that a full window is a clear refusal at
once instead of a failure on the day.

Two kinds of window, as the platforms count them:
- rolling: at the moment of any post, the posts of the `length` before it, that one
  included, number at most `cap` (Instagram 24 h, TikTok 24 h);
- Pacific day: at most `cap` posts per calendar day in America/Los_Angeles (YouTube's
  quota resets at midnight Pacific Time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone
from enum import StrEnum
from zoneinfo import ZoneInfo

from . import commands as c
from . import events as e
from .errors import QuotaExceeded
from .model import Platform

PACIFIC = ZoneInfo("America/Los_Angeles")


class Window(StrEnum):
    ROLLING_24H = "rolling_24h"
    PACIFIC_DAY = "pacific_day"


@dataclass(frozen=True)
class QuotaRule:
    cap: int
    window: Window


def with_live_caps(quotas: Mapping[Platform, QuotaRule],
                   live: Mapping[Platform, int]) -> dict[Platform, QuotaRule]:
    """The configured rules, with the cap a platform itself said for the account where it
    did (Instagram's `quota_total`, read in direct mode): the platform knows best."""
    return {p: replace(rule, cap=live[p]) if p in live else rule for p, rule in quotas.items()}


#: Defaults from the platforms' documentation (Snapchat publishes no cap).
DEFAULT_QUOTAS: Mapping[Platform, QuotaRule] = {
    Platform.INSTAGRAM: QuotaRule(50, Window.ROLLING_24H),
    Platform.YOUTUBE: QuotaRule(100, Window.PACIFIC_DAY),
    Platform.TIKTOK: QuotaRule(15, Window.ROLLING_24H),
}
ROLLING = timedelta(hours=24)


def pacific_day(moment: datetime):
    return moment.astimezone(PACIFIC).date()


def fits(posts: Iterable[datetime], when: datetime, rule: QuotaRule) -> bool:
    """Whether one more post at `when` keeps every window within the cap."""
    times = sorted([*posts, when])
    if rule.window is Window.PACIFIC_DAY:
        day = pacific_day(when)
        return sum(1 for t in times if pacific_day(t) == day) <= rule.cap
    # the windows that change are those of the posts at `when` and in the day after it
    return all(sum(1 for t in times if moment - ROLLING < t <= moment) <= rule.cap
               for moment in times if when <= moment < when + ROLLING)


def earliest_fit(posts: list[datetime], when: datetime, rule: QuotaRule) -> datetime:
    """The first moment from `when` on at which one more post fits."""
    if rule.window is Window.PACIFIC_DAY:
        candidates = [when] + [
            datetime.combine(pacific_day(when) + timedelta(days=n), time(), PACIFIC)
            for n in range(1, len(posts) + 2)]
    else:  # a window frees up as each post leaves it
        candidates = [when] + sorted(t + ROLLING for t in posts if t + ROLLING > when)
    for moment in candidates:
        if fits(posts, moment, rule):
            return moment
    raise AssertionError("a moment past every post always fits")  # pragma: no cover


def planned_posts(command: object, events: Iterable[e.Event], platforms: Iterable[Platform],
                  now: datetime) -> list[tuple[Platform, datetime]]:
    """The posts a user's command plans (from the events it caused, and the item's
    `platforms` after it): each platform and when it will post."""
    if isinstance(command, c.Schedule):
        return [(p, ev.scheduled_at) for ev in events if isinstance(ev, e.ItemScheduled)
                for p in ev.platforms]
    if isinstance(command, c.Reschedule):
        return [(p, ev.scheduled_at) for ev in events if isinstance(ev, e.ItemRescheduled)
                for p in platforms]
    if isinstance(command, c.Publish):
        return [(p, now) for ev in events if isinstance(ev, e.PublishingStarted)
                for p in ev.platforms]
    return []


def check_quota(planned: list[tuple[Platform, datetime]],
                usage: Mapping[Platform, list[datetime]],
                quotas: Mapping[Platform, QuotaRule]) -> None:
    """QuotaExceeded (409) naming the first platform whose window the plan overfills, with
    the earliest time a post there fits."""
    for platform, when in planned:
        rule = quotas.get(platform)
        if rule is None:
            continue
        posts = usage.get(platform, [])
        if not fits(posts, when, rule):
            earliest = utc_text(earliest_fit(posts, when, rule))
            raise QuotaExceeded(
                f"{platform.value} allows {rule.cap} posts per "
                f"{'rolling 24 hours' if rule.window is Window.ROLLING_24H else 'Pacific day'}"
                f"; the earliest time a post fits is {earliest}",
                platform=platform.value, cap=rule.cap, window=rule.window.value,
                earliest=earliest)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
