"""What a workload hands back, and the arithmetic of its figures."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One measured figure beside the baseline measured in the same run (None: the issue
    names none). `higher_is_better` decides how the ratio reads."""

    what: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_what: str = ""
    target: str = ""
    met: bool | None = None  # against the target, when the target is a number

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline:
            return None
        return self.value / self.baseline


@dataclass
class WorkloadResult:
    """A workload's figures, the sizes it ran with, and what a reader needs to judge them."""

    name: str
    title: str
    sizes: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: str = ""  # extra markdown, e.g. EXPLAIN plans
    seconds: float = 0.0

    def figure(self, what: str) -> Figure:
        return next(f for f in self.figures if f.what == what)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), interpolated; the figures are p50 and p99."""
    if not values:
        raise ValueError("no values")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(p) - 1] \
        if 1 <= p <= 99 else (min(values) if p < 1 else max(values))


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MB, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


class Stopwatch:
    """Milliseconds of a block: `with Stopwatch() as w: ...; w.ms`."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.ms = (time.perf_counter() - self.started) * 1000
