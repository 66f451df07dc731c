"""An account's posts on a platform, as the quota check counts them."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from app.domain.model import Platform

from .pool import translate_errors
from .queries import Q


async def record_account_cap(pool: asyncpg.Pool, influencer_id: str, platform: str,
                             cap: int) -> None:
    """The account's live posting cap, as the platform just said it."""
    async with translate_errors():
        await pool.execute(Q["record_account_cap"], influencer_id, platform, cap)


class AccountPosts:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def times(self, influencer_id: str, platforms: set[Platform], since: datetime,
                    now: datetime, item_id: str) -> dict[Platform, list[datetime]]:
        """When each post of the account went out or is due, per platform, from `since`
        on (the item `item_id` left out). Until the transaction ends, no other quota check
        of the account on these platforms runs."""
        ordered = sorted(platforms)  # one lock order for every transaction: no deadlock
        for platform in ordered:
            await self.conn.execute(Q["lock_account_posts"], influencer_id, platform.value)
        return {platform: [r["at"] for r in await self.conn.fetch(
                    Q["account_post_times"], influencer_id, platform.value, since, now,
                    item_id)]
                for platform in ordered}

    async def live_caps(self, influencer_id: str,
                        platforms: set[Platform]) -> dict[Platform, int]:
        """The caps the platforms last said for the account (direct mode reads them)."""
        rows = await self.conn.fetch(Q["account_caps"], influencer_id,
                                     sorted(p.value for p in platforms))
        return {Platform(r["platform"]): r["cap"] for r in rows}
