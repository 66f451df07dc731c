"""CPU time the stack's processes spend on a workload, read from /proc (Linux): what one
command or one post costs in the workers, in PostgreSQL, in the broker and in the
benchmark's own clients, which on a machine of two cores is what bounds the rates.

A process counts with all its descendants: the live ones by their own time, those that
exited by their parent's count of the children it waited for (PostgreSQL's backends are
the postmaster's children)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measure import Figure

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    parent: int
    own: float  # utime + stime, in seconds
    waited: float  # cutime + cstime: the children it waited for


def _stat(pid: int) -> Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile, or not ours to read
        return None
    fields = text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    ticks = [int(v) for v in fields[11:15]]
    return Stat(int(fields[1]), (ticks[0] + ticks[1]) / TICKS, (ticks[2] + ticks[3]) / TICKS)


def tree_seconds(root: int) -> float:
    """CPU seconds of `root` and its descendants so far (0 when it cannot be read)."""
    stats = {pid: s for pid in (int(e) for e in os.listdir("/proc") if e.isdigit())
             if (s := _stat(pid)) is not None}
    children: dict[int, list[int]] = {}
    for pid, s in stats.items():
        children.setdefault(s.parent, []).append(pid)
    total, pending = 0.0, [root] if root in stats else []
    while pending:
        pid = pending.pop()
        total += stats[pid].own + stats[pid].waited
        pending += children.get(pid, [])
    return total


def postmaster_of(backend_pid: int) -> int | None:
    """The PostgreSQL server process whose backend this is, when it runs on this machine
    (a server elsewhere has its own process numbers: the one here must be a postgres)."""
    try:
        name = Path(f"/proc/{backend_pid}/comm").read_text().strip()
    except OSError:
        return None
    stat = _stat(backend_pid)
    return stat.parent if stat is not None and name in ("postgres", "postmaster") else None


def own_seconds(pid: int) -> float:
    """CPU seconds of the process alone (not the children it waited for)."""
    stat = _stat(pid)
    return stat.own if stat is not None else 0.0


@dataclass
class CpuMeter:
    """CPU seconds between `start()` and `stop()` of each named process tree (`trees`) and
    process on its own (`alone`: the benchmark itself, whose children are the stack)."""

    trees: dict[str, int]
    alone: dict[str, int] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        return ({name: tree_seconds(pid) for name, pid in self.trees.items()}
                | {name: own_seconds(pid) for name, pid in self.alone.items()})

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> None:
        self.used = {name: seconds - self._started[name]
                     for name, seconds in self._now().items()}


def cpu_figures(meter: CpuMeter, count: int, per: str) -> list[Figure]:
    """The meter's CPU time per unit of work (ms), each process and all of them."""
    figures = [Figure(f"CPU per {per}: {name}", seconds / count * 1000, "ms", target="—")
               for name, seconds in sorted(meter.used.items())]
    figures.append(Figure(f"CPU per {per}: all of these", sum(meter.used.values()) / count
                          * 1000, "ms", target="—"))
    return figures


def cores_needed(meter: CpuMeter, count: int, rate: float, per: str, why: str) -> Figure:
    """The cores the measured processes would keep busy at `rate` units a second, at the
    CPU they spent per unit here (`why`: whose rate it is), beside this machine's cores:
    a ratio over 1 means this machine cannot reach that rate at this cost, however the
    work were spread."""
    cores = sum(meter.used.values()) / count * rate
    return Figure(f"cores busy at {rate:,.0f} {per}s/s ({why})", cores, "",
                  float(os.cpu_count() or 1), "cores of this machine", target="—")


#: What the CPU figures are, for the report.
CPU_NOTE = (
    "CPU per …: user and system time over the measured span, from /proc, divided by the work "
    "done: each worker process, the PostgreSQL server with all its backends (on a shared "
    "server, whatever else it ran meanwhile counts too), the broker, and where it sends the "
    "work, the benchmark's own process (its clients). Only processes on this machine are "
    "read. On a machine of two cores, their sum bounds the rate: 2,000 ms of CPU a second. "
    "Cores busy at a target's rate = that rate × their sum: what reaching the target would "
    "take at this cost, beside the cores this machine has.")
