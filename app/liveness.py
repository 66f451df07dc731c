"""Whether the worker is alive in the sense `/healthz` reports: each of its loops still
running, and the event loop not blocked.

- Vital loops (`Vitals.watch`): an agent or a task that returns or raises while the
  worker is not stopping is dead; Faust restarts a crashed agent, which then counts as
  running again. A timer beats at every round (`Vitals.beat`) and is stalled once it has
  not beaten for `stalled_after` seconds.
- The event loop (`LoopWatch`): a ticker measures how late each tick runs. A tick later
  than the limit is a block; a thread beside the loop logs the block while it lasts, with
  the stack that holds the loop (nothing on the loop can run then, `/healthz` included).

`problems` is the rule, a plain function of what was recorded.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app import metrics

log = logging.getLogger("distribution.liveness")

#: After a block longer than the limit ended, /healthz keeps failing this long: a probe
#: every few seconds sees it, and a worker that keeps blocking is restarted.
RECENT_BLOCK_SECONDS = 60.0


@dataclass
class Loop:
    """One vital loop, as last recorded (monotonic seconds)."""

    running: int = 0  # instances running (an agent has one per worker)
    ended: str | None = None  # why the last instance ended, while none runs
    beat_at: float | None = None  # a timer's last round
    stalled_after: float | None = None  # a timer's limit between rounds


@dataclass
class Block:
    seconds: float
    ended_at: float


def problems(loops: dict[str, Loop], last_block: Block | None, now: float,
             max_block: float) -> list[str]:
    """What makes the worker unhealthy, one line each; empty when healthy."""
    found = []
    for name, loop in sorted(loops.items()):
        if loop.stalled_after is not None:
            if loop.beat_at is not None and now - loop.beat_at > loop.stalled_after:
                found.append(f"{name}: no round for {now - loop.beat_at:.0f} s")
        elif loop.running <= 0 and loop.ended is not None:
            found.append(f"{name}: {loop.ended}")
    if last_block is not None and last_block.seconds > max_block \
            and now - last_block.ended_at < RECENT_BLOCK_SECONDS:
        found.append(f"event loop blocked for {last_block.seconds:.1f} s "
                     f"({now - last_block.ended_at:.0f} s ago)")
    return found


@dataclass
class Vitals:
    loops: dict[str, Loop] = field(default_factory=dict)
    stopping: Callable[[], bool] = lambda: False

    def watch(self, name: str):
        """Decorates an agent's or a task's coroutine function: while it runs it is alive;
        ending otherwise than when the worker stops is a death."""
        loop = self.loops.setdefault(name, Loop())

        def decorate(fun: Callable[..., Awaitable[Any]]):
            @functools.wraps(fun)
            async def watched(*args: Any, **kwargs: Any) -> Any:
                loop.running += 1
                loop.ended = None
                outcome = "returned"
                try:
                    return await fun(*args, **kwargs)
                except asyncio.CancelledError:
                    outcome = "cancelled"
                    raise
                except BaseException as exc:
                    outcome = f"crashed: {type(exc).__name__}: {exc}"[:300]
                    raise
                finally:
                    loop.running -= 1
                    if not self.stopping():
                        loop.ended = outcome
                        log.error("vital loop ended", extra={"loop": name,
                                                             "outcome": outcome})
            return watched
        return decorate

    def beat(self, name: str, stalled_after: float) -> None:
        loop = self.loops.setdefault(name, Loop(stalled_after=stalled_after))
        loop.beat_at = time.monotonic()


class LoopWatch:
    """Measures the event loop's lateness from a ticker on it, and watches from a thread
    for a tick that does not come (the loop is blocked now)."""

    def __init__(self, max_block: float, tick: float = 0.25) -> None:
        self.max_block = max_block
        self.tick = tick
        self.last_tick = time.monotonic()
        self.last_block: Block | None = None
        self._loop_thread = threading.get_ident()
        self._stopped = threading.Event()

    async def run(self) -> None:
        """The ticker; runs until cancelled (with the worker)."""
        self._loop_thread = threading.get_ident()
        thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        thread.start()
        try:
            while True:
                before = time.monotonic()
                await asyncio.sleep(self.tick)
                self.ticked(time.monotonic() - before - self.tick)
        finally:
            self._stopped.set()

    def ticked(self, lateness: float) -> None:
        self.last_tick = time.monotonic()
        metrics.LOOP_LAG.set(max(lateness, 0.0))
        if lateness > self.max_block:
            self.last_block = Block(lateness, self.last_tick)
            metrics.LOOP_BLOCKS.inc()
            log.error("event loop was blocked", extra={"blocked_seconds": round(lateness, 3)})

    def _watch(self) -> None:
        reported = None
        while not self._stopped.wait(min(self.max_block / 2, 1.0)):
            since = self.last_tick
            if time.monotonic() - since > self.max_block + self.tick and reported != since:
                reported = since
                frame = sys._current_frames().get(self._loop_thread)
                stack = "".join(traceback.format_stack(frame)[-12:]) if frame else "?"
                log.error("event loop blocked now", extra={
                    "blocked_seconds": round(time.monotonic() - since, 1), "stack": stack})
