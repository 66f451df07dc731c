"""A token bucket per caller: one caller cannot flood the command partitions.

Per worker and in memory: N workers admit up to N times the rate, which is the point (the
limit protects each worker's share of the partitions), and a restart forgets nothing that
matters. The clock is passed in, so the rule tests without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.errors import RateLimited

#: Buckets kept at most; idle (full) ones are dropped first when it is reached.
MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = max(1, burst)
        self.buckets: dict[str, Bucket] = {}

    def admit(self, caller: str, now: float) -> None:
        """Take one token from the caller's bucket, or raise RateLimited saying how long to
        wait for the next one."""
        bucket = self.buckets.get(caller)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self._drop_idle(now)
            bucket = self.buckets[caller] = Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self.per_second
            raise RateLimited(f"more than {self.per_second:g} requests per second",
                              retry_after_seconds=round(wait, 3))
        bucket.tokens -= 1

    def _drop_idle(self, now: float) -> None:
        refill = self.burst / self.per_second
        self.buckets = {k: b for k, b in self.buckets.items() if now - b.updated < refill}
        if len(self.buckets) >= MAX_BUCKETS:  # all busy: forget the oldest half
            keep = sorted(self.buckets.items(), key=lambda kv: kv[1].updated)[MAX_BUCKETS // 2:]
            self.buckets = dict(keep)
