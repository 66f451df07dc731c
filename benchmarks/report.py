"""BENCHMARKS.md: the machine, the command, then a table per workload."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.measure import Figure, WorkloadResult

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunInfo:
    command: str
    quick: bool
    postgres: str  # "15.4 (the server at …)" or "(embedded)"
    broker: str
    seconds: float = 0.0


def commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "app",
                                "agents", "web"], capture_output=True, text=True).stdout
        return out + (" (with uncommitted changes in app/, agents/ or web/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) < 10 \
        else f"{value:,.1f}"
    return text + ({"/s": "/s", "ms": " ms", "s": " s", "MB": " MB", "×": "×"}.get(unit, ""))


def figure_row(f: Figure) -> str:
    met = {True: "yes", False: "**no**", None: "—"}[f.met]
    ratio = "—" if f.ratio is None else f"{f.ratio:.2f}" if f.ratio >= 0.1 else f"{f.ratio:.2g}"
    baseline = (f"{number(f.baseline, f.unit)} ({f.baseline_what})" if f.baseline is not None
                else "—")
    return f"| {f.what} | {number(f.value, f.unit)} | {baseline} | {ratio} | {f.target} | {met} |"


#: The hand-written log of the performance work (what changed, figures before and after):
#: a run carries it over from the report it replaces.
HISTORY = "## Performance work"


def kept_history(previous: str) -> str:
    """The performance-work section of an earlier report (empty if it has none)."""
    start = previous.find(f"\n{HISTORY}\n")
    if start < 0:
        return ""
    end = previous.find("\n## ", start + 1)
    return previous[start + 1:end if end >= 0 else len(previous)].rstrip() + "\n"


def render(results: list[WorkloadResult], info: RunInfo, history: str = "") -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?") \
        if Path("/proc/cpuinfo").exists() else platform.processor()
    lines = [
        "# Benchmarks", "",
        "Written by `distribution bench` (code in `benchmarks/`). Every figure stands beside a "
        "baseline measured in the same run on the same machine, because these machines are "
        "shared and noisy: compare ratios, and figures only within one run. A worker is a real "
        "`distribution worker` process (simulated platforms, no rate or posting limits, "
        "production timers otherwise; see `benchmarks/stack.py`).", "",
        "| run | |", "|---|---|",
        f"| date | {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC |",
        f"| command | `{info.command}` |",
        f"| mode | {'quick (CI sizes)' if info.quick else 'full'} |",
        f"| commit | {commit()} |",
        f"| machine | {os.cpu_count()} cores ({cpu}), {platform.system()} "
        f"{platform.release()} |",
        f"| Python | {sys.version.split()[0]} |",
        f"| PostgreSQL | {info.postgres} |",
        f"| broker | {info.broker} |",
        f"| duration | {info.seconds:,.0f} s |", "",
        "Ratio = figure ÷ baseline; \"met\" compares the figure with the issue's target.", ""]
    if history:
        lines += [history.rstrip(), ""]
    for r in results:
        lines += [f"## {r.title}", "", f"Sizes: {r.sizes}. Took {r.seconds:,.0f} s.", "",
                  "| figure | value | baseline (same run) | ratio | target | met |",
                  "|---|---|---|---|---|---|", *map(figure_row, r.figures), ""]
        lines += [*r.notes, ""] if r.notes else []
        if r.details:
            lines += [r.details, ""]
    return "\n".join(lines).rstrip() + "\n"
