"""When to try a platform again."""

from __future__ import annotations

from .rules import Policy


def backoff_seconds(attempts: int, policy: Policy, jitter: float,
                    retry_after: float | None = None) -> float:
    """Exponential backoff with equal jitter (between half and all of the ceiling); a
    platform's Retry-After is a floor, held to the configured maximum.

    `jitter` is a number in [0, 1) supplied by the caller, so the rule stays deterministic.
    """
    ceiling = min(policy.backoff_max_seconds, policy.backoff_base_seconds * 2 ** max(attempts - 1, 0))
    delay = ceiling / 2 + (ceiling / 2) * jitter
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.backoff_max_seconds))
    return delay


def gives_up(attempts: int, policy: Policy) -> bool:
    return attempts >= policy.max_platform_attempts
