"""M09's `clips` table, read-only: which campaign a clip belongs to. M09 owns the table; our
migrations never create or alter it (local stacks and tests use a stand-in)."""

from __future__ import annotations

import asyncpg

from .queries import Q


class ClipRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def campaigns_for(self, clip_ids: list[str]) -> dict[str, str]:
        """clip id -> campaign id; unknown clips are left out."""
        if not clip_ids:
            return {}
        rows = await self.conn.fetch(Q["campaigns_for_clips"], clip_ids)
        return {r["clip_id"]: r["campaign_id"] for r in rows}
