"""The loop of the agents that take work from the database: rounds, a wake-up, a backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.domain.errors import Unavailable
from app.faust_app import app

log = logging.getLogger("distribution.agents")


async def run_rounds(name: str, one_round: Callable[[], Awaitable[int]],
                     wakeup: asyncio.Event, interval: float, max_backoff: float) -> None:
    """Rounds until the worker stops. A round that found work is followed at once by the
    next (there may be more); one that found none waits `interval` or until `wakeup` is
    set; one that failed waits twice as long as the failure before it, up to `max_backoff`
    (a wake-up still cuts the wait short)."""
    delay = interval
    while not app.should_stop:
        try:
            done = await one_round()
            delay = interval
        except Unavailable as exc:
            log.warning(f"{name} waiting: {exc.message}", extra={"loop": name, **exc.details})
            done, delay = 0, min(delay * 2, max_backoff)
        except Exception:
            log.exception(f"{name} round failed", extra={"loop": name})
            done, delay = 0, min(delay * 2, max_backoff)
        if done:
            continue
        try:
            await asyncio.wait_for(wakeup.wait(), timeout=delay)
        except asyncio.TimeoutError:
            pass
        wakeup.clear()
