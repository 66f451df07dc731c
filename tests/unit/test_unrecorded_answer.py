"""A platform's answer whose command failed in the handler: what stands in for it."""

from __future__ import annotations

from app.domain.model import ErrorClass, Outcome
from app.publishing import unrecorded_answer
from app.wire import PlatformResultCommand, PlatformResultPayload


def answer(**payload) -> PlatformResultCommand:
    return PlatformResultCommand(command_id="result:k:1:abc", item_id="item-1",
                                 payload=PlatformResultPayload(platform="tiktok", key_attempt=1,
                                                               attempt=1, **payload))


def test_the_platform_is_left_unknown_naming_the_outcome_and_post_without_its_text():
    said = answer(outcome=Outcome.PUBLISHED, post_id="post\u00007", post_url="https://x/7",
                  error="text\u0000that failed")
    stand_in = unrecorded_answer(said, ValueError("boom"))
    payload = stand_in.payload
    assert stand_in.command_id == "result:k:1:abc:unrecorded"  # applied once, like any other
    assert (stand_in.item_id, payload.platform, payload.key_attempt, payload.attempt) == (
        "item-1", "tiktok", 1, 1)
    assert (payload.outcome, payload.reason_code, payload.post_id, payload.post_url) == (
        Outcome.UNKNOWN, "answer_not_recorded", None, None)
    assert payload.error == ("the platform's answer (published, post id 'post\\x007') could "
                             "not be recorded: ValueError")
    assert "\u0000" not in payload.error


def test_a_failure_is_named_by_its_outcome():
    said = answer(outcome=Outcome.REJECTED, error_class=ErrorClass.PERMANENT, error="no")
    payload = unrecorded_answer(said, RuntimeError()).payload
    assert payload.error_class is None and payload.retry_after is None
    assert payload.error == "the platform's answer (rejected) could not be recorded: RuntimeError"
