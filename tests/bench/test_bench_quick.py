"""`distribution bench --quick` end to end: every workload runs on the real stack (worker
processes, broker, PostgreSQL) and yields its figures, and the report names each one.
No thresholds: how fast is the benchmark's business, not a test's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run import WORKLOADS, bench

ROOT = Path(__file__).resolve().parents[2]
#: Workloads whose figures stand beside a baseline measured in the same run.
WITH_BASELINE = {"ingestion", "round_trip", "commands", "due_publishing", "two_workers"}
TITLES = {"ingestion": "## Claim ingestion", "round_trip": "## One client, commands in a row",
          "commands": "## Commands, 32 concurrent clients", "due_publishing": "## Due publishing",
          "two_workers": "## Two workers", "growth": "## Growth", "memory": "## Memory"}


@pytest.mark.timeout(240)
async def test_quick_bench_runs_every_workload_with_its_figures(tmp_path):
    """In-process, to look at the results themselves (the workers are processes)."""
    report = tmp_path / "BENCHMARKS.md"
    results = await bench(quick=True, database_url=os.environ.get("DATABASE_URL"),
                          output=report)
    assert {r.name for r in results} == set(WORKLOADS) == set(TITLES)
    for result in results:
        assert result.figures, f"{result.name} produced no figures"
        for figure in result.figures:
            if figure.what.startswith("CPU per") and not figure.what.endswith("all of these"):
                assert figure.value >= 0, figure  # a process may take no clock tick in it
                continue
            assert figure.value > 0, f"{result.name}: {figure.what} is {figure.value}"
            if result.name in WITH_BASELINE:
                assert figure.baseline is None or figure.baseline > 0, figure
        if result.name in WITH_BASELINE:
            assert result.figures[0].baseline, f"{result.name} has no baseline"
    for name, per in (("commands", "command"), ("due_publishing", "item-platform")):
        measured = {f.what for f in next(r for r in results if r.name == name).figures}
        assert {f"CPU per {per}: worker-1", f"CPU per {per}: broker",
                f"CPU per {per}: all of these"} <= measured, measured
        cores = [f for f in next(r for r in results if r.name == name).figures
                 if f.what.startswith("cores busy at")]
        assert cores and all(f.baseline == os.cpu_count() for f in cores), cores
    parts = [f.what for f in next(r for r in results if r.name == "round_trip").figures
             if f.what.startswith("mean, ")]
    assert len(parts) == 2, parts  # issue to commit (the worker's metric), the transaction
    growth = next(r for r in results if r.name == "growth")
    assert "EXPLAIN" in growth.details
    text = report.read_text()
    for name, title in TITLES.items():
        assert title in text, f"the report has no section for {name}"


def test_the_command_line_reaches_the_benchmarks():
    """`distribution bench` is wired to benchmarks/ (an unknown workload is refused before
    anything starts)."""
    done = subprocess.run([sys.executable, "-m", "app.cli", "bench", "--only", "nonsense"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown workloads: nonsense" in done.stderr
