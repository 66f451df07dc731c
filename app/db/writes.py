"""The writes of a batch of commands, gathered from the repositories and sent as one
statement (`write_batch`: items, platform rows, analytics, outbox, applied commands,
platform answers), after
the rare statements that must come first (captions, overlays, dropped platform rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from .queries import Q

#: The columns of each part of `write_batch`, in its parameters' order.
COLUMNS = {"items": 8, "platform_rows": 13, "analytics": 8, "outbox": 4, "commands": 4,
           "attempts": 8}


@dataclass
class BatchWrites:
    items: list[tuple] = field(default_factory=list)
    platform_rows: list[tuple] = field(default_factory=list)
    analytics: list[tuple] = field(default_factory=list)
    outbox: list[tuple] = field(default_factory=list)  # in the order the events go out
    commands: list[tuple] = field(default_factory=list)
    attempts: list[tuple] = field(default_factory=list)  # platform answers (the timeline)
    first: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def before(self, query: str, *args: Any) -> None:
        """A statement of its own, sent before the batch's (rare: one per caption, ...)."""
        self.first.append((query, args))

    async def send(self, conn: asyncpg.Connection) -> None:
        for query, args in self.first:
            await conn.execute(Q[query], *args)
        parts = [getattr(self, part) for part in COLUMNS]
        if not any(parts):
            return
        columns: list[list[Any]] = []
        for rows, width in zip(parts, COLUMNS.values()):
            columns.extend(map(list, zip(*rows)) if rows else ([] for _ in range(width)))
        await conn.execute(Q["write_batch"], *columns)
