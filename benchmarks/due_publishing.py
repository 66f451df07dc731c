"""Due publishing: N scheduled items, each to two platforms, all due at the same instant;
from that instant until every item's outcome event is on its topic (scheduler -> due
command -> command agent -> publisher -> simulated platforms -> result commands -> outbox
-> relay -> broker).

Baseline: the database work alone, from one plain asyncpg connection — batches of the
scheduler's `UPDATE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED LIMIT n))` on a
copy of the items table, each followed by an outbox INSERT for the batch."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from benchmarks.cpu import CPU_NOTE, CpuMeter, cores_needed, cpu_figures
from benchmarks.measure import Figure, WorkloadResult, percentile
from benchmarks.stack import Stack, insert_items, wait_with_progress

PLATFORMS = ("tiktok", "youtube")
BATCH = 500  # the scheduler's default batch (DISTRIBUTION_SCHEDULER_BATCH_SIZE)
TARGET_RATE = 2000  # item-platforms/s
TARGET_P99 = 5.0  # s of lateness


async def measure_service(stack: Stack, count: int, label: str, meter: CpuMeter | None = None
                          ) -> tuple[float, list[float], dict[str, int]]:
    """(item-platforms/s, lateness of each item in s, outcome topic -> items); `meter`
    reads the CPU time from the due instant until the last outcome event."""
    prefix = f"due-{stack.run_id}-{label}"
    lead = 3.0 + count / 5000  # time enough to insert the rows before they fall due
    due_epoch = await stack.pool.fetchval("SELECT extract(epoch FROM now())::float8") + lead
    await insert_items(stack.pool, prefix, count, status_sql="'scheduled'",
                       due_sql=f"to_timestamp({due_epoch})",
                       platforms="'{" + ",".join(PLATFORMS) + "}'")
    late_insert = await stack.pool.fetchval("SELECT extract(epoch FROM now())::float8") - due_epoch
    if late_insert > 0:
        raise RuntimeError(f"inserting {count} items took past their due instant "
                           f"(by {late_insert:.1f} s): raise the lead")
    pattern = f"{prefix}-%"
    if meter is not None:
        await asyncio.sleep(max(0.0, -late_insert))  # until the due instant
        meter.start()

    async def outcomes() -> int:  # acknowledged by the broker
        return await stack.pool.fetchval(
            "SELECT count(*) FROM distribution_outbox WHERE partition_key LIKE $1 "
            "AND status = 'published'", pattern)
    await wait_with_progress(outcomes, count, f"due publishing ({label})",
                             timeout=lead + 120 + count / 20)
    if meter is not None:
        meter.stop()
    rows = await stack.pool.fetch("""
        SELECT o.topic, extract(epoch FROM o.published_at - i.scheduled_at)::float8 AS late
        FROM distribution_outbox o JOIN distribution_items i ON i.id = o.partition_key
        WHERE o.partition_key LIKE $1""", pattern)
    lateness = [r["late"] for r in rows]
    topics: dict[str, int] = {}
    for r in rows:
        topics[r["topic"]] = topics.get(r["topic"], 0) + 1
    return count * len(PLATFORMS) / max(lateness), lateness, topics


async def measure_baseline(pool: asyncpg.Pool, count: int) -> float:
    """Item-platforms/s of the bare SQL (each item counted with its two platforms)."""
    await pool.execute("""
        DROP TABLE IF EXISTS bench_due_items, bench_due_outbox;
        CREATE TABLE bench_due_items (LIKE distribution_items INCLUDING ALL);
        CREATE TABLE bench_due_outbox (LIKE distribution_outbox INCLUDING ALL)""")
    await insert_items(pool, "base", count, status_sql="'scheduled'",
                       due_sql="now() - interval '1 second'",
                       platforms="'{" + ",".join(PLATFORMS) + "}'", table="bench_due_items")
    await pool.execute("ANALYZE bench_due_items")
    started = time.perf_counter()
    async with pool.acquire() as conn:
        while True:
            async with conn.transaction():
                ids = await conn.fetch("""
                    UPDATE bench_due_items SET status = 'published', due_enqueued_at = now()
                    WHERE id = ANY(ARRAY(
                        SELECT id FROM bench_due_items
                        WHERE status = 'scheduled' AND scheduled_at <= now()
                          AND due_enqueued_at IS NULL
                        ORDER BY scheduled_at LIMIT $1 FOR UPDATE SKIP LOCKED))
                    RETURNING id""", BATCH)
                if not ids:
                    break
                await conn.execute("""
                    INSERT INTO bench_due_outbox (event_id, topic, partition_key, envelope)
                    SELECT gen_random_uuid(), 'distribution.published', id,
                           jsonb_build_object('item_id', id, 'platforms', $2::text[])
                    FROM unnest($1::text[]) AS id""", [r["id"] for r in ids], list(PLATFORMS))
    elapsed = time.perf_counter() - started
    await pool.execute("DROP TABLE bench_due_items, bench_due_outbox")
    return count * len(PLATFORMS) / elapsed


async def run(stack: Stack, count: int, label: str = "1 worker",
              baseline: float | None = None) -> WorkloadResult:
    """The workload on the workers running now; the baseline is measured unless given."""
    started = time.perf_counter()
    meter = stack.cpu_meter()
    rate, lateness, topics = await measure_service(stack, count, label.replace(" ", "-"),
                                                   meter)
    if baseline is None:
        baseline = await measure_baseline(stack.pool, count)
    p50, p99 = percentile(lateness, 50), percentile(lateness, 99)
    units = count * len(PLATFORMS)
    # all due at once: 99 % of them out within TARGET_P99 takes this rate from the start
    on_time_rate = 0.99 * units / TARGET_P99
    result = WorkloadResult(
        "due_publishing", f"Due publishing ({label})",
        f"{count:,} items × {len(PLATFORMS)} platforms due at one instant", [
            Figure("item-platforms/s, due → outcome event", rate, "/s", baseline,
                   f"bare SQL: SKIP LOCKED UPDATE + outbox INSERT, batches of {BATCH}",
                   f"≥ {TARGET_RATE:,}/s", rate >= TARGET_RATE),
            Figure("lateness p50", p50, "s", target="—"),
            Figure("lateness p99", p99, "s", target=f"≤ {TARGET_P99:g} s",
                   met=p99 <= TARGET_P99),
            *cpu_figures(meter, units, "item-platform"),
            cores_needed(meter, units, TARGET_RATE, "item-platform", "the target"),
            cores_needed(meter, units, on_time_rate, "item-platform",
                         f"lateness p99 ≤ {TARGET_P99:g} s for {units:,}"),
        ])
    result.notes.append("Lateness = when the broker acknowledged the item's outcome event "
                        "(the outbox row's published_at) minus scheduled_at. Outcomes: "
                        + ", ".join(f"{n:,} {t}" for t, n in sorted(topics.items())) + ".")
    result.notes.append(CPU_NOTE)
    result.seconds = time.perf_counter() - started
    return result


