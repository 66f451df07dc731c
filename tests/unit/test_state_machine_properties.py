"""Properties of the state machine under random sequences of commands (hypothesis).

Whatever is asked, in whatever order, at whatever time, through `transitions.decide`:
- no transition outside DESIGN §1 ever happens, and each one only by the command that owns it;
- a platform once published stays published with the same post and is never due for another
  attempt, so it is never posted again (retry included); with a platform that honours
  idempotency keys (a key it posted under answers 409 with that post, a key it refused is
  refused again), each platform ends up with at most one post, whatever the order, delay,
  loss or duplication of answers and however often a lease runs out;
- the version never decreases, and rises by exactly one whenever the item changes;
- `ItemPublished` / `ItemFailed` are emitted exactly when the item settles.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from app.domain import commands as c
from app.domain import events as e
from app.domain.errors import DomainError, NotFound
from app.domain.model import Actor, Item, Platform, PlatformState, Status
from app.domain.transitions import MISSED, decide

from .builders import LEASE, NOW, OWNER, POLICY, STRANGER, claimed_item

S = Status


def as_actor(actor: str | None) -> Actor | None:
    """The influencer asking (never an operator here), or None for the service itself."""
    return Actor(actor) if actor is not None else None

#: DESIGN §1, arrow by arrow, with the commands that may draw each arrow.
LEGAL_TRANSITIONS: dict[tuple[Status, Status], tuple[type, ...]] = {
    (S.CLAIMED, S.SCHEDULED): (c.Schedule,),
    (S.CLAIMED, S.PUBLISHING): (c.Publish,),
    (S.SCHEDULED, S.PUBLISHING): (c.Publish, c.PublishDue),
    (S.SCHEDULED, S.FAILED): (c.PublishDue,),          # found too late: fails as "missed"
    (S.PUBLISHING, S.PUBLISHED): (c.RecordPlatformResult,),
    (S.PUBLISHING, S.FAILED): (c.RecordPlatformResult,),
    (S.FAILED, S.PUBLISHING): (c.Retry,),
}
#: Commands that may change an item without changing its status.
SAME_STATUS_CHANGES: dict[Status, tuple[type, ...]] = {
    S.CLAIMED: (c.AddOverlay,),
    S.SCHEDULED: (c.AddOverlay, c.Reschedule),
    S.PUBLISHING: (c.RecordPlatformResult,),
    S.PUBLISHED: (),
    S.FAILED: (),
}

PLATFORM_NAMES = ["tiktok", "instagram", "youtube", "snapchat"]
platform_lists = st.lists(st.sampled_from(PLATFORM_NAMES + ["myspace"]), min_size=0, max_size=5)
zones = st.sampled_from(["Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC",
                         "Mars/Olympus_Mons"])
#: What a platform does with one attempt ("lost": the publisher crashed, nothing came back).
REPLIES = st.sampled_from(["published", "transient", "posted_but_timed_out", "rejected",
                           "lost"])
# Mostly inside [now + 5 min, now + 30 days], sometimes just outside either end.
leads = st.one_of(st.integers(300, 30 * 86400), st.integers(-3600, 400),
                  st.integers(30 * 86400 - 5, 30 * 86400 + 5))


def check_step(before: Item, command: object, after: Item, events: list) -> None:
    """Everything that must hold for one applied command."""
    kind = type(command)
    if after.status is not before.status:
        arrow = (before.status, after.status)
        assert arrow in LEGAL_TRANSITIONS, f"illegal transition {arrow} by {kind.__name__}"
        assert kind in LEGAL_TRANSITIONS[arrow], f"{arrow} drawn by {kind.__name__}"
        if arrow == (S.SCHEDULED, S.FAILED):
            assert after.failure_reason == MISSED
    elif after != before:
        assert kind in SAME_STATUS_CHANGES[before.status], (
            f"{kind.__name__} changed a {before.status.value} item")

    assert after.version >= before.version
    if after.version == before.version:
        assert after == before, "a change without a new version"
    else:
        assert after.version == before.version + 1, "version rose by more than one"

    # What was published stays published, with its post, and is never due again.
    for platform, row in before.platform_status.items():
        if row.status is PlatformState.PUBLISHED:
            new = after.platform_status.get(platform)
            assert new is not None and new.status is PlatformState.PUBLISHED
            assert (new.post_id, new.published_at) == (row.post_id, row.published_at)
            for ev in events:
                if isinstance(ev, e.PublishingStarted):
                    assert platform not in ev.platforms, f"{platform} published twice"

    # Settling is announced exactly once, when it happens.
    became_published = after.status is S.PUBLISHED and before.status is not S.PUBLISHED
    became_failed = after.status is S.FAILED and before.status is not S.FAILED
    assert any(isinstance(ev, e.ItemPublished) for ev in events) == became_published
    assert any(isinstance(ev, e.ItemFailed) for ev in events) == became_failed
    if after.status is S.PUBLISHED:
        assert after.platform_status and all(
            r.status is PlatformState.PUBLISHED and r.post_id
            for r in after.platform_status.values())
    if after.status is S.FAILED:
        assert any(r.status is PlatformState.FAILED for r in after.platform_status.values())
    if after.status is S.PUBLISHING:
        assert any(not r.resolved for r in after.platform_status.values())
    if after.status in (S.SCHEDULED,):
        assert after.scheduled_at is not None and after.scheduled_at.utcoffset() == timedelta(0)


class ItemLifecycle(RuleBasedStateMachine):
    """One item, its owner, a stranger, the scheduler, a publisher and honest platforms."""

    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self.item = claimed_item(claimed_at=NOW)
        self.ever_published: dict[Platform, str] = {}
        #: Per platform, the idempotency keys under which the fake platform created a post.
        self.posts: dict[Platform, dict[int, str]] = {p: {} for p in Platform}
        #: Per platform, the keys it refused for good (4xx); it answers a repeat the same way.
        self.refused: dict[Platform, set[int]] = {p: set() for p in Platform}
        #: Answers sent by platforms, not yet delivered; and every answer ever sent.
        self.undelivered: list[c.RecordPlatformResult] = []
        self.sent: list[c.RecordPlatformResult] = []

    # -- applying a command ----------------------------------------------------------------

    def apply(self, command: object, actor: str | None = OWNER) -> None:
        before = self.item
        try:
            decision = decide(before, as_actor(actor), command, self.now, POLICY)
        except DomainError:
            return
        check_step(before, command, decision.item, decision.events)
        self.item = decision.item
        for platform, row in self.item.platform_status.items():
            if row.status is PlatformState.PUBLISHED:
                self.ever_published.setdefault(platform, row.post_id)

    def when(self, lead_seconds: int, zone: str, with_offset: bool) -> tuple[str, str | None]:
        moment = self.now + timedelta(seconds=lead_seconds)
        if with_offset:
            return moment.isoformat(), None
        try:
            local = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        except Exception:
            local = moment.replace(tzinfo=None)
        return local.isoformat(), zone

    # -- where the item's life starts (through `decide`, so every step is checked) -------

    @initialize(start=st.sampled_from(["claimed", "scheduled", "publishing", "publishing"]),
                platforms=st.lists(st.sampled_from(PLATFORM_NAMES), min_size=1, max_size=4,
                                   unique=True))
    def start(self, start, platforms):
        if start == "scheduled":
            self.apply(c.Schedule(platforms, (self.now + timedelta(hours=1)).isoformat()))
        elif start == "publishing":
            self.apply(c.Publish(platforms))

    # -- the clock -------------------------------------------------------------------------

    @rule(seconds=st.one_of(st.integers(0, 600), st.sampled_from([3600, 86400])))
    def time_passes(self, seconds):
        self.now += timedelta(seconds=seconds)

    # -- the owner ---------------------------------------------------------------------------

    @rule(command=st.one_of(
        st.builds(c.AddOverlay, st.sampled_from(["intro", "outro", "bumper"]),
                  st.sampled_from([0.0, 0.5, 2.999, 3.0, 3.001])),
        st.just(c.RequestDownload())))
    def owner_edits_or_downloads(self, command):
        self.apply(command)

    @rule(platforms=platform_lists, lead=leads, zone=zones, with_offset=st.booleans())
    def schedule(self, platforms, lead, zone, with_offset):
        at, tz = self.when(lead, zone, with_offset)
        self.apply(c.Schedule(platforms, at, tz))

    @rule(lead=leads, zone=zones, with_offset=st.booleans())
    def reschedule(self, lead, zone, with_offset):
        at, tz = self.when(lead, zone, with_offset)
        self.apply(c.Reschedule(at, tz))

    @rule(platforms=platform_lists)
    def publish(self, platforms):
        self.apply(c.Publish(platforms))

    @precondition(lambda self: self.item.status is S.FAILED)
    @rule()
    def retry(self):
        self.apply(c.Retry())

    @rule()
    def retry_whenever(self):
        self.apply(c.Retry())

    @rule(command=st.sampled_from([c.AddOverlay("intro", 1.0), c.Publish(["tiktok"]),
                                   c.Retry(), c.Reschedule("2026-03-02T12:00:00+00:00"),
                                   c.RequestDownload()]),
          actor=st.sampled_from([STRANGER, None]))
    def someone_else_tries(self, command, actor):
        before = self.item
        try:
            decide(before, as_actor(actor), command, self.now, POLICY)
        except NotFound as err:  # someone else's item is answered as a missing one
            assert err.details == {"item_id": before.id}
        else:
            raise AssertionError("a stranger changed the item")

    # -- the scheduler -----------------------------------------------------------------------

    @precondition(lambda self: self.item.scheduled_at is not None)
    @rule(late=st.one_of(st.integers(-60, 60), st.integers(3590, 3610)), stale=st.booleans())
    def scheduler_finds_it_due(self, late, stale):
        seen = self.item.scheduled_at - (timedelta(hours=1) if stale else timedelta(0))
        self.now = max(self.now, self.item.scheduled_at + timedelta(seconds=late))
        self.apply(c.PublishDue(seen))

    # -- the publisher and the platforms ---------------------------------------------------

    def claimable(self) -> list[Platform]:
        """What leasing would pick: pending, or a lease that ran out."""
        if self.item.status is not S.PUBLISHING:
            return []
        return [p for p, r in self.item.platform_status.items()
                if r.status in (PlatformState.PENDING, PlatformState.PUBLISHING)]

    @precondition(lambda self: self.claimable())
    @rule(data=st.data())
    def publisher_makes_attempts(self, data):
        platforms = data.draw(st.lists(st.sampled_from(self.claimable()), min_size=1,
                                       unique=True))
        for platform in platforms:
            self.attempt(platform, data.draw(REPLIES), data.draw(st.none() | st.sampled_from(
                [1.0, 30.0, 1000.0])), data.draw(st.floats(0, 1, exclude_max=True)))

    def attempt(self, platform: Platform, reply: str, retry_after, jitter) -> None:
        row = self.item.platform_status[platform]
        assert platform not in self.ever_published, f"{platform} is being posted again"
        self.now = max(self.now, row.next_attempt_at or self.now)
        # Leasing records the attempt before the call (a row update, no new version).
        row = replace(row, status=PlatformState.PUBLISHING, attempts=row.attempts + 1,
                      next_attempt_at=self.now + LEASE)
        self.item = replace(self.item, platform_status={**self.item.platform_status,
                                                        platform: row})
        key = row.key_attempt
        posts = self.posts[platform]
        if key in posts:  # the platform recognises the key: 409 with the post
            answer = c.RecordPlatformResult(platform.value, key, "published", posts[key],
                                            f"https://x/{posts[key]}")
        elif key in self.refused[platform]:  # a definite refusal is repeated for its key
            answer = c.RecordPlatformResult(platform.value, key, "rejected", error="400 again")
        elif reply in ("published", "posted_but_timed_out"):
            posts[key] = f"{platform.value}-{key}-{len(posts)}"
            answer = (c.RecordPlatformResult(platform.value, key, "published", posts[key],
                                             f"https://x/{posts[key]}")
                      if reply == "published" else
                      c.RecordPlatformResult(platform.value, key, "transient",
                                             error="timeout", jitter=jitter))
        elif reply == "transient":
            answer = c.RecordPlatformResult(platform.value, key, "transient", error="429",
                                            retry_after=retry_after, jitter=jitter)
        elif reply == "rejected":
            self.refused[platform].add(key)
            answer = c.RecordPlatformResult(platform.value, key, "rejected", error="400 nope")
        else:
            return  # the publisher crashed: no answer; the lease will run out
        self.undelivered.append(answer)
        self.sent.append(answer)

    @precondition(lambda self: self.undelivered)
    @rule(data=st.data())
    def answers_arrive_in_any_order(self, data):
        order = data.draw(st.permutations(range(len(self.undelivered))))
        count = data.draw(st.integers(1, len(order)))
        chosen = [self.undelivered[i] for i in order[:count]]
        self.undelivered = [a for i, a in enumerate(self.undelivered) if i not in order[:count]]
        for answer in chosen:
            self.apply(answer)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def an_old_answer_is_delivered_again(self, data):
        self.apply(data.draw(st.sampled_from(self.sent)))

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def each_platform_is_posted_at_most_once(self):
        for platform, posts in self.posts.items():
            assert len(posts) <= 1, f"{platform} posted {len(posts)} times: {posts}"

    @invariant()
    def a_published_platform_keeps_its_first_post(self):
        for platform, post_id in self.ever_published.items():
            row = self.item.platform_status[platform]
            assert row.status is PlatformState.PUBLISHED and row.post_id == post_id

    @invariant()
    def only_targeted_platforms_have_rows(self):
        if self.item.status in (S.PUBLISHING, S.PUBLISHED, S.FAILED):
            assert set(self.item.platform_status) == set(self.item.platforms)


ItemLifecycle.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestItemLifecycle = ItemLifecycle.TestCase


# --- the same properties over plain lists of commands ---------------------------------------

any_command = st.one_of(
    st.builds(c.AddOverlay, st.sampled_from(["intro", "outro", "x"]),
              st.sampled_from([0.0, 1.0, 3.0, 3.5])),
    st.builds(lambda ps, lead: c.Schedule(ps, (NOW + timedelta(seconds=lead)).isoformat()),
              platform_lists, leads),
    st.builds(lambda lead: c.Reschedule((NOW + timedelta(seconds=lead)).isoformat()), leads),
    st.builds(c.Publish, platform_lists),
    st.just(c.Retry()),
    st.just(c.RequestDownload()),
    st.builds(lambda lead: c.PublishDue(NOW + timedelta(seconds=lead)), leads),
    st.builds(c.RecordPlatformResult, st.sampled_from(PLATFORM_NAMES), st.integers(1, 3),
              st.sampled_from(["published", "transient", "rejected"]),
              st.just("post-1"), st.none(), st.just("boom"),
              st.none() | st.floats(0, 600), st.floats(0, 1, exclude_max=True)),
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(any_command, st.integers(0, 4 * 3600),
                                st.sampled_from([OWNER, OWNER, OWNER, STRANGER])),
                      max_size=30))
def test_random_command_sequences_never_leave_the_state_machine(steps):
    item, now = claimed_item(), NOW
    for command, elapsed, actor in steps:
        now += timedelta(seconds=elapsed)
        try:
            decision = decide(item, as_actor(actor), command, now, POLICY)
        except DomainError as err:
            if actor == STRANGER and not isinstance(command, (c.PublishDue,
                                                              c.RecordPlatformResult)):
                assert isinstance(err, NotFound)
            continue
        assert actor == OWNER or isinstance(command, (c.PublishDue, c.RecordPlatformResult))
        check_step(item, command, decision.item, decision.events)
        item = decision.item
