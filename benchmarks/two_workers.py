"""Two workers: due publishing and commands again, with a second worker process beside the
first, each figure beside the one-worker figure of the same run."""

from __future__ import annotations

import os
import time

from benchmarks import commands, due_publishing
from benchmarks.measure import Figure, WorkloadResult
from benchmarks.stack import Stack


async def run(stack: Stack, due_count: int, command_count: int,
              one_due: WorkloadResult, one_commands: WorkloadResult) -> WorkloadResult:
    """Starts the second worker (left running: memory counts it), reruns both workloads, and
    relates each figure to the one-worker run's."""
    started = time.perf_counter()
    await stack.start_worker()
    await stack.workers[0].ready()  # the first worker has rebalanced too
    due = await due_publishing.run(stack, due_count, "2 workers", baseline=1.0)
    cmds = await commands.run(stack, command_count, "2 workers", baseline=(1.0, [1.0]))
    result = WorkloadResult("two_workers", "Two workers", f"due publishing {due_count:,} "
                            f"items × 2 platforms; {command_count:,} commands from "
                            f"{commands.CLIENTS} clients spread over both workers")
    pairs = ((due, one_due, "item-platforms/s, due → outcome event", "due publishing: "),
             (due, one_due, "lateness p99", "due publishing: "),
             (cmds, one_commands, "commands/s", "commands: "),
             (cmds, one_commands, "p99", "commands: "))
    for two, one, what, workload in pairs:
        result.figures.append(Figure(f"{workload}{what}, 2 workers", two.figure(what).value,
                                     two.figure(what).unit, one.figure(what).value,
                                     "1 worker, same run", "report the ratio"))
    result.notes.append(
        f"This machine has {os.cpu_count()} cores, shared by PostgreSQL, the broker, the "
        "benchmark's clients and the workers: a second worker adds a Python event loop but "
        "no core, so the ratio shows what the work costs in Python against what it waits "
        "for (the database, the broker, timers). On a machine with a core per worker the "
        "ratio is the one to expect from adding workers.")
    result.seconds = time.perf_counter() - started
    return result
