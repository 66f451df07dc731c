"""Reliability scenarios: each builds an isolated stack, injects a fault, and records its
figures (events pushed, faults injected, lost, doubled) in .reliability/figures.jsonl."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.stack import open_stack

FIGURES = Path(__file__).resolve().parents[2] / ".reliability" / "figures.jsonl"


@pytest.fixture
async def stack(database_server, tmp_path):
    """A stack of the test's own: its broker, fake platforms and database (a clone on the
    shared server), since these tests break things."""
    async with open_stack(tmp_path, database_server=database_server) as s:
        yield s


@pytest.fixture
def record_figures(request):
    """record_figures(events=..., faults=..., lost=..., doubled=..., **more)"""

    def record(**figures) -> None:
        FIGURES.parent.mkdir(exist_ok=True)
        with FIGURES.open("a") as f:
            f.write(json.dumps({"test": request.node.name, "at": time.time(), **figures}) + "\n")
        print(f"\nfigures {request.node.name}: {figures}")

    return record
