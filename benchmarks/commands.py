"""Commands from 32 concurrent clients: POST overlays to distinct claimed items, each the
whole path (HTTP view -> command topic -> command agent -> one PostgreSQL transaction ->
reply topic -> HTTP answer).

Baseline: the same transaction's SQL (lock the item and its platform rows, look for an
earlier reply, read the item, upsert the overlay, update the item, record the command)
from 32 plain asyncpg connections, each in a loop — what PostgreSQL alone allows here."""

from __future__ import annotations

import json
import time
import uuid

import asyncpg

from app.db.queries import Q
from app.db.writes import BatchWrites
from app.embedded import WorkerProcess
from benchmarks.cpu import CPU_NOTE, CpuMeter, cores_needed, cpu_figures
from benchmarks.measure import Figure, Stopwatch, WorkloadResult, percentile
from benchmarks.stack import (Stack, gather_with_progress, influencer_of, insert_items,
                              item_ids)

OVERLAY = {"type": "intro", "duration_seconds": 1.5}
CLIENTS = 32
TARGET_RATE = 1000  # commands/s


async def post_overlay(stack: Stack, worker: WorkerProcess, prefix: str, n: int
                       ) -> float | int:
    """One overlay command to item n: its round trip in ms, or the HTTP status (an int)
    when it was not a 200 (a 504: no reply within DISTRIBUTION_REQUEST_TIMEOUT_SECONDS)."""
    with Stopwatch() as watch:
        status = await stack.call("POST", stack.items_url(worker, f"{prefix}-{n}", "overlays"),
                                  influencer_of(prefix, n), OVERLAY)
    return watch.ms if status == 200 else status


def answered(outcomes: list[float | int]) -> tuple[list[float], str]:
    """The round trips of the commands answered 200, and a note on the others."""
    times = [o for o in outcomes if isinstance(o, float)]
    failed = sorted(o for o in outcomes if isinstance(o, int))
    if not failed:
        return times, ""
    counts = {code: failed.count(code) for code in failed}
    return times, (f"{len(failed):,} of {len(outcomes):,} commands were not answered 200 ("
                   + ", ".join(f"{n:,} × {code}" for code, n in counts.items())
                   + "); the figures count only the answered ones.")


async def claimed_items(stack: Stack, kind: str, count: int) -> str:
    """`count` claimed items made by SQL; their id prefix."""
    prefix = f"{kind}-{stack.run_id}-{uuid.uuid4().hex[:4]}"
    await insert_items(stack.pool, prefix, count)
    return prefix


async def measure_service(stack: Stack, count: int, label: str, meter: CpuMeter | None = None
                          ) -> tuple[float, list[float], str]:
    """(commands/s answered 200, each one's ms, a note on the others) with CLIENTS clients
    spread over the workers; `meter` reads the CPU time while they send."""
    prefix = await claimed_items(stack, "cmd", count)
    numbers = list(range(1, count + 1))

    give_up = max(CLIENTS, count // 20)  # failures: the service stopped answering
    failures = []

    async def client(c: int) -> list[float | int]:
        worker, outcomes = stack.workers[c % len(stack.workers)], []
        for n in numbers[c::CLIENTS]:
            outcomes.append(await post_overlay(stack, worker, prefix, n))
            if isinstance(outcomes[-1], int):
                failures.append(outcomes[-1])
                if len(failures) > give_up:
                    raise RuntimeError(f"{len(failures)} commands not answered 200 "
                                       f"({sorted(set(failures))}): gave up")
        return outcomes
    started = time.perf_counter()
    if meter is not None:
        meter.start()
    per_client = await gather_with_progress([client(c) for c in range(CLIENTS)],
                                            f"commands ({label}), clients done")
    elapsed = time.perf_counter() - started
    if meter is not None:
        meter.stop()
    times, note = answered([ms for outcomes in per_client for ms in outcomes])
    return len(times) / elapsed, times, note


async def command_transaction(conn: asyncpg.Connection, item_id: str) -> None:
    """The SQL of one overlay command (app/handlers.py apply_together), nothing else."""
    command_id = uuid.uuid4().hex
    async with conn.transaction():
        await conn.fetchrow(Q["lock_items"], [item_id])
        await conn.fetch(Q["processed_commands"], [command_id])
        item = await conn.fetchrow(Q["item_aggregates"], [item_id])
        writes = BatchWrites()  # the command's statement, as a batch of one writes it
        writes.before("upsert_overlay", item_id, OVERLAY["type"], OVERLAY["duration_seconds"])
        writes.items.append((item_id, item["status"], item["scheduled_at"], item["timezone"],
                             ",".join(item["platforms"]), item["retry_count"],
                             item["failure_reason"], item["version"] + 1))
        writes.commands.append((command_id, item_id, "overlays", json.dumps({"ok": True})))
        await writes.send(conn)


async def measure_baseline(stack: Stack, count: int, clients: int = CLIENTS
                           ) -> tuple[float, list[float]]:
    """(transactions/s, each transaction's ms) from `clients` connections."""
    prefix = await claimed_items(stack, "sql", count)
    ids = item_ids(prefix, count)
    pool = await asyncpg.create_pool(stack.database_url, min_size=clients, max_size=clients)
    try:
        async def loop(c: int) -> list[float]:
            times = []
            async with pool.acquire() as conn:
                for item_id in ids[c::clients]:
                    with Stopwatch() as watch:
                        await command_transaction(conn, item_id)
                    times.append(watch.ms)
            return times
        started = time.perf_counter()
        per_loop = await gather_with_progress([loop(c) for c in range(clients)],
                                              "commands baseline (SQL), loops done")
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    return count / elapsed, [ms for times in per_loop for ms in times]


async def run(stack: Stack, count: int, label: str = "1 worker",
              baseline: tuple[float, list[float]] | None = None) -> WorkloadResult:
    """The workload on the workers running now; the baseline is measured unless given."""
    started = time.perf_counter()
    meter = stack.cpu_meter(clients=True)
    rate, times, failures = await measure_service(stack, count, label, meter)
    base_rate, base_times = baseline or await measure_baseline(stack, count)
    p50, p99 = percentile(times, 50), percentile(times, 99)
    result = WorkloadResult(
        "commands", f"Commands, {CLIENTS} concurrent clients ({label})",
        f"{count:,} overlay commands to {count:,} distinct claimed items", [
            Figure("commands/s", rate, "/s", base_rate,
                   f"the command's SQL as single-row transactions, {CLIENTS} asyncpg "
                   "connections", f"≥ {TARGET_RATE:,}/s", rate >= TARGET_RATE),
            Figure("p50", p50, "ms", percentile(base_times, 50), "the same transactions",
                   "—"),
            Figure("p99", p99, "ms", percentile(base_times, 99), "the same transactions",
                   "≤ 100 ms", p99 <= 100),
            *cpu_figures(meter, count, "command"),
            cores_needed(meter, count, TARGET_RATE, "command", "the target"),
        ])
    result.notes.append(CPU_NOTE)
    result.notes += [failures] if failures else []
    result.seconds = time.perf_counter() - started
    return result
