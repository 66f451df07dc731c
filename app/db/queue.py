"""The two queues the worker's loops take work from, both tables read with SKIP LOCKED so
that each piece goes to one worker:

- due items: scheduled items whose time has come. Taking one marks it enqueued; its
  publish-due command is then sent, and an enqueue older than the requeue delay is taken
  again (the command may have been lost).
- platform attempts. The lease rule: taking an attempt records it before the call (status
  `publishing`, attempts + 1) and sets `next_attempt_at` to the end of its lease. The answer
  comes back as a command that settles the row; if none comes (the worker died, the answer
  was lost), the attempt is taken again once the lease has run out, with the same
  idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.domain.model import Platform

from .items import caption_from_json
from .pool import translate_errors
from .queries import Q


@dataclass(frozen=True)
class DueItem:
    item_id: str
    scheduled_at: datetime


@dataclass(frozen=True)
class PlatformAttempt:
    item_id: str
    platform: str
    attempts: int
    key_attempt: int
    influencer_id: str
    clip_id: str
    caption: dict[str, Any]
    overlays: list[dict[str, Any]]
    lease: int = 0  # numbers the platform's leases: a later one fences an earlier one off


async def take_due_items(pool: asyncpg.Pool, now: datetime, limit: int,
                         requeue_after: timedelta) -> list[DueItem]:
    # one statement, its own transaction: no BEGIN and COMMIT round trips around it
    async with translate_errors():
        rows = await pool.fetch(Q["take_due_items"], now, limit, now - requeue_after)
    return [DueItem(r["id"], r["scheduled_at"]) for r in rows]


def _caption_for(data: dict[str, Any] | None, platform: str) -> dict[str, Any]:
    caption = caption_from_json(data)
    if caption is None:
        return {"text": "", "hashtags": []}
    text = caption.for_platform(Platform(platform))
    body = {"text": text.text, "hashtags": list(text.hashtags)}
    if text.title is not None:
        body["title"] = text.title
    return body


ALL_PLATFORMS = tuple(p.value for p in Platform)
#: Platforms whose calls hold much memory each (a Snapchat upload holds a part of the clip
#: of up to 32 MB), and the others.
HEAVY_PLATFORMS = (Platform.SNAPCHAT.value,)
LIGHT_PLATFORMS = tuple(p for p in ALL_PLATFORMS if p not in HEAVY_PLATFORMS)


async def lease_platform_attempts(pool: asyncpg.Pool, now: datetime, limit: int,
                                  lease: timedelta, platforms: Sequence[str] = ALL_PLATFORMS
                                  ) -> list[PlatformAttempt]:
    """Up to `limit` attempts on `platforms`, each leased until now + lease (the rule
    above)."""
    async with translate_errors():  # one statement, its own transaction
        rows = await pool.fetch(Q["lease_platform_attempts"], now, limit, now + lease,
                                list(platforms))
    return [PlatformAttempt(r["item_id"], r["platform"], r["attempts"], r["key_attempt"],
                            r["influencer_id"], r["clip_id"],
                            _caption_for(r["caption"], r["platform"]), r["overlays"],
                            r["lease"])
            for r in rows]


async def extend_lease(pool: asyncpg.Pool, item_id: str, platform: str, lease: int,
                       until: datetime) -> bool:
    """Keeps a lease while its call is under way (a long upload); False once another
    lease took the attempt over."""
    async with translate_errors():
        return bool(await pool.fetchval(Q["extend_lease"], item_id, platform, lease, until))


async def lease_round(pool: asyncpg.Pool, now: datetime, lease: timedelta, places: int,
                      heavy_places: int) -> list[PlatformAttempt]:
    """Attempts for up to `places` free places, at most `heavy_places` of them on the heavy
    platforms. Those are leased first: within their few places they cannot crowd the others
    out, and a backlog of the others must not hold them back."""
    heavy = min(places, heavy_places)
    attempts = (await lease_platform_attempts(pool, now, heavy, lease, HEAVY_PLATFORMS)
                if heavy > 0 else [])
    if len(attempts) < places:
        attempts += await lease_platform_attempts(pool, now, places - len(attempts), lease,
                                                  LIGHT_PLATFORMS)
    return attempts
