"""The per-caller token bucket, with the clock passed in."""

import pytest

from app.domain.errors import RateLimited
from web.rate_limit import RateLimiter


def test_a_caller_may_spend_the_burst_at_once_and_is_then_refused():
    limiter = RateLimiter(per_second=2, burst=3)
    for _ in range(3):
        limiter.admit("alice", now=100.0)
    with pytest.raises(RateLimited) as refused:
        limiter.admit("alice", now=100.0)
    assert refused.value.code == "rate_limited"
    assert refused.value.details["retry_after_seconds"] == pytest.approx(0.5)


def test_tokens_come_back_at_the_configured_rate():
    limiter = RateLimiter(per_second=2, burst=1)
    limiter.admit("alice", now=0.0)
    with pytest.raises(RateLimited):
        limiter.admit("alice", now=0.4)
    limiter.admit("alice", now=0.5)


def test_one_caller_flooding_does_not_limit_another():
    limiter = RateLimiter(per_second=1, burst=1)
    limiter.admit("alice", now=0.0)
    with pytest.raises(RateLimited):
        limiter.admit("alice", now=0.0)
    limiter.admit("bob", now=0.0)


def test_an_idle_caller_never_saves_more_than_the_burst():
    limiter = RateLimiter(per_second=10, burst=2)
    limiter.admit("alice", now=0.0)
    for _ in range(2):
        limiter.admit("alice", now=3600.0)
    with pytest.raises(RateLimited):
        limiter.admit("alice", now=3600.0)


def test_the_bucket_table_stays_bounded(monkeypatch):
    monkeypatch.setattr("web.rate_limit.MAX_BUCKETS", 10)
    limiter = RateLimiter(per_second=1, burst=1)
    for n in range(100):
        limiter.admit(f"caller-{n}", now=float(n))
    assert len(limiter.buckets) <= 10
