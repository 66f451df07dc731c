"""Live publishing statistics per platform (published and failed counts over a recent
window), rebuilt from the outcome topics; PostgreSQL stays the record.

Outcome events are keyed by item id, but counts are kept per platform: the first agent
re-keys each platform outcome onto a one-partition topic, so one worker owns all counts
and the view routes to it.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime

from app.channels import outcome_topics, platform_outcomes_topic
from app.faust_app import app
from app.topics import encode

log = logging.getLogger("distribution.stats")

BUCKET_SECONDS = 60

publish_stats = app.Table("publish_stats", default=dict, partitions=1)


def bucket(moment: float) -> int:
    return int(moment // BUCKET_SECONDS) * BUCKET_SECONDS


def count_in_window(buckets: dict[str, int], now: float, window_seconds: int) -> int:
    oldest = now - window_seconds
    return sum(n for start, n in buckets.items() if int(start) + BUCKET_SECONDS > oldest)


def add(counts: dict, outcome: str, at: float, now: float, window_seconds: int) -> dict:
    """Counts with one more outcome, and buckets older than the window dropped."""
    fresh = {kind: {b: n for b, n in buckets.items()
                    if int(b) + BUCKET_SECONDS > now - window_seconds}
             for kind, buckets in counts.items()}
    kind = fresh.setdefault(outcome, {})
    key = str(bucket(at))
    kind[key] = kind.get(key, 0) + 1
    return fresh


@app.agent(outcome_topics)
async def split_outcomes(stream):
    async for value in stream:
        try:
            envelope = json.loads(value)
            at = datetime.fromisoformat(envelope["occurred_at"]).timestamp()
            results = envelope["data"]["results"]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("outcome event not counted", extra={"error": repr(exc)})
            continue
        for result in results:
            if result.get("status") in ("published", "failed"):
                await platform_outcomes_topic.send(
                    key=str(result["platform"]).encode(),
                    value=encode({"platform": result["platform"], "outcome": result["status"],
                                  "at": at}))


@app.agent(platform_outcomes_topic)
async def count_outcomes(stream):
    window = app.settings.stats_window_seconds
    async for value in stream:
        outcome = json.loads(value)
        platform = outcome["platform"]
        publish_stats[platform] = add(publish_stats[platform], outcome["outcome"],
                                      outcome["at"], time.time(), window)


def snapshot(now: float | None = None) -> dict:
    now = time.time() if now is None else now
    window = app.settings.stats_window_seconds
    platforms = {}
    for platform in ("tiktok", "instagram", "youtube", "snapchat"):
        counts = publish_stats.get(platform) or {}
        platforms[platform] = {kind: count_in_window(counts.get(kind, {}), now, window)
                               for kind in ("published", "failed")}
    return {"window_seconds": window, "platforms": platforms}
