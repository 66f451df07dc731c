"""Applies migrations/*.sql in name order, each once, one migrator at a time."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

from .queries import Q

log = logging.getLogger("distribution.migrate")

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    return sorted(directory.glob("*.sql"))


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is missing; returns the versions applied now. Safe to run concurrently."""
    applied_now = []
    async with conn.transaction():
        # The lock is taken before the table exists, so two first migrators wait on each other.
        await conn.execute(Q["lock_migrations"])
        await conn.execute(Q["create_migrations_table"])
        done = {r["version"] for r in await conn.fetch(Q["applied_migrations"])}
        for path in migration_files(directory):
            version = path.stem
            if version in done:
                continue
            log.info("applying migration", extra={"migration": version})
            await conn.execute(path.read_text())
            await conn.execute(Q["record_migration"], version)
            applied_now.append(version)
    return applied_now
