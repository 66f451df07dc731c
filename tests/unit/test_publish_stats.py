"""The live statistics' arithmetic: a batch of outcome events tallied per platform, tallies
added into the window's buckets."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from tables.publish_stats import BUCKET_SECONDS, add, bucket, platform_tally, tally_outcomes

NOW = 1_800_000_000.0


def event(at: float, *results: tuple[str, str]) -> bytes:
    return json.dumps({"occurred_at": datetime.fromtimestamp(at, timezone.utc).isoformat(),
                       "data": {"results": [{"platform": p, "status": s}
                                            for p, s in results]}}).encode()


def test_a_batch_is_tallied_per_platform_outcome_and_minute_and_unreadable_events_left_out():
    minute = str(bucket(NOW))
    earlier = str(bucket(NOW - BUCKET_SECONDS))
    values = [event(NOW, ("tiktok", "published"), ("youtube", "failed")),
              event(NOW, ("tiktok", "published"), ("youtube", "retrying")),
              event(NOW - BUCKET_SECONDS, ("tiktok", "failed")),
              b"not json", json.dumps({"data": {}}).encode(),
              json.dumps({"occurred_at": "2026-01-01T00:00:00+00:00",
                          "data": {"results": ["not an object"]}}).encode()]
    assert tally_outcomes(values) == {
        "tiktok": {"published": {minute: 2}, "failed": {earlier: 1}},
        "youtube": {"failed": {minute: 1}}}


def test_a_tally_adds_to_the_counts_and_what_left_the_window_is_dropped():
    window = 3600
    old, recent = str(bucket(NOW - window - BUCKET_SECONDS)), str(bucket(NOW - 120))
    counts = {"published": {old: 5, recent: 2}}
    tally = {"published": {recent: 3, old: 1}, "failed": {recent: 1}}
    assert add(counts, tally, NOW, window) == {"published": {recent: 5},
                                               "failed": {recent: 1}}


def test_a_message_of_one_outcome_from_before_tallies_counts_as_a_tally_of_one():
    assert platform_tally({"platform": "tiktok", "outcome": "failed", "at": NOW}) == (
        "tiktok", {"failed": {str(bucket(NOW)): 1}})
    assert platform_tally({"platform": "tiktok", "tally": {"published": {"60": 2}}}) == (
        "tiktok", {"published": {"60": 2}})
