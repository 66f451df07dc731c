"""The state machine of DESIGN §1: every legal transition, every illegal one, and publishing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from app.domain import commands as c
from app.domain import events as e
from app.domain.errors import (Forbidden, InvalidRequest, InvalidStateTransition, NotFound, RuleViolation,
                               UnsupportedPlatform)
from app.domain.model import (ErrorClass, Item, Overlay, OverlayType, Platform, PlatformState,
                              PlatformStatus, Publication, Status)
from app.domain.retry import backoff_seconds
from app.domain.rules import Policy
from app.domain.transitions import ALLOWED_FROM, MISSED, decide

from .builders import (NOW, OWNER, POLICY, STRANGER, answer, apply, claimed_item,
                       failed_item, item_in, lease_attempt, published_item, publishing_item,
                       result, scheduled_item)

TIKTOK, INSTAGRAM, YOUTUBE = Platform.TIKTOK, Platform.INSTAGRAM, Platform.YOUTUBE
IN_AN_HOUR = (NOW + timedelta(hours=1)).isoformat()
IN_TWO_HOURS = (NOW + timedelta(hours=2)).isoformat()

#: What DESIGN §1 allows each user command to start from, written out independently.
EXPECTED_ALLOWED_FROM = {
    c.AddOverlay: {Status.CLAIMED, Status.SCHEDULED},       # only before publishing starts
    c.Schedule: {Status.CLAIMED},
    c.Reschedule: {Status.SCHEDULED},
    c.Publish: {Status.CLAIMED, Status.SCHEDULED},
    c.Retry: {Status.FAILED},
    c.RequestDownload: set(Status),
}

#: A valid instance of each user command, usable from any status it is allowed in.
VALID_COMMAND = {
    c.AddOverlay: c.AddOverlay("intro", 2.5),
    c.Schedule: c.Schedule(["tiktok"], IN_AN_HOUR),
    c.Reschedule: c.Reschedule(IN_TWO_HOURS),
    c.Publish: c.Publish(["tiktok"]),
    c.Retry: c.Retry(),
    c.RequestDownload: c.RequestDownload(),
}

#: The status each user command leads to from a status it is allowed in (None: unchanged).
LEADS_TO = {
    c.AddOverlay: None,
    c.Schedule: Status.SCHEDULED,
    c.Reschedule: Status.SCHEDULED,
    c.Publish: Status.PUBLISHING,
    c.Retry: Status.PUBLISHING,
    c.RequestDownload: None,
}

LEGAL_CASES = [(cmd, status) for cmd, allowed in EXPECTED_ALLOWED_FROM.items()
               for status in Status if status in allowed]
ILLEGAL_CASES = [(cmd, status) for cmd, allowed in EXPECTED_ALLOWED_FROM.items()
                 for status in Status if status not in allowed]


def case_id(case) -> str:
    return f"{case[0].__name__}-from-{case[1].value}"


# --- the table itself ---------------------------------------------------------------------

def test_the_allowed_from_table_is_exactly_the_state_machine_of_the_design():
    assert {k: set(v) for k, v in ALLOWED_FROM.items()} == EXPECTED_ALLOWED_FROM


@pytest.mark.parametrize("case", LEGAL_CASES, ids=case_id)
def test_every_user_command_is_carried_out_from_each_status_it_is_allowed_in(case):
    command_type, status = case
    item = item_in(status)
    decision = apply(item, VALID_COMMAND[command_type])
    assert decision.item.status is (LEADS_TO[command_type] or status)
    assert decision.events


@pytest.mark.parametrize("case", ILLEGAL_CASES, ids=case_id)
def test_every_user_command_from_a_status_it_is_not_allowed_in_is_an_invalid_state_transition(case):
    command_type, status = case
    item = item_in(status)
    with pytest.raises(InvalidStateTransition) as err:
        apply(item, VALID_COMMAND[command_type])
    assert err.value.code == "invalid_state_transition"
    assert err.value.details["status"] == status.value
    assert set(err.value.details["allowed_from"]) == {
        s.value for s in EXPECTED_ALLOWED_FROM[command_type]}


def test_reschedule_from_claimed_is_an_invalid_state_transition():
    with pytest.raises(InvalidStateTransition):
        apply(claimed_item(), c.Reschedule(IN_AN_HOUR))


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.FAILED])
def test_retry_is_only_allowed_from_failed(status):
    with pytest.raises(InvalidStateTransition):
        apply(item_in(status), c.Retry())


def test_an_item_cannot_be_scheduled_twice():
    with pytest.raises(InvalidStateTransition):
        apply(scheduled_item(), c.Schedule(["tiktok"], IN_TWO_HOURS))


def test_an_overlay_cannot_be_added_once_publishing_has_started():
    with pytest.raises(InvalidStateTransition):
        apply(publishing_item(), c.AddOverlay("outro", 1.0))


# --- ownership ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", LEGAL_CASES, ids=case_id)
def test_every_user_command_of_another_influencer_is_answered_as_not_found(case):
    command_type, status = case
    item = item_in(status)
    with pytest.raises(NotFound) as err:
        apply(item, VALID_COMMAND[command_type], actor=STRANGER)
    assert err.value.code == "not_found"
    assert err.value.details == {"item_id": item.id}


def test_a_user_command_without_an_actor_is_answered_as_not_found():
    item = claimed_item()
    with pytest.raises(NotFound) as err:
        apply(item, c.AddOverlay("intro", 1.0), actor=None)
    assert err.value.code == "not_found"
    assert err.value.details == {"item_id": item.id}


def test_ownership_is_checked_before_the_status():
    with pytest.raises(NotFound):
        apply(claimed_item(), c.Retry(), actor=STRANGER)


def test_system_commands_need_no_owner():
    item = scheduled_item()
    assert decide(item, None, c.PublishDue(item.scheduled_at), item.scheduled_at,
                  POLICY).item.status is Status.PUBLISHING
    item = lease_attempt(publishing_item(("tiktok",)), "tiktok")
    assert decide(item, None, result("tiktok", "published"), NOW,
                  POLICY).item.status is Status.PUBLISHED


# --- each legal transition, in detail -----------------------------------------------------

def test_schedule_moves_a_claimed_item_to_scheduled():
    decision = apply(claimed_item(), c.Schedule(["tiktok", "youtube"], IN_AN_HOUR))
    item = decision.item
    assert item.status is Status.SCHEDULED
    assert item.scheduled_at == NOW + timedelta(hours=1)
    assert item.timezone == "UTC"
    assert item.platforms == (TIKTOK, YOUTUBE)
    assert item.version == 2
    assert decision.events == [e.ItemScheduled(NOW + timedelta(hours=1), (TIKTOK, YOUTUBE))]


def test_reschedule_keeps_a_scheduled_item_scheduled_at_its_new_time():
    before = scheduled_item()
    decision = apply(before, c.Reschedule(IN_TWO_HOURS))
    assert decision.item.status is Status.SCHEDULED
    assert decision.item.scheduled_at == NOW + timedelta(hours=2)
    assert decision.item.platforms == before.platforms
    assert decision.item.version == before.version + 1
    assert decision.events == [e.ItemRescheduled(NOW + timedelta(hours=2))]


def test_reschedule_reads_a_local_time_in_the_zone_the_item_was_scheduled_in():
    item = apply(claimed_item(), c.Schedule(["tiktok"], "2026-03-01T14:00:00",
                                            "Europe/Paris")).item
    assert item.timezone == "Europe/Paris"
    moved = apply(item, c.Reschedule("2026-03-01T15:00:00")).item
    assert moved.scheduled_at == NOW + timedelta(hours=2)  # 15:00 CET is 14:00 UTC
    assert moved.timezone == "Europe/Paris"


def test_reschedule_with_an_offset_keeps_the_zone_the_item_is_shown_in():
    item = apply(claimed_item(), c.Schedule(["tiktok"], "2026-03-01T14:00:00",
                                            "Europe/Paris")).item
    moved = apply(item, c.Reschedule("2026-03-01T16:00:00+00:00")).item
    assert moved.scheduled_at == NOW + timedelta(hours=4)
    assert moved.timezone == "Europe/Paris"


def test_publish_moves_a_claimed_item_to_publishing_with_one_pending_row_per_platform():
    decision = apply(claimed_item(), c.Publish(["tiktok", "instagram", "tiktok"]))
    item = decision.item
    assert item.status is Status.PUBLISHING
    assert item.platforms == (TIKTOK, INSTAGRAM)
    assert set(item.platform_status) == {TIKTOK, INSTAGRAM}
    for platform, row in item.platform_status.items():
        assert row == PlatformStatus(platform, next_attempt_at=NOW)
    assert item.version == 2
    assert decision.events == [e.PublishingStarted((TIKTOK, INSTAGRAM))]


def test_publish_now_moves_a_scheduled_item_to_publishing_on_the_platforms_asked():
    decision = apply(scheduled_item(("tiktok", "instagram")), c.Publish(["youtube"]))
    assert decision.item.status is Status.PUBLISHING
    assert decision.item.platforms == (YOUTUBE,)
    assert set(decision.item.platform_status) == {YOUTUBE}


def test_publish_with_an_unsupported_platform_changes_nothing():
    with pytest.raises(UnsupportedPlatform):
        apply(claimed_item(), c.Publish(["tiktok", "orkut"]))


def test_an_overlay_is_added_to_a_claimed_or_scheduled_item_without_changing_its_status():
    for item in (claimed_item(), scheduled_item()):
        decision = apply(item, c.AddOverlay("intro", 2.5))
        assert decision.item.status is item.status
        assert decision.item.overlays == {OverlayType.INTRO: Overlay(OverlayType.INTRO, 2.5)}
        assert decision.events == [e.OverlayAdded(Overlay(OverlayType.INTRO, 2.5))]


def test_a_second_intro_replaces_the_first():
    item = apply(claimed_item(), c.AddOverlay("intro", 1.0)).item
    item = apply(item, c.AddOverlay("intro", 2.0)).item
    assert item.overlays == {OverlayType.INTRO: Overlay(OverlayType.INTRO, 2.0)}
    assert item.overlays_in_play_order() == [Overlay(OverlayType.INTRO, 2.0)]


def test_an_intro_and_an_outro_are_both_kept_and_play_intro_first():
    item = apply(claimed_item(), c.AddOverlay("outro", 3.0)).item
    item = apply(item, c.AddOverlay("intro", 0.5)).item
    assert item.overlays_in_play_order() == [Overlay(OverlayType.INTRO, 0.5),
                                             Overlay(OverlayType.OUTRO, 3.0)]


def test_an_invalid_overlay_leaves_the_item_as_it_was():
    item = apply(claimed_item(), c.AddOverlay("intro", 1.0)).item
    with pytest.raises(InvalidRequest):
        apply(item, c.AddOverlay("intro", 3.001))
    assert item.overlays[OverlayType.INTRO].duration_seconds == 1.0


@pytest.mark.parametrize("status", list(Status))
def test_a_download_is_recorded_in_every_status_without_changing_the_item(status):
    item = item_in(status)
    decision = apply(item, c.RequestDownload())
    assert decision.item == item
    assert decision.events == [e.DownloadRequested()]


# --- due publishing -----------------------------------------------------------------------

def test_a_scheduled_item_not_yet_due_is_left_alone():
    item = scheduled_item()
    decision = apply(item, c.PublishDue(item.scheduled_at),
                     now=item.scheduled_at - timedelta(seconds=1))
    assert decision.item is item and decision.events == []


def test_a_due_command_for_a_time_the_item_was_rescheduled_from_does_nothing():
    item = scheduled_item()
    old_time = item.scheduled_at
    item = apply(item, c.Reschedule(IN_TWO_HOURS)).item
    decision = apply(item, c.PublishDue(old_time), now=old_time)
    assert decision.item is item and decision.events == []


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.SCHEDULED])
def test_a_due_command_for_an_item_no_longer_scheduled_does_nothing(status):
    item = item_in(status)
    decision = apply(item, c.PublishDue(NOW + timedelta(hours=1)), now=NOW + timedelta(hours=1))
    assert decision.item is item and decision.events == []


def test_a_due_item_is_published_on_its_platforms():
    item = scheduled_item(("tiktok", "instagram"))
    decision = apply(item, c.PublishDue(item.scheduled_at), now=item.scheduled_at)
    assert decision.item.status is Status.PUBLISHING
    assert set(decision.item.platform_status) == {TIKTOK, INSTAGRAM}
    assert all(r.status is PlatformState.PENDING and r.next_attempt_at == item.scheduled_at
               for r in decision.item.platform_status.values())
    assert decision.item.version == item.version + 1
    assert decision.events == [e.PublishingStarted((TIKTOK, INSTAGRAM))]


def test_a_due_item_found_exactly_at_the_grace_limit_is_still_published():
    item = scheduled_item()
    decision = apply(item, c.PublishDue(item.scheduled_at),
                     now=item.scheduled_at + POLICY.max_lateness)
    assert decision.item.status is Status.PUBLISHING


def test_a_due_item_found_later_than_the_grace_period_fails_as_missed_without_posting():
    item = scheduled_item(("tiktok", "instagram"))
    now = item.scheduled_at + POLICY.max_lateness + timedelta(seconds=1)
    decision = apply(item, c.PublishDue(item.scheduled_at), now=now)
    new = decision.item
    assert new.status is Status.FAILED
    assert new.failure_reason == MISSED == "missed"
    assert all(r.status is PlatformState.FAILED and r.error == "missed" and r.attempts == 0
               for r in new.platform_status.values())
    assert not any(isinstance(ev, e.PublishingStarted) for ev in decision.events)
    assert decision.events[-1] == e.ItemFailed("missed")
    assert {ev.platform for ev in decision.events if isinstance(ev, e.PlatformFailed)} == {
        TIKTOK, INSTAGRAM}
    assert new.version == item.version + 1


def test_the_grace_period_is_a_setting():
    item = scheduled_item()
    policy = Policy(max_lateness=timedelta(seconds=10))
    late = apply(item, c.PublishDue(item.scheduled_at),
                 now=item.scheduled_at + timedelta(seconds=11), policy=policy)
    assert late.item.status is Status.FAILED


def test_a_missed_item_can_be_retried_on_every_platform():
    item = scheduled_item(("tiktok", "instagram"))
    item = apply(item, c.PublishDue(item.scheduled_at),
                 now=item.scheduled_at + timedelta(hours=2)).item
    decision = apply(item, c.Retry(), now=NOW + timedelta(hours=3))
    assert decision.item.status is Status.PUBLISHING
    assert decision.item.failure_reason is None
    assert decision.events == [e.PublishingStarted((TIKTOK, INSTAGRAM))]


# --- platform results ---------------------------------------------------------------------

def test_a_published_answer_publishes_that_platform_only():
    item = publishing_item(("tiktok", "instagram"))
    decision = answer(item, "tiktok", "published", post_id="p1", post_url="https://t/p1")
    row = decision.item.platform_status[TIKTOK]
    assert row.status is PlatformState.PUBLISHED
    assert (row.post_id, row.post_url, row.published_at) == ("p1", "https://t/p1", NOW)
    assert row.next_attempt_at is None and row.error is None
    assert decision.item.status is Status.PUBLISHING
    assert decision.item.platform_status[INSTAGRAM].status is PlatformState.PENDING
    assert decision.events == [e.PlatformPublished(TIKTOK, 1, "p1", "https://t/p1")]


def test_a_transient_answer_schedules_another_attempt_with_backoff():
    item = publishing_item(("tiktok",))
    decision = answer(item, "tiktok", "transient", error="503", jitter=0.25)
    row = decision.item.platform_status[TIKTOK]
    delay = backoff_seconds(1, POLICY, 0.25)
    assert row.status is PlatformState.PENDING
    assert row.next_attempt_at == NOW + timedelta(seconds=delay)
    assert row.error == "503"
    assert row.key_attempt == 1  # the next attempt reuses the key
    assert decision.item.retry_count == 1
    assert decision.item.status is Status.PUBLISHING
    assert decision.events == [e.PlatformRetryScheduled(TIKTOK, 1, "503", row.next_attempt_at)]


def test_each_transient_answer_raises_the_retry_count_and_the_backoff():
    item = publishing_item(("tiktok",))
    delays = []
    for n in range(1, 4):
        item = answer(item, "tiktok", "transient", error="timeout", jitter=0.0).item
        assert item.retry_count == n
        delays.append(item.platform_status[TIKTOK].next_attempt_at - NOW)
    assert delays[1] == 2 * delays[0] and delays[2] == 2 * delays[1]


def test_a_transient_answer_honours_the_platforms_retry_after():
    item = publishing_item(("tiktok",))
    row = answer(item, "tiktok", "transient", error="429", retry_after=120.0,
                 jitter=0.0).item.platform_status[TIKTOK]
    assert row.next_attempt_at == NOW + timedelta(seconds=120)


def test_a_transient_answer_to_the_last_allowed_attempt_fails_the_platform_keeping_its_key():
    item = publishing_item(("tiktok",))
    for _ in range(POLICY.max_platform_attempts - 1):
        item = answer(item, "tiktok", "transient", error="503").item
        assert item.platform_status[TIKTOK].status is PlatformState.PENDING
    decision = answer(item, "tiktok", "transient", error="503")
    row = decision.item.platform_status[TIKTOK]
    assert row.attempts == POLICY.max_platform_attempts
    assert row.status is PlatformState.FAILED
    assert row.key_attempt == 1  # the post may have gone through: a retry reuses the key
    assert row.error == "503"
    assert decision.item.status is Status.FAILED
    assert decision.events == [e.PlatformFailed(TIKTOK, 5, "503"), e.ItemFailed("failed on tiktok")]


def test_a_rejected_answer_fails_the_platform_for_good_and_advances_its_key():
    item = publishing_item(("tiktok",))
    decision = answer(item, "tiktok", "rejected", error="caption rejected")
    row = decision.item.platform_status[TIKTOK]
    assert row.status is PlatformState.FAILED
    assert row.error == "caption rejected"
    assert row.key_attempt == 2
    assert decision.item.retry_count == 0
    assert decision.events[0] == e.PlatformFailed(TIKTOK, 1, "caption rejected")


def test_a_rejected_answer_without_a_message_still_carries_an_error():
    decision = answer(publishing_item(("tiktok",)), "tiktok", "rejected")
    assert decision.item.platform_status[TIKTOK].error


def test_a_transient_answer_to_a_superseded_attempt_is_ignored():
    item = publishing_item(("tiktok", "instagram"))
    item = answer(item, "tiktok", "rejected").item  # tiktok failed, key now 2
    item = apply(item, result("instagram", "rejected")).item
    item = apply(item, c.Retry()).item
    item = lease_attempt(item, "tiktok")
    for stale in (result("tiktok", "transient", key=1), result("tiktok", "rejected", key=1)):
        decision = apply(item, stale)
        assert decision.item is item and decision.events == []


def test_a_repeated_answer_for_a_settled_platform_is_ignored():
    item = publishing_item(("tiktok", "instagram"))
    item = answer(item, "tiktok", "published", post_id="p1").item
    for repeat in (result("tiktok", "published", post_id="p2"),
                   result("tiktok", "rejected"), result("tiktok", "transient")):
        decision = apply(item, repeat)
        assert decision.item is item and decision.events == []
    assert item.platform_status[TIKTOK].post_id == "p1"


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.PUBLISHING])
def test_an_answer_for_an_item_that_is_not_publishing_is_ignored(status):
    item = item_in(status)
    decision = apply(item, result("tiktok", "published"))
    assert decision.item is item and decision.events == []


def test_an_answer_for_a_platform_the_item_does_not_target_is_ignored():
    item = publishing_item(("tiktok",))
    decision = apply(item, result("youtube", "published"))
    assert decision.item is item


def test_an_answer_for_an_unknown_platform_is_an_unsupported_platform():
    with pytest.raises(UnsupportedPlatform):
        apply(publishing_item(), result("friendster", "published"))


def test_the_item_is_published_only_when_every_platform_is_published():
    item = publishing_item(("tiktok", "instagram", "youtube"))
    item = answer(item, "tiktok", "published").item
    assert item.status is Status.PUBLISHING
    item = answer(item, "youtube", "published").item
    assert item.status is Status.PUBLISHING
    decision = answer(item, "instagram", "published")
    assert decision.item.status is Status.PUBLISHED
    assert decision.item.failure_reason is None
    assert decision.events[-1] == e.ItemPublished()
    assert all(r.post_id for r in decision.item.platform_status.values())


def test_the_item_stays_publishing_while_a_platform_is_still_pending_after_another_failed():
    item = publishing_item(("tiktok", "instagram"))
    decision = answer(item, "instagram", "rejected")
    assert decision.item.status is Status.PUBLISHING
    assert not any(isinstance(ev, e.ItemFailed) for ev in decision.events)


def test_the_item_fails_once_all_platforms_resolved_with_one_failed_and_keeps_the_others_posts():
    item = publishing_item(("tiktok", "instagram"))
    item = answer(item, "instagram", "rejected", error="too long").item
    decision = answer(item, "tiktok", "published", post_id="p1")
    assert decision.item.status is Status.FAILED
    assert decision.item.failure_reason == "failed on instagram"
    assert decision.events[-1] == e.ItemFailed("failed on instagram")
    tiktok = decision.item.platform_status[TIKTOK]
    assert tiktok.status is PlatformState.PUBLISHED and tiktok.post_id == "p1"


def test_the_failure_reason_names_every_failed_platform():
    item = publishing_item(("tiktok", "instagram", "youtube"))
    item = answer(item, "youtube", "rejected").item
    item = answer(item, "tiktok", "rejected").item
    item = answer(item, "instagram", "published").item
    assert item.failure_reason == "failed on tiktok, youtube"


def test_an_answer_from_a_publisher_whose_lease_ran_out_still_counts():
    item = publishing_item(("tiktok",))
    item = lease_attempt(item, "tiktok")
    item = lease_attempt(item, "tiktok", now=NOW + timedelta(minutes=5))  # the lease taken again
    decision = apply(item, result("tiktok", "published", key=1))
    assert decision.item.status is Status.PUBLISHED


# --- retry --------------------------------------------------------------------------------

def test_retry_re_publishes_only_the_platforms_that_failed():
    item = failed_item()
    tiktok_before = item.platform_status[TIKTOK]
    decision = apply(item, c.Retry(), now=NOW + timedelta(minutes=10))
    new = decision.item
    assert new.status is Status.PUBLISHING
    assert decision.events == [e.PublishingStarted((INSTAGRAM,))]
    instagram = new.platform_status[INSTAGRAM]
    assert instagram.status is PlatformState.PENDING
    assert (instagram.attempts, instagram.error) == (0, None)
    assert instagram.next_attempt_at == NOW + timedelta(minutes=10)
    assert instagram.key_attempt == 2  # the refused attempt's key is not reused
    tiktok = new.platform_status[TIKTOK]
    assert tiktok == replace(tiktok_before, in_round=False)
    assert tiktok.status is PlatformState.PUBLISHED


def test_retry_resets_the_retry_counter_and_the_failure_reason():
    item = publishing_item(("tiktok",))
    item = answer(item, "tiktok", "transient").item
    item = answer(item, "tiktok", "rejected").item
    assert item.retry_count == 1 and item.failure_reason
    new = apply(item, c.Retry()).item
    assert new.retry_count == 0 and new.failure_reason is None


def test_after_a_retry_the_published_platform_is_never_posted_again():
    item = apply(failed_item(), c.Retry()).item
    post_id = item.platform_status[TIKTOK].post_id
    # a late duplicate answer for tiktok changes nothing
    assert apply(item, result("tiktok", "published", post_id="other")).item is item
    decision = answer(item, "instagram", "published", post_id="ig-2")
    assert decision.item.status is Status.PUBLISHED
    assert decision.item.platform_status[TIKTOK].post_id == post_id
    assert not any(isinstance(ev, e.PlatformPublished) and ev.platform is TIKTOK
                   for ev in decision.events)


def test_a_retry_after_exhausted_transient_attempts_reuses_the_unresolved_key():
    item = publishing_item(("tiktok",))
    for _ in range(POLICY.max_platform_attempts):
        item = answer(item, "tiktok", "transient").item
    assert item.status is Status.FAILED
    item = apply(item, c.Retry()).item
    row = item.platform_status[TIKTOK]
    assert row.key_attempt == 1 and row.attempts == 0 and row.status is PlatformState.PENDING
    # the platform recognises the key (409 already posted): that counts as published
    assert answer(item, "tiktok", "published").item.status is Status.PUBLISHED


def test_a_retried_platform_gets_the_full_number_of_attempts_again():
    item = publishing_item(("tiktok",))
    for _ in range(POLICY.max_platform_attempts):
        item = answer(item, "tiktok", "transient").item
    item = apply(item, c.Retry()).item
    for _ in range(POLICY.max_platform_attempts - 1):
        item = answer(item, "tiktok", "transient").item
        assert item.status is Status.PUBLISHING


# --- versions -----------------------------------------------------------------------------

def test_the_version_rises_by_exactly_one_per_change():
    item = claimed_item()
    assert item.version == 1
    steps = [c.AddOverlay("intro", 1.0), c.AddOverlay("intro", 2.0),
             c.Schedule(["tiktok", "instagram"], IN_AN_HOUR), c.Reschedule(IN_TWO_HOURS)]
    for expected, command in enumerate(steps, start=2):
        item = apply(item, command).item
        assert item.version == expected
    due = item.scheduled_at
    item = apply(item, c.PublishDue(due), now=due).item
    assert item.version == 6
    item = answer(item, "tiktok", "transient", now=due).item
    assert item.version == 7
    item = answer(item, "tiktok", "published", now=due).item
    assert item.version == 8
    item = answer(item, "instagram", "rejected", now=due).item  # settles to failed: still +1
    assert item.status is Status.FAILED and item.version == 9
    item = apply(item, c.Retry(), now=due).item
    assert item.version == 10
    item = answer(item, "instagram", "published", now=due).item  # settles to published: +1
    assert item.status is Status.PUBLISHED and item.version == 11


def test_publishing_by_hand_raises_the_version_by_one():
    assert apply(claimed_item(), c.Publish(["tiktok"])).item.version == 2
    item = scheduled_item()
    assert apply(item, c.Publish(["tiktok"])).item.version == item.version + 1


def test_nothing_that_is_ignored_raises_the_version():
    item = scheduled_item()
    assert apply(item, c.PublishDue(item.scheduled_at), now=NOW).item.version == item.version
    assert apply(item, c.RequestDownload()).item.version == item.version
    done = published_item()
    assert apply(done, result("tiktok", "published")).item.version == done.version


def test_a_refused_command_leaves_the_original_item_untouched():
    item = claimed_item()
    snapshot = replace(item)
    for bad in (c.Schedule(["tiktok"], NOW.isoformat()), c.Reschedule(IN_AN_HOUR),
                c.AddOverlay("intro", 9.0), c.Publish(["vine"])):
        with pytest.raises((RuleViolation, InvalidRequest, InvalidStateTransition,
                            UnsupportedPlatform)):
            apply(item, bad)
    assert item == snapshot and item.version == 1


def test_a_command_by_the_owner_or_an_operator_is_accepted_and_by_anyone_else_not_found():
    item = claimed_item()
    assert apply(item, c.AddOverlay("intro", 1.0), actor=OWNER).item.version == 2
    assert apply(item, c.AddOverlay("intro", 1.0), actor=STRANGER,
                 operator=True).item.version == 2
    with pytest.raises(NotFound):
        apply(item, c.AddOverlay("intro", 1.0), actor=STRANGER)


def test_the_publication_says_how_publishing_ended_for_the_item_as_a_whole():
    assert claimed_item().publication is None
    assert publishing_item().publication is None
    assert published_item().publication is Publication.PUBLISHED
    assert failed_item().publication is Publication.PARTIALLY_PUBLISHED  # tiktok went out
    item = publishing_item(("instagram",))
    item = answer(item, "instagram", "rejected", error="caption rejected").item
    assert item.publication is Publication.FAILED


# ------------------------------------------------------------------------------------------
# One error taxonomy


def test_a_full_posting_window_defers_to_its_reset_without_spending_an_attempt():
    item = publishing_item(("instagram",))
    reset = 6 * 3600.0  # far past the backoff ceiling: the window's reset is what counts
    decision = answer(item, "instagram", "transient", error="daily limit reached",
                      error_class=ErrorClass.QUOTA, reason_code="2207042", retry_after=reset)
    row = decision.item.platform_status[Platform.INSTAGRAM]
    assert (row.status, row.attempts, row.key_attempt) == (PlatformState.PENDING, 0, 1)
    assert (row.error_class, row.reason_code) == (ErrorClass.QUOTA, "2207042")
    assert row.next_attempt_at == NOW + timedelta(seconds=reset)
    assert decision.item.status is Status.PUBLISHING


@pytest.mark.parametrize("kind", [ErrorClass.PERMANENT, ErrorClass.MEDIA, ErrorClass.POLICY])
def test_a_permanent_media_or_policy_failure_fails_the_platform_at_once(kind):
    decision = answer(publishing_item(("tiktok",)), "tiktok", "transient", error="no",
                      error_class=kind, reason_code="spam_risk")
    row = decision.item.platform_status[Platform.TIKTOK]
    assert (row.status, row.attempts, row.error_class, row.reason_code) == (
        PlatformState.FAILED, 1, kind, "spam_risk")
    assert row.key_attempt == 2  # a definite answer: a later retry is a new attempt
    assert decision.item.status is Status.FAILED


def test_an_answer_without_a_class_is_classed_by_its_outcome():
    transient = answer(publishing_item(("youtube",)), "youtube", "transient", error="503")
    rejected = answer(publishing_item(("youtube",)), "youtube", "rejected", error="400")
    assert transient.item.platform_status[Platform.YOUTUBE].error_class is ErrorClass.TRANSIENT
    assert rejected.item.platform_status[Platform.YOUTUBE].error_class is ErrorClass.PERMANENT


def test_a_retry_clears_the_failed_platforms_class_and_code():
    item = failed_item()
    assert item.platform_status[Platform.INSTAGRAM].error_class is ErrorClass.PERMANENT
    row = apply(item, c.Retry()).item.platform_status[Platform.INSTAGRAM]
    assert (row.error, row.error_class, row.reason_code) == (None, None, None)


# --- direct publishing: in progress, unknown, auth holds, operator resolution -------------

def test_an_auth_failure_holds_the_platform_without_spending_an_attempt_and_asks_for_a_reconnect():
    decision = answer(publishing_item(("tiktok",)), "tiktok", "rejected", error="token refused",
                      error_class=ErrorClass.AUTH, reason_code="access_token_invalid")
    row = decision.item.platform_status[Platform.TIKTOK]
    assert (row.status, row.attempts, row.key_attempt) == (PlatformState.PENDING, 0, 1)
    assert (row.error_class, row.reason_code) == (ErrorClass.AUTH, "access_token_invalid")
    assert row.next_attempt_at == NOW  # due again as soon as the account's hold is lifted
    assert decision.events == [e.AccountNeedsReconnect(OWNER, Platform.TIKTOK,
                                                       "access_token_invalid", "token refused")]
    assert decision.item.status is Status.PUBLISHING


def test_a_platform_still_processing_is_looked_at_again_after_the_poll_interval_for_free():
    decision = answer(publishing_item(("instagram",)), "instagram", "in_progress",
                      reason_code="IN_PROGRESS", retry_after=30.0)
    row = decision.item.platform_status[Platform.INSTAGRAM]
    assert (row.status, row.attempts, row.key_attempt) == (PlatformState.PENDING, 0, 1)
    assert row.next_attempt_at == NOW + timedelta(seconds=30)
    assert (row.error, row.error_class, row.reason_code) == (None, None, "IN_PROGRESS")
    assert decision.events == []


def unknown_item() -> Item:
    decision = answer(publishing_item(("tiktok", "instagram")), "tiktok", "unknown",
                      error="init sent, no publish id, no match", reason_code="init_outcome_unknown")
    return decision.item


def test_an_unknown_outcome_is_kept_for_an_operator_and_the_item_stays_publishing():
    item = unknown_item()
    row = item.platform_status[Platform.TIKTOK]
    assert (row.status, row.reason_code, row.next_attempt_at) == (
        PlatformState.UNKNOWN, "init_outcome_unknown", None)
    assert item.status is Status.PUBLISHING
    # instagram publishes: the item still waits for the operator on tiktok
    done = answer(item, "instagram", "published", post_id="ig-1").item
    assert done.status is Status.PUBLISHING
    # a late answer for the unknown platform changes nothing
    late = apply(done, result("tiktok", "published", 1, post_id="tt-9"))
    assert late.item == done


def test_an_operator_settles_an_unknown_platform_as_published_with_the_post_they_found():
    item = answer(unknown_item(), "instagram", "published", post_id="ig-1").item
    decision = apply(item, c.ResolvePlatform("tiktok", "published", "tt-7", "https://t/7"),
                     actor="operator-1", operator=True)
    row = decision.item.platform_status[Platform.TIKTOK]
    assert (row.status, row.post_id, row.post_url) == (PlatformState.PUBLISHED, "tt-7",
                                                       "https://t/7")
    assert decision.item.status is Status.PUBLISHED
    assert decision.item.publication is Publication.PUBLISHED


def test_an_operator_settles_an_unknown_platform_as_not_published_and_a_retry_may_post_it():
    item = answer(unknown_item(), "instagram", "published", post_id="ig-1").item
    decision = apply(item, c.ResolvePlatform("tiktok", "not_published"), actor="op",
                     operator=True)
    row = decision.item.platform_status[Platform.TIKTOK]
    assert (row.status, row.reason_code, row.key_attempt) == (PlatformState.FAILED,
                                                              "not_published", 2)
    assert decision.item.publication is Publication.PARTIALLY_PUBLISHED
    again = apply(decision.item, c.Retry()).item
    assert again.platform_status[Platform.TIKTOK].status is PlatformState.PENDING


def test_only_an_operator_settles_an_unknown_platform():
    with pytest.raises(Forbidden):
        apply(unknown_item(), c.ResolvePlatform("tiktok", "not_published"))


@pytest.mark.parametrize("command", [c.ResolvePlatform("instagram", "not_published"),
                                     c.ResolvePlatform("youtube", "not_published")])
def test_only_a_platform_whose_outcome_is_unknown_can_be_settled(command):
    with pytest.raises(InvalidStateTransition):
        apply(unknown_item(), command, actor="op", operator=True)


@pytest.mark.parametrize("command,field", [
    (c.ResolvePlatform("tiktok", "published"), "post_id"),
    (c.ResolvePlatform("tiktok", "maybe"), "outcome")])
def test_a_resolution_says_what_was_found(command, field):
    with pytest.raises(InvalidRequest) as err:
        apply(unknown_item(), command, actor="op", operator=True)
    assert err.value.details["field"] == field
