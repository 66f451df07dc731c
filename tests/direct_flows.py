"""Running one platform's direct flow on its own, lease after lease, as the publisher
would: a real item row, the real ledger on PostgreSQL, a fake platform and the fake M06
serving the clip's bytes over loopback."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import aiohttp

from app.db.ledger import PgLedger, ledger_entries
from app.domain.model import Outcome
from app.neighbours import Media
from app.platforms.direct import (Credentials, DirectAttempt, Flow, PlatformApi,
                                  run_flow)
from app.platforms.gateway import PostRequest, PublishOutcome
from fakes.media import CONTENT_TYPE, DURATION_SECONDS, FakeMediaServer
from tests.factories import make_item, make_platform_row, unique


@dataclass
class FlowRun:
    """One (item, platform) published through `flow`; each `lease()` is the next lease of
    its attempt (a crash between two is what a test makes of it)."""

    pool: object
    session: aiohttp.ClientSession
    flow: Flow
    platform: str
    api_url: str
    media: FakeMediaServer
    item_id: str
    clip_id: str
    influencer_id: str
    caption: dict
    credentials: Credentials
    key_attempt: int = 1
    poll_seconds: float = 0.05
    timeout_seconds: float = 2.0
    outcomes: list[PublishOutcome] = field(default_factory=list)
    _leases: itertools.count = field(default_factory=lambda: itertools.count(1))

    def request(self) -> PostRequest:
        media = Media(url=self.media.media_url(self.clip_id), duration_seconds=DURATION_SECONDS,
                      size_bytes=self.media.size_bytes, content_type=CONTENT_TYPE)
        return PostRequest(item_id=self.item_id, platform=self.platform, clip_id=self.clip_id,
                           influencer_id=self.influencer_id, media_url=media.url,
                           caption=self.caption, key_attempt=self.key_attempt, media=media,
                           lease=next(self._leases))

    async def attempt(self) -> DirectAttempt:
        request = self.request()
        ledger = PgLedger(self.pool, self.item_id, self.platform, request.key_attempt,
                          request.lease)
        await ledger.claim()
        api = PlatformApi(self.api_url, self.session, self.timeout_seconds)
        return DirectAttempt(request, request.media, self.credentials, ledger, api,
                             self.poll_seconds)

    async def lease(self) -> PublishOutcome:
        """One lease: claim the ledger entry, run the flow once."""
        outcome = await run_flow(self.flow, await self.attempt())
        self.outcomes.append(outcome)
        return outcome

    async def until_settled(self, timeout: float = 20.0) -> PublishOutcome:
        """Leases until the outcome is no longer `in_progress` (waiting as told between)."""
        deadline = time.monotonic() + timeout
        while True:
            outcome = await self.lease()
            if outcome.outcome is not Outcome.IN_PROGRESS:
                return outcome
            if time.monotonic() > deadline:
                raise AssertionError(f"still in progress after {timeout} s: {outcome}")
            await asyncio.sleep(outcome.retry_after or self.poll_seconds)

    async def ledger(self) -> list[dict]:
        return [e for e in await ledger_entries(self.pool, self.item_id)
                if e["platform"] == self.platform]


async def flow_run(pool, session: aiohttp.ClientSession, flow: Flow, platform: str,
                   api_url: str, media: FakeMediaServer, *, account_id: str = "acct-1",
                   access_token: str = "token-1", caption: dict | None = None,
                   **options) -> FlowRun:
    """A claimed item with one pending platform row, ready for its flow."""
    item_id = unique("item")
    async with pool.acquire() as conn:
        await make_item(conn, status="publishing", platforms=(platform,), id=item_id)
        await make_platform_row(conn, item_id, platform, status="publishing", attempts=1)
    text = f"Summer drop {item_id}"  # unique: what the fakes' posts are matched on
    return FlowRun(pool, session, flow, platform, api_url, media, item_id,
                   f"clip-{item_id}", f"inf-{item_id}",
                   caption or {"text": text, "hashtags": ["ad", "summer"]},
                   Credentials(access_token, account_id), **options)
