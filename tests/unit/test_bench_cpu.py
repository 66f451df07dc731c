"""benchmarks/cpu.py: a process's CPU time with its descendants, live and exited, read from
/proc (real processes burning real CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks.cpu import CpuMeter, own_seconds, postmaster_of, tree_seconds

BURN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < {}: pass"


def test_a_tree_counts_a_child_while_it_runs_and_after_it_exited():
    me = os.getpid()
    meter = CpuMeter({"tree": me}, alone={"alone": me})
    meter.start()
    before = tree_seconds(me)
    child = subprocess.Popen([sys.executable, "-c", BURN.format(60)])
    try:
        deadline = time.monotonic() + 20
        while tree_seconds(me) - before < 0.3:  # counted while it runs
            assert time.monotonic() < deadline, "the running child's CPU was not counted"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()  # reaped: its time is now ours as children waited for
    done = subprocess.run([sys.executable, "-c", BURN.format(0.3)])
    assert done.returncode == 0
    meter.stop()
    assert meter.used["tree"] >= 0.55
    assert meter.used["alone"] < 0.25  # the children are not its own


def test_a_process_that_is_not_postgres_is_not_taken_for_its_server():
    assert postmaster_of(os.getpid()) is None
    assert own_seconds(2 ** 22 + 12345) == 0.0  # no such process
    assert tree_seconds(2 ** 22 + 12345) == 0.0
