"""The rule /healthz applies (app/liveness.py), and what feeds it: vital loops that end,
timers that stop beating, an event loop blocked (a real loop, really blocked)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from app import metrics
from app.liveness import RECENT_BLOCK_SECONDS, Block, Loop, LoopWatch, Vitals, problems


def test_a_healthy_worker_has_no_problems():
    loops = {"commands agent": Loop(running=1), "scheduler": Loop(beat_at=100.0,
                                                                  stalled_after=60.0)}
    assert problems(loops, None, now=150.0, max_block=10) == []


def test_a_loop_that_ended_is_a_problem_until_it_runs_again():
    loops = {"publisher": Loop(running=0, ended="crashed: RuntimeError: boom")}
    assert problems(loops, None, 0.0, 10) == ["publisher: crashed: RuntimeError: boom"]
    loops["publisher"].running = 1  # restarted (Faust's supervisor restarts an agent)
    assert problems(loops, None, 0.0, 10) == []


def test_a_timer_without_a_round_for_longer_than_its_limit_is_stalled():
    loops = {"scheduler": Loop(beat_at=100.0, stalled_after=60.0)}
    assert problems(loops, None, now=160.0, max_block=10) == []
    assert problems(loops, None, now=161.5, max_block=10) == ["scheduler: no round for 62 s"]


def test_a_block_longer_than_the_limit_fails_health_for_a_while_after_it_ended():
    long_block = Block(seconds=12.0, ended_at=1000.0)
    assert problems({}, long_block, now=1001.0, max_block=10) == [
        "event loop blocked for 12.0 s (1 s ago)"]
    assert problems({}, long_block, now=1000.0 + RECENT_BLOCK_SECONDS + 1, max_block=10) == []
    assert problems({}, Block(seconds=9.0, ended_at=1000.0), now=1001.0, max_block=10) == []


async def test_watch_records_how_a_vital_loop_ended_unless_the_worker_is_stopping():
    stopping = False
    vitals = Vitals(stopping=lambda: stopping)

    @vitals.watch("crasher")
    async def crasher():
        raise RuntimeError("boom")

    @vitals.watch("quitter")
    async def quitter():
        return None

    @vitals.watch("stopped")
    async def stopped():
        await asyncio.Event().wait()  # runs until cancelled

    with pytest.raises(RuntimeError):
        await crasher()
    await quitter()
    assert vitals.loops["crasher"] == Loop(running=0, ended="crashed: RuntimeError: boom")
    assert vitals.loops["quitter"] == Loop(running=0, ended="returned")

    task = asyncio.ensure_future(stopped())
    await asyncio.sleep(0)
    assert vitals.loops["stopped"].running == 1
    stopping = True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert vitals.loops["stopped"] == Loop(running=0, ended=None)
    assert [p.split(":")[0] for p in problems(vitals.loops, None, 0.0, 10)] == [
        "crasher", "quitter"]


def test_a_beat_records_a_timers_round():
    vitals = Vitals()
    vitals.beat("scheduler", stalled_after=60.0)
    loop = vitals.loops["scheduler"]
    assert loop.stalled_after == 60.0 and abs(loop.beat_at - time.monotonic()) < 1.0


class Seen(logging.Handler):
    """Sets `event` (from any thread) once a record with `message` is logged."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message, self.event, self.record = message, threading.Event(), None

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.record = record
            self.event.set()


async def until(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s")
        await asyncio.sleep(0.01)


async def test_a_blocked_event_loop_is_seen_while_blocked_and_after():
    watch = LoopWatch(max_block=0.3, tick=0.05)
    blocks_before = metrics.REGISTRY.get_sample_value("distribution_event_loop_blocks_total")
    watchdog = Seen("event loop blocked now")
    logger = logging.getLogger("distribution.liveness")
    logger.addHandler(watchdog)
    ticker = asyncio.ensure_future(watch.run())
    try:
        started = watch.last_tick
        await until(lambda: watch.last_tick > started, "a tick")  # ticks on time
        assert watch.last_block is None

        # the fault: a synchronous call holds the loop, here until the watchdog thread has
        # seen it (with a deadline), while nothing on the loop can run
        held_from = time.monotonic()
        assert watchdog.event.wait(timeout=5), "the watchdog did not see the blocked loop"
        held = time.monotonic() - held_from

        await until(lambda: watch.last_block is not None, "the ticker seeing the block")
        assert watch.last_block.seconds > 0.3  # over the limit
        # at least as long as the loop was held (which can be under 0.4 s: the watchdog may
        # see the block at 0.35 s from the last tick, and the hold began after that tick)
        assert watch.last_block.seconds >= held - 0.1
        assert problems({}, watch.last_block, time.monotonic(), 0.3)[0].startswith(
            "event loop blocked for ")
        assert metrics.REGISTRY.get_sample_value(
            "distribution_event_loop_blocks_total") == blocks_before + 1
        # logged while it lasted, with the stack holding the loop
        assert "test_a_blocked_event_loop_is_seen_while_blocked_and_after" in \
            watchdog.record.stack
    finally:
        ticker.cancel()
        logger.removeHandler(watchdog)
