"""Backoff between a platform's attempts: exponential, capped, Retry-After as a floor."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.retry import backoff_seconds, gives_up
from app.domain.rules import Policy

POLICY = Policy()  # base 2 s, cap 300 s, 5 attempts
JITTERS = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def test_the_first_attempt_waits_between_half_and_all_of_the_base_delay():
    assert backoff_seconds(1, POLICY, 0.0) == 1.0
    assert backoff_seconds(1, POLICY, 0.5) == 1.5
    assert 1.0 <= backoff_seconds(1, POLICY, 0.999999) < 2.0


def test_no_attempt_yet_is_treated_like_the_first():
    assert backoff_seconds(0, POLICY, 0.3) == backoff_seconds(1, POLICY, 0.3)


def test_the_backoff_doubles_with_each_attempt():
    delays = [backoff_seconds(n, POLICY, 0.0) for n in range(1, 8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]


def test_the_backoff_is_capped_at_the_maximum():
    assert backoff_seconds(9, POLICY, 0.0) == 150.0      # 2 * 2**8 = 512 -> capped at 300
    assert backoff_seconds(50, POLICY, 0.0) == 150.0
    assert backoff_seconds(50, POLICY, 0.999) < POLICY.backoff_max_seconds
    assert backoff_seconds(1000, POLICY, 0.5) == 225.0


def test_the_base_and_the_cap_are_settings():
    policy = Policy(backoff_base_seconds=10.0, backoff_max_seconds=40.0)
    assert [backoff_seconds(n, policy, 0.0) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 20.0]


def test_retry_after_is_a_floor_when_it_is_longer_than_the_backoff():
    assert backoff_seconds(1, POLICY, 0.0, retry_after=30.0) == 30.0


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it():
    assert backoff_seconds(5, POLICY, 0.0, retry_after=1.0) == 16.0


def test_retry_after_of_zero_changes_nothing():
    assert backoff_seconds(3, POLICY, 0.5, retry_after=0.0) == backoff_seconds(3, POLICY, 0.5)


def test_retry_after_beyond_the_cap_is_held_to_the_cap():
    # A platform asking for a day is retried after the cap: a bound against absurd values.
    assert backoff_seconds(1, POLICY, 0.0, retry_after=86_400.0) == POLICY.backoff_max_seconds


def test_a_larger_jitter_never_gives_a_shorter_delay():
    values = [backoff_seconds(3, POLICY, j / 10) for j in range(10)]
    assert values == sorted(values)


def test_the_platform_is_given_up_after_the_maximum_number_of_attempts():
    assert not gives_up(POLICY.max_platform_attempts - 1, POLICY)
    assert gives_up(POLICY.max_platform_attempts, POLICY)
    assert gives_up(POLICY.max_platform_attempts + 1, POLICY)
    assert not gives_up(0, POLICY)


def test_the_maximum_number_of_attempts_is_a_setting():
    assert gives_up(1, Policy(max_platform_attempts=1))
    assert not gives_up(9, Policy(max_platform_attempts=10))


@settings(max_examples=300, deadline=None)
@given(attempts=st.integers(0, 1000), jitter=JITTERS)
def test_with_jitter_in_0_to_1_the_delay_lies_in_the_upper_half_of_its_ceiling(attempts, jitter):
    ceiling = min(POLICY.backoff_max_seconds,
                  POLICY.backoff_base_seconds * 2 ** max(attempts - 1, 0))
    delay = backoff_seconds(attempts, POLICY, jitter)
    # `<=`: with jitter a hair under 1, float rounding may land exactly on the ceiling.
    assert ceiling / 2 <= delay <= ceiling


@settings(max_examples=300, deadline=None)
@given(attempts=st.integers(0, 1000), jitter=JITTERS,
       retry_after=st.none() | st.floats(0, 10**7, allow_nan=False))
def test_the_delay_is_positive_never_over_the_cap_and_never_under_retry_after(
        attempts, jitter, retry_after):
    delay = backoff_seconds(attempts, POLICY, jitter, retry_after)
    assert 0 < delay <= POLICY.backoff_max_seconds
    if retry_after is not None:
        assert delay >= min(retry_after, POLICY.backoff_max_seconds)


@settings(max_examples=200, deadline=None)
@given(attempts=st.integers(1, 40), jitter=JITTERS)
def test_the_delay_never_shrinks_as_attempts_grow(attempts, jitter):
    later = backoff_seconds(attempts + 1, POLICY, jitter)
    assert later >= backoff_seconds(attempts, POLICY, jitter)


@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5])
def test_the_sum_of_waits_over_the_allowed_attempts_is_bounded(attempts):
    total = sum(backoff_seconds(n, POLICY, 0.999) for n in range(1, attempts + 1))
    assert total < 2 * POLICY.backoff_base_seconds * 2 ** attempts
