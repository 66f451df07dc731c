"""schemathesis, driven by the served OpenAPI document, against the live worker: all
operations, all checks, positive and negative data, every phase (examples, coverage,
fuzzing, stateful), a fixed seed. Twice: with generated item ids, and pinned to a live
claimed item so that generated requests reach the state machine. Zero failures.

The first run calls as an operator (so the operator-only statistics answer 200), the second
as the item's influencer."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.factories import unique
from tests.support import operator_token, token

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def run_schemathesis(url: str, bearer: str, config: Path, report: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{url}/openapi.json",
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--mode", "all",
        "--header", f"Authorization: Bearer {bearer}", "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"})
    output, _ = await process.communicate()
    return process.returncode, output.decode(errors="replace")


@pytest.mark.parametrize("pinned", [False, True], ids=["generated-ids", "a-live-claimed-item"])
async def test_schemathesis_finds_nothing_wrong(service, claimed_item, tmp_path, pinned):
    item_id, influencer = claimed_item
    config = CONFIG
    if pinned:
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG.read_text() + f'\n[parameters]\n"path.id" = "{item_id}"\n')
    bearer = token(influencer) if pinned else operator_token(unique("operator"))
    code, output = await run_schemathesis(service.url, bearer, config, tmp_path / "junit.xml")
    print(output[-3000:])
    assert code == 0, output[-8000:]
    assert "No issues found" in output or " passed" in output
