"""Growth: does the service slow down as the tables fill? On a database of its own, with a
worker of its own (the other workloads' rows left out), at each size (items in the table,
most of them published with a platform row, a tenth scheduled weeks ahead, a tenth
claimed) it times the scheduler's due query and the publisher's lease query (each in a
transaction rolled back, so nothing changes), and GET item and preview over HTTP, and
keeps the EXPLAIN plans. Rows are made by generate_series, not through the service."""

from __future__ import annotations

import random
import time

import asyncpg

from app.db.queries import Q
from app.db.queue import ALL_PLATFORMS
from benchmarks.measure import Figure, Stopwatch, WorkloadResult, percentile
from benchmarks.stack import Stack, influencer_of, insert_items, progress

REPEATS = 50  # of each query and each call, per size
STATUS_SQL = "CASE n % 10 WHEN 0 THEN 'scheduled' WHEN 1 THEN 'claimed' ELSE 'published' END"
DUE_SQL = "CASE n % 10 WHEN 0 THEN now() + interval '20 days' END"


def published(n: int) -> bool:
    return n % 10 >= 2


async def fill(pool: asyncpg.Pool, prefix: str, start: int, count: int) -> None:
    """`count` more items (numbers from `start`), and a platform row for each published."""
    await insert_items(pool, prefix, count, start=start, status_sql=STATUS_SQL,
                       due_sql=DUE_SQL, platforms="'{tiktok}'")
    await pool.execute("""
        INSERT INTO distribution_platform_status
            (item_id, platform, status, attempts, post_id, published_at)
        SELECT $1 || '-' || n, 'tiktok', 'published', 1, 'post-' || n, now()
        FROM generate_series($2::int, $2::int + $3 - 1) AS n WHERE n % 10 >= 2""",
                             prefix, start, count)
    await pool.execute("ANALYZE distribution_items; "
                             "ANALYZE distribution_platform_status")


#: The operators' item search, first page: filters (status, platform, platform state,
#: influencer, campaign, due window), no cursor, a page of 50 (+ 1).
NO_FILTER = (None,) * 7

QUERIES = {  # name -> (SQL, its arguments)
    "due query": (Q["take_due_items"], lambda: (_now(), 500, _now())),
    "lease query": (Q["lease_platform_attempts"], lambda: (_now(), 50, _now(),
                                                           list(ALL_PLATFORMS))),
    # only failed items have an index of their own: the others read the table
    "operator search, newest first": (Q["search_items"], lambda: (*NO_FILTER, None, None, 51)),
    "operator search, failed items": (
        Q["search_items"], lambda: ("failed", *NO_FILTER[1:], None, None, 51)),
}
#: Figures measured to be reported, not held flat (the issue's targets are the others).
TARGETS = {"operator search, newest first": "report: reads the table (no index on items "
                                            "but failed ones: each would slow every write)"}


def _now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)


async def time_query(conn: asyncpg.Connection, sql: str, args) -> list[float]:
    times = []
    for _ in range(REPEATS):
        tx = conn.transaction()
        await tx.start()
        with Stopwatch() as watch:
            await conn.fetch(sql, *args())
        await tx.rollback()
        times.append(watch.ms)
    return times


async def explain(conn: asyncpg.Connection, sql: str, args) -> str:
    tx = conn.transaction()
    await tx.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *args())
    finally:
        await tx.rollback()
    return "\n".join(r[0] for r in rows)


async def time_calls(stack: Stack, worker, prefix: str, total: int, action: str
                     ) -> list[float]:
    times = []
    numbers = [n for n in random.sample(range(1, total + 1), min(total, REPEATS * 3))
               if published(n)][:REPEATS]
    for n in numbers:
        with Stopwatch() as watch:
            status = await stack.call("GET", stack.items_url(worker, f"{prefix}-{n}",
                                                             action), influencer_of(prefix, n))
        if status != 200:
            raise RuntimeError(f"GET {action or 'item'} answered {status}")
        times.append(watch.ms)
    return times


async def run(stack: Stack, sizes: list[int]) -> WorkloadResult:
    """The sizes in turn on a database of the growth's own, with a worker of its own (stopped
    afterwards, its peak RSS kept). The other workers are stopped first (their peaks kept):
    on the same broker they are one consumer group, and a worker on another database must
    not take their partitions."""
    started = time.perf_counter()
    for other in list(stack.workers):
        stack.stop_worker(other)
    result = WorkloadResult("growth", "Growth", "items in the table: " +
                            ", ".join(f"{s:,}" for s in sizes))
    async with stack.database() as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        worker = await stack.start_worker(url)
        try:
            await measure_sizes(stack, worker, pool, sizes, result)
        finally:
            stack.stop_worker(worker)
            await pool.close()
    result.notes.append(f"{REPEATS} of each per size; the queries run in a transaction that "
                        "is rolled back (the plans below too: EXPLAIN ANALYZE). Nothing is due "
                        "at any size: the idle poll every worker makes every interval. GET "
                        "item and preview ask for published items picked at random.")
    result.seconds = time.perf_counter() - started
    return result


async def measure_sizes(stack: Stack, worker, pool: asyncpg.Pool, sizes: list[int],
                        result: WorkloadResult) -> None:
    prefix = f"grow-{stack.run_id}"
    p50s: dict[str, list[float]] = {}
    plans = []
    made = 0
    for size in progress(sizes, desc="growth sizes"):
        await fill(pool, prefix, made + 1, size - made)
        made = size
        timings = {}
        async with pool.acquire() as conn:
            for name, (sql, args) in QUERIES.items():
                timings[name] = await time_query(conn, sql, args)
                plans.append(f"#### {name}, {size:,} items\n\n```\n"
                             f"{await explain(conn, sql, args)}\n```\n")
            probe = f"{prefix}-2"
            plans.append(f"#### item (GET item, preview), {size:,} items\n\n```\n" + await explain(
                conn, Q["item_aggregates"], lambda: ([probe],)) + "\n```\n")
        timings["GET item"] = await time_calls(stack, worker, prefix, made, "")
        timings["preview"] = await time_calls(stack, worker, prefix, made, "preview")
        for name, times in timings.items():
            p50s.setdefault(name, []).append(percentile(times, 50))
            target = TARGETS.get(name, "flat")
            result.figures.append(Figure(f"{name} at {size:,}: p50", percentile(times, 50),
                                         "ms", target=target))
            result.figures.append(Figure(f"{name} at {size:,}: p99", percentile(times, 99),
                                         "ms", target=target))
    for name, values in p50s.items():
        ratio = values[-1] / values[0]
        flat = name not in TARGETS
        result.figures.append(Figure(f"{name}: p50 at {sizes[-1]:,} ÷ p50 at {sizes[0]:,}",
                                     ratio, "×", target=TARGETS.get(name, "flat (≤ 2×)"),
                                     met=ratio <= 2 if flat else None))
    result.details = "### EXPLAIN plans\n\n" + "\n".join(plans)
