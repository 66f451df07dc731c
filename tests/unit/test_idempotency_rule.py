"""What a request finds when its Idempotency-Key was used before (the pure rule)."""

from datetime import datetime, timedelta, timezone

import pytest

from app.db.idempotency import Run, StoredAnswer, request_hash, reuse
from app.domain.errors import IdempotencyKeyInUse, IdempotencyKeyMismatch

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def record(body_hash="h1", locked_until=None, status=None, body=None):
    return {"request_hash": body_hash, "command_id": "http:abc", "locked_until": locked_until,
            "response_status": status, "response_body": body}


def test_the_same_body_after_an_answer_gets_the_stored_answer():
    found = reuse(record(status=200, body={"id": "x"}), "h1", NOW)
    assert found == StoredAnswer(200, {"id": "x"})


def test_another_body_with_the_same_key_is_a_mismatch_even_while_in_flight():
    with pytest.raises(IdempotencyKeyMismatch):
        reuse(record(status=200, body={}), "h2", NOW)
    with pytest.raises(IdempotencyKeyMismatch):
        reuse(record(locked_until=NOW + timedelta(seconds=5)), "h2", NOW)


def test_the_same_key_while_the_first_request_runs_is_in_use_with_a_retry_hint():
    with pytest.raises(IdempotencyKeyInUse) as in_use:
        reuse(record(locked_until=NOW + timedelta(seconds=7)), "h1", NOW)
    assert in_use.value.details["retry_after_seconds"] == 7


def test_a_key_whose_first_request_gave_up_sends_the_same_command_again():
    assert reuse(record(locked_until=NOW - timedelta(seconds=1)), "h1", NOW) == Run("http:abc")


def test_the_fingerprint_ignores_key_order_but_not_values():
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})
