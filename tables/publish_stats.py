"""Live publishing statistics per platform (published and failed counts over a recent
window), rebuilt from the outcome topics; PostgreSQL stays the record.

Outcome events are keyed by item id, but counts are kept per platform: the first agent
re-keys each platform outcome onto a one-partition topic, so one worker owns all counts
and the view routes to it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import orjson

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


def add(counts: dict, tally: dict[str, dict[str, int]], now: float,
        window_seconds: int) -> dict:
    """Counts with a tally of outcomes added ({outcome: {bucket: n}}), and buckets older
    than the window dropped."""
    fresh = {kind: {b: n for b, n in buckets.items()
                    if int(b) + BUCKET_SECONDS > now - window_seconds}
             for kind, buckets in counts.items()}
    for outcome, buckets in tally.items():
        kind = fresh.setdefault(outcome, {})
        for key, n in buckets.items():
            if int(key) + BUCKET_SECONDS > now - window_seconds:
                kind[key] = kind.get(key, 0) + n
    return fresh


def tally_outcomes(values: list[bytes]) -> dict[str, dict[str, dict[str, int]]]:
    """What a batch of outcome events adds, per platform: {platform: {outcome: {bucket:
    n}}}. An event that cannot be read is logged and left out."""
    tally: dict[str, dict[str, dict[str, int]]] = {}
    for value in values:
        try:
            envelope = orjson.loads(value)
            at = datetime.fromisoformat(envelope["occurred_at"]).timestamp()
            results = envelope["data"]["results"]
            for result in results:
                if result.get("status") in ("published", "failed"):
                    buckets = tally.setdefault(str(result["platform"]), {}).setdefault(
                        result["status"], {})
                    key = str(bucket(at))
                    buckets[key] = buckets.get(key, 0) + 1
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("outcome event not counted", extra={"error": repr(exc)})
    return tally


#: The outcome events counted together, and how long a batch waits to fill: one message
#: per platform and batch to the counting agent, one table write per platform and batch.
TALLY_BATCH, TALLY_WITHIN_SECONDS = 1000, 0.5


@app.agent(outcome_topics)
async def split_outcomes(stream):
    async for values in stream.take(TALLY_BATCH, within=TALLY_WITHIN_SECONDS):
        for platform, tally in tally_outcomes(values).items():
            await platform_outcomes_topic.send(key=platform.encode(),
                                               value=encode({"platform": platform,
                                                             "tally": tally}))


@app.agent(platform_outcomes_topic)
async def count_outcomes(stream):
    window = app.settings.stats_window_seconds
    async for value in stream:
        try:
            platform, tally = platform_tally(orjson.loads(value))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("platform outcomes not counted", extra={"error": repr(exc)})
            continue
        publish_stats[platform] = add(publish_stats[platform], tally, time.time(), window)


def platform_tally(message: dict) -> tuple[str, dict[str, dict[str, int]]]:
    """(platform, its tally) of a message to the counting agent; one outcome per message
    before tallies (still on the topic after an upgrade) counts as a tally of one."""
    if "tally" in message:
        return str(message["platform"]), message["tally"]
    return str(message["platform"]), {message["outcome"]: {str(bucket(message["at"])): 1}}


def snapshot(now: float | None = None) -> dict:
    now = time.time() if now is None else now
    window = app.settings.stats_window_seconds
    platforms = {}
    for platform in ("tiktok", "instagram", "youtube", "snapchat"):
        counts = publish_stats.get(platform) or {}
        platforms[platform] = {kind: count_in_window(counts.get(kind, {}), now, window)
                               for kind in ("published", "failed")}
    return {"window_seconds": window, "platforms": platforms}
