"""Waiting out a database outage: the action again, later, until the database answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.domain.errors import Unavailable

log = logging.getLogger("distribution.agents")

T = TypeVar("T")


async def until_available(action: Callable[[], Awaitable[T]], what: str) -> T:
    """The action's result, retried with backoff while the database is unavailable (an
    agent's events stay unacknowledged meanwhile)."""
    delay = 0.1
    while True:
        try:
            return await action()
        except Unavailable as exc:
            log.warning("database unavailable; retrying", extra={"action": what,
                                                                  "error": exc.message,
                                                                  "retry_in": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
