"""Reliability scenarios: each builds an isolated stack, injects a fault, and records its
figures (events pushed, faults injected, lost, doubled) in .reliability/figures.jsonl."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.stack import isolated_stack

FIGURES = Path(__file__).resolve().parents[2] / ".reliability" / "figures.jsonl"


@pytest.fixture
async def stack(create_database, tmp_path):
    async with isolated_stack(create_database, tmp_path) as s:
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
