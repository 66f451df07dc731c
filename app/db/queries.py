"""Reads queries.sql into a name -> SQL mapping.

Each statement in the file starts with `-- name: <name>` and a one-line purpose; its
positional parameters ($1, $2, ...) are listed in that header.
"""

from __future__ import annotations

import re
from importlib.resources import files

_HEADER = re.compile(r"^-- name: (\S+)\s*$", re.MULTILINE)


def load(text: str) -> dict[str, str]:
    parts = _HEADER.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        sql = "\n".join(line for line in body.strip().splitlines()
                        if not line.lstrip().startswith("--")).strip()
        if name in queries:
            raise ValueError(f"query {name} is defined twice")
        queries[name] = sql
    return queries


Q = load(files("app.db").joinpath("queries.sql").read_text())
