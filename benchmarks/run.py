"""`distribution bench`: starts the stack, runs the workloads in order (the ones that fill
the tables last), and writes the report. Quick mode runs every workload with small sizes,
for CI: it shows that each one runs and yields its figures, not how fast."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import commands, due_publishing, growth, ingestion, round_trip, two_workers
from benchmarks.measure import Figure, WorkloadResult
from benchmarks.report import RunInfo, kept_history, render
from benchmarks.stack import Stack, open_stack

WORKLOADS = ("ingestion", "round_trip", "commands", "due_publishing", "two_workers", "growth",
             "memory")


@dataclass(frozen=True)
class Sizes:
    due_items: int
    commands: int
    commands_in_a_row: int
    claims: int
    growth: tuple[int, ...]


#: The issue's sizes. Commands: 5,000, past the ~3,300 replies after which Faust's reply
#: consumer used to stop (app/kafka.py ReplyConsumer._fetch); a run reports such a failure
#: instead of figures.
FULL = Sizes(due_items=10_000, commands=5_000, commands_in_a_row=500, claims=50_000,
             growth=(10_000, 100_000, 1_000_000))
QUICK = Sizes(due_items=300, commands=200, commands_in_a_row=30, claims=2_000,
              growth=(1_000, 10_000))


def memory(stack: Stack) -> WorkloadResult:
    """Each worker's peak RSS over its whole life (VmHWM), read before it stops."""
    stack.note_rss()
    result = WorkloadResult("memory", "Memory", "peak RSS of each worker process over every "
                            "workload it served")
    for name, mb in sorted(stack.peak_rss_mb.items()):
        result.figures.append(Figure(f"{name} peak RSS", mb, "MB", target="≤ 150 MB",
                                     met=mb <= 150))
    result.notes.append("worker-1 served every workload before growth; worker-2 joined for "
                        "the two-worker runs; growth stops both and runs a worker of its own "
                        "on its own database (the last one listed, when it ran). Each peak is "
                        "read after every workload, while the worker runs.")
    result.notes += stack.exited_workers()
    return result


async def run_workloads(stack: Stack, sizes: Sizes, only: set[str]) -> list[WorkloadResult]:
    """In order; a workload that fails is reported as failed (the run goes on), and so are
    those that needed its results."""
    await stack.start_worker()
    results: list[WorkloadResult] = []

    async def attempt(name: str, title: str, job) -> WorkloadResult | None:
        if name not in only:
            return None
        try:
            result = await job()
        except Exception as exc:  # the report says what failed; the other figures stand
            result = WorkloadResult(name, title, "—", notes=[f"**Failed**: {exc!r}"])
        stack.note_rss()
        results.append(result)
        return result if result.figures else None
    await attempt("ingestion", "Claim ingestion", lambda: ingestion.run(stack, sizes.claims))
    await attempt("round_trip", "One client, commands in a row",
                  lambda: round_trip.run(stack, sizes.commands_in_a_row))
    if "two_workers" in only:
        only = only | {"commands", "due_publishing"}  # its baselines
    one_commands = await attempt("commands", "Commands, 32 concurrent clients",
                                 lambda: commands.run(stack, sizes.commands))
    one_due = await attempt("due_publishing", "Due publishing",
                            lambda: due_publishing.run(stack, sizes.due_items))
    if one_commands and one_due:
        await attempt("two_workers", "Two workers", lambda: two_workers.run(
            stack, sizes.due_items, sizes.commands, one_due, one_commands))
    await attempt("growth", "Growth", lambda: growth.run(stack, list(sizes.growth)))
    if "memory" in only:
        results.append(memory(stack))
    return results


async def bench(quick: bool = False, database_url: str | None = None,
                bootstrap: str | None = None, output: Path = Path("BENCHMARKS.md"),
                only: set[str] | None = None, command: str = "distribution bench"
                ) -> list[WorkloadResult]:
    """Runs the workloads (all unless `only`) and writes the report to `output`."""
    started = time.perf_counter()
    sizes = QUICK if quick else FULL
    async with open_stack(database_url, bootstrap) as stack:
        results = await run_workloads(stack, sizes, set(only or WORKLOADS))
        where = "a fresh database on the server given" if database_url else "embedded"
        info = RunInfo(command, quick, f"{stack.postgres_version} ({where})",
                       f"the one at {bootstrap}" if bootstrap else "Tansu (embedded)")
    info.seconds = time.perf_counter() - started
    previous = output.read_text(encoding="utf-8") if output.exists() else ""
    output.write_text(render(results, info, kept_history(previous)), encoding="utf-8")
    return results


async def stopped_by_sigterm(run):
    """SIGTERM cancels the run, so that the workers, the broker and the database it started
    are stopped and dropped on the way out, as with Ctrl-C."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM,
                                                  asyncio.current_task().cancel)
    return await run


def main(args: argparse.Namespace) -> int:
    """`distribution bench` (app/cli.py parses the arguments)."""
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - set(WORKLOADS)
    if unknown:
        print(f"unknown workloads: {', '.join(sorted(unknown))} (known: "
              f"{', '.join(WORKLOADS)})", file=sys.stderr)
        return 2
    shown = ["--quick"] if args.quick else []
    shown += ["--database-url", "URL"] if args.database_url else []
    shown += ["--bootstrap", args.bootstrap] if args.bootstrap else []
    shown += ["--only", args.only] if args.only else []
    command = shlex.join(["distribution", "bench", *shown])
    results = asyncio.run(stopped_by_sigterm(bench(
        args.quick, args.database_url, args.bootstrap, args.output, only, command)))
    for result in results:
        print(f"{result.title}: " + "; ".join(
            f"{f.what} {f.value:,.2f} {f.unit}" for f in result.figures[:3]))
    print(f"wrote {args.output}")
    return 0
