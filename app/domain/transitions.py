"""The state machine: one pure function per command, returning the new item and its events.

    claimed --schedule--> scheduled --(due)--> publishing --> published
       |                     | ^ reschedule       |
       +--publish------------+-+--publish---------+--> failed --retry--> publishing
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from . import commands as c
from . import events as e
from .errors import Forbidden, InvalidRequest, InvalidStateTransition, NotFound
from .model import (Actor, ErrorClass, Item, Outcome, Platform, PlatformState, PlatformStatus,
                    Status)
from .retry import backoff_seconds, gives_up
from .rules import (Policy, check_caption, check_claim_open, check_overlay, check_platform,
                    check_platforms, check_schedule_window, parse_schedule_time)

MISSED = "missed"
RESOLVED_PUBLISHED, RESOLVED_NOT_PUBLISHED = "published", "not_published"

#: The statuses each user command may start from; nothing else is a legal transition.
ALLOWED_FROM: dict[type, tuple[Status, ...]] = {
    c.AddOverlay: (Status.CLAIMED, Status.SCHEDULED),
    c.Schedule: (Status.CLAIMED,),
    c.Reschedule: (Status.SCHEDULED,),
    c.Publish: (Status.CLAIMED, Status.SCHEDULED),
    c.Retry: (Status.FAILED,),
    c.RequestDownload: tuple(Status),
}


@dataclass(frozen=True)
class Decision:
    item: Item
    events: list[e.Event] = field(default_factory=list)


def may_act_on(item_owner: str, actor: Actor | None) -> bool:
    return actor is not None and (actor.operator or actor.id == item_owner)


def check_owner(item: Item, actor: Actor | None) -> None:
    """Someone else's item is answered as a missing one, so item ids do not leak."""
    if not may_act_on(item.influencer_id, actor):
        raise NotFound(item_id=item.id)


def check_allowed(item: Item, command: object) -> None:
    allowed = ALLOWED_FROM[type(command)]
    if item.status not in allowed:
        name = type(command).__name__
        raise InvalidStateTransition(
            f"{name} is not allowed when the item is {item.status.value}",
            status=item.status.value, allowed_from=[s.value for s in allowed])


def decide(item: Item, actor: Actor | None, command: object, now: datetime,
           policy: Policy) -> Decision:
    """Apply one command to an item. User commands need the owner; system ones need none."""
    if isinstance(command, c.PublishDue):
        return publish_due(item, command, now, policy)
    if isinstance(command, c.RecordPlatformResult):
        return record_platform_result(item, command, now, policy)
    check_owner(item, actor)
    if isinstance(command, c.ResolvePlatform):
        if not actor or not actor.operator:
            raise Forbidden("only an operator may settle a platform's outcome")
        return resolve_platform(item, command, now, policy)
    check_allowed(item, command)
    handler = USER_COMMANDS[type(command)]
    return handler(item, command, now, policy)


def add_overlay(item: Item, command: c.AddOverlay, now: datetime, policy: Policy) -> Decision:
    overlay = check_overlay(command.type, command.duration_seconds)
    overlays = {**item.overlays, overlay.type: overlay}
    return Decision(item.evolve(overlays=overlays), [e.OverlayAdded(overlay)])


def schedule(item: Item, command: c.Schedule, now: datetime, policy: Policy) -> Decision:
    check_claim_open(item, now)
    platforms = check_platforms(command.platforms)
    when, zone = parse_schedule_time(command.scheduled_at, command.timezone)
    check_schedule_window(when, now, policy)
    caption = command.caption or item.caption
    check_caption(caption, platforms, policy.caption_limits)
    new = item.evolve(status=Status.SCHEDULED, scheduled_at=when, timezone=zone,
                      platforms=platforms, caption=caption)
    return Decision(new, [e.ItemScheduled(when, platforms)])


def reschedule(item: Item, command: c.Reschedule, now: datetime, policy: Policy) -> Decision:
    when, zone = parse_schedule_time(command.scheduled_at, command.timezone or item.timezone)
    check_schedule_window(when, now, policy)
    new = item.evolve(scheduled_at=when, timezone=zone)
    return Decision(new, [e.ItemRescheduled(when)])


def publish(item: Item, command: c.Publish, now: datetime, policy: Policy) -> Decision:
    if item.status is Status.CLAIMED:
        check_claim_open(item, now)
    platforms = check_platforms(command.platforms)
    caption = command.caption or item.caption
    check_caption(caption, platforms, policy.caption_limits)
    return start_publishing(item.evolve(caption=caption), platforms, now, bump=False)


def start_publishing(item: Item, platforms: tuple[Platform, ...], now: datetime,
                     bump: bool = True) -> Decision:
    rows = {p: PlatformStatus(p, next_attempt_at=now) for p in platforms}
    changes = dict(status=Status.PUBLISHING, platforms=platforms, platform_status=rows,
                   retry_count=0, failure_reason=None)
    new = item.evolve(**changes) if bump else replace(item, **changes)
    return Decision(new, [e.PublishingStarted(platforms)])


def retry(item: Item, command: c.Retry, now: datetime, policy: Policy) -> Decision:
    """Publish again only the platforms that failed; published ones are never posted twice."""
    again = tuple(p for p, row in item.platform_status.items()
                  if row.status is PlatformState.FAILED)
    rows = {p: replace(row, status=PlatformState.PENDING, attempts=0, error=None,
                       error_class=None, reason_code=None, next_attempt_at=now,
                       in_round=True) if p in again
            else replace(row, in_round=False)
            for p, row in item.platform_status.items()}
    new = item.evolve(status=Status.PUBLISHING, platform_status=rows, retry_count=0,
                      failure_reason=None)
    return Decision(new, [e.PublishingStarted(again)])


def request_download(item: Item, command: c.RequestDownload, now: datetime,
                     policy: Policy) -> Decision:
    return Decision(item, [e.DownloadRequested()])


def publish_due(item: Item, command: c.PublishDue, now: datetime, policy: Policy) -> Decision:
    """Publish a scheduled item whose time has come; one found too late fails as missed."""
    if (item.status is not Status.SCHEDULED or item.scheduled_at != command.scheduled_at
            or item.scheduled_at > now):
        return Decision(item)  # rescheduled, published by hand, or not yet due: nothing to do
    if now - item.scheduled_at > policy.max_lateness:
        rows = {p: PlatformStatus(p, status=PlatformState.FAILED, error=MISSED)
                for p in item.platforms}
        new = item.evolve(status=Status.FAILED, platform_status=rows, failure_reason=MISSED)
        failed = [e.PlatformFailed(p, 0, MISSED) for p in item.platforms]
        return Decision(new, [*failed, e.ItemFailed(MISSED)])
    return start_publishing(item, item.platforms, now)


def record_platform_result(item: Item, command: c.RecordPlatformResult, now: datetime,
                           policy: Policy) -> Decision:
    platform = check_platform(command.platform)
    if command.outcome == Outcome.PUBLISHED and not command.post_id:
        # a platform counts as published only with its post id in hand
        command = replace(command, outcome=Outcome.TRANSIENT, error_class=ErrorClass.TRANSIENT,
                          reason_code="no_post_id", error="published without a post id")
    row = item.platform_status.get(platform)
    if (item.status is not Status.PUBLISHING or row is None or row.resolved
            or row.status is PlatformState.UNKNOWN):
        return Decision(item)  # a late or repeated answer: the platform is settled already
    if command.outcome != Outcome.PUBLISHED and command.key_attempt != row.key_attempt:
        return Decision(item)  # an answer to an attempt that was superseded
    row = replace(row, attempts=max(row.attempts, command.attempt))
    if command.outcome == Outcome.IN_PROGRESS:
        # the platform is still at work: look again after its poll interval, no attempt spent
        row = replace(row, status=PlatformState.PENDING, attempts=max(row.attempts - 1, 0),
                      next_attempt_at=now + timedelta(seconds=command.retry_after or 0),
                      error=None, error_class=None, reason_code=command.reason_code)
        return Decision(item.evolve(platform_status={**item.platform_status, platform: row}))
    if command.outcome == Outcome.UNKNOWN:
        row = replace(row, status=PlatformState.UNKNOWN, next_attempt_at=None,
                      error=command.error or "outcome unknown", error_class=None,
                      reason_code=command.reason_code)
        event = e.PlatformUnknown(platform, row.attempts, row.reason_code, row.error or "")
        return Decision(item.evolve(platform_status={**item.platform_status, platform: row}),
                        [event])
    retries = item.retry_count
    kind = error_class_of(command)
    failure = dict(error=command.error or "failed", error_class=kind,
                   reason_code=command.reason_code)
    events: list[e.Event] = []
    if kind is None:
        row = replace(row, status=PlatformState.PUBLISHED, post_id=command.post_id,
                      post_url=command.post_url, published_at=now, error=None,
                      error_class=None, reason_code=None, next_attempt_at=None)
        events.append(e.PlatformPublished(platform, row.attempts, command.post_id or "",
                                           command.post_url))
    elif kind is ErrorClass.AUTH:
        # the token is refused even after a refresh: the account needs reconnecting, and its
        # posts on this platform wait for that (the hold) instead of failing
        row = replace(row, status=PlatformState.PENDING, attempts=max(row.attempts - 1, 0),
                      next_attempt_at=now, **failure)
        events.append(e.AccountNeedsReconnect(item.influencer_id, platform, row.reason_code,
                                              row.error or ""))
    elif kind is ErrorClass.QUOTA:
        # the window is full: wait for its reset (the platform's Retry-After) without
        # spending an attempt, however long that is
        delay = (command.retry_after if command.retry_after is not None
                 else backoff_seconds(row.attempts, policy, command.jitter))
        row = replace(row, status=PlatformState.PENDING, attempts=max(row.attempts - 1, 0),
                      next_attempt_at=now + timedelta(seconds=delay), **failure)
        events.append(e.PlatformRetryScheduled(platform, row.attempts, row.error or "",
                                               row.next_attempt_at))
    elif kind is ErrorClass.TRANSIENT and not gives_up(row.attempts, policy):
        delay = backoff_seconds(row.attempts, policy, command.jitter, command.retry_after)
        row = replace(row, status=PlatformState.PENDING,
                      next_attempt_at=now + timedelta(seconds=delay), **failure)
        retries += 1
        events.append(e.PlatformRetryScheduled(platform, row.attempts, row.error or "",
                                               row.next_attempt_at))
    else:
        # A definite refusal advances the key; an unresolved transient keeps it, so that a
        # later retry is recognised by the platform if the post went through after all.
        key = row.key_attempt if kind is ErrorClass.TRANSIENT else row.key_attempt + 1
        row = replace(row, status=PlatformState.FAILED, key_attempt=key, next_attempt_at=None,
                      **failure)
        events.append(e.PlatformFailed(platform, row.attempts, row.error))
    rows = {**item.platform_status, platform: row}
    new = item.evolve(platform_status=rows, retry_count=retries)
    return settle(new, events)


def resolve_platform(item: Item, command: c.ResolvePlatform, now: datetime,
                     policy: Policy) -> Decision:
    """An operator settles a platform left unknown (only there: an item has unknown rows
    only while publishing): published with the post they found, or not published (failed;
    a retry posts it again, on purpose)."""
    platform = check_platform(command.platform)
    row = item.platform_status.get(platform)
    if row is None or row.status is not PlatformState.UNKNOWN:
        raise InvalidStateTransition(
            f"{platform.value} is not waiting for an operator",
            platform=platform.value, platform_status=row.status.value if row else None)
    if command.outcome == RESOLVED_PUBLISHED:
        if not command.post_id:
            raise InvalidRequest("post_id is required when the outcome is published",
                                 field="post_id")
        row = replace(row, status=PlatformState.PUBLISHED, post_id=command.post_id,
                      post_url=command.post_url, published_at=now, error=None,
                      error_class=None, reason_code=None)
        event: e.Event = e.PlatformPublished(platform, row.attempts, command.post_id,
                                             command.post_url)
    elif command.outcome == RESOLVED_NOT_PUBLISHED:
        row = replace(row, status=PlatformState.FAILED, key_attempt=row.key_attempt + 1,
                      error="not published (settled by an operator)",
                      error_class=ErrorClass.PERMANENT, reason_code=RESOLVED_NOT_PUBLISHED)
        event = e.PlatformFailed(platform, row.attempts, row.error or "")
    else:
        raise InvalidRequest("outcome must be published or not_published", field="outcome")
    return settle(item.evolve(platform_status={**item.platform_status, platform: row}),
                  [event])


def error_class_of(command: c.RecordPlatformResult) -> ErrorClass | None:
    """The class of a failed attempt (None: published). An answer without one is classed
    by its outcome: transient stays transient, a rejection is permanent."""
    if command.outcome == Outcome.PUBLISHED:
        return None
    if command.error_class is not None:
        return command.error_class
    return ErrorClass.TRANSIENT if command.outcome == Outcome.TRANSIENT else ErrorClass.PERMANENT


def settle(item: Item, events: list[e.Event]) -> Decision:
    """Once every platform has its outcome, the item is published or failed."""
    rows = item.platform_status.values()
    if not all(r.resolved for r in rows):
        return Decision(item, events)
    failed = sorted(r.platform.value for r in rows if r.status is PlatformState.FAILED)
    if not failed:
        return Decision(replace(item, status=Status.PUBLISHED), [*events, e.ItemPublished()])
    reason = "failed on " + ", ".join(failed)
    return Decision(replace(item, status=Status.FAILED, failure_reason=reason),
                    [*events, e.ItemFailed(reason)])


USER_COMMANDS = {
    c.AddOverlay: add_overlay,
    c.Schedule: schedule,
    c.Reschedule: reschedule,
    c.Publish: publish,
    c.Retry: retry,
    c.RequestDownload: request_download,
}
