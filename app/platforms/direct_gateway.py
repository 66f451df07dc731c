"""The gateway of direct mode: for each attempt, the account's credentials from M10, the
attempt's ledger entry claimed for its lease, and the platform's flow (app/platforms/
direct.py). A token the platform refuses is refreshed through M10 once and the flow run
again (safe: every flow reconciles from the ledger first); refused again, the answer is
`auth` and the account is held. While the flow runs its lease is kept, so that no other
worker takes the attempt over from a slow upload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import aiohttp
import asyncpg

from app.accounts import AccountsClient, NotConnected
from app.db.ledger import PgLedger
from app.db.queue import extend_lease
from app.db.posts import record_account_cap
from app.domain.errors import Unavailable
from app.domain.model import ErrorClass, Platform

from . import instagram, snapchat, tiktok, youtube
from .direct import LIVE_CAP_HANDLE, DirectAttempt, Flow, PlatformApi, run_flow
from .gateway import PostRequest, PublishOutcome, failure

log = logging.getLogger("distribution.platforms")

FLOWS: dict[Platform, Flow] = {Platform.TIKTOK: tiktok.publish,
                               Platform.INSTAGRAM: instagram.publish,
                               Platform.YOUTUBE: youtube.publish,
                               Platform.SNAPCHAT: snapchat.publish}


class DirectGateway:
    def __init__(self, pool: asyncpg.Pool, accounts: AccountsClient,
                 base_urls: dict[Platform, str], timeout_seconds: float, poll_seconds: float,
                 lease_seconds: float) -> None:
        self.pool = pool
        self.accounts = accounts
        self.base_urls = {p: url.rstrip("/") for p, url in base_urls.items()}
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, request: PostRequest) -> PublishOutcome:
        """The flow's outcome; raises LeaseLost when a later lease took the attempt over."""
        platform = Platform(request.platform)
        if request.media is None:
            return failure(ErrorClass.MEDIA, "media_unknown", "M06 said nothing of the clip")
        try:
            credentials = await self.accounts.credentials(request.influencer_id, platform)
        except (NotConnected, Unavailable) as exc:
            return _accounts_failure(exc)
        ledger = PgLedger(self.pool, request.item_id, platform.value, request.key_attempt,
                          request.lease)
        await ledger.claim()
        attempt = DirectAttempt(request, request.media, credentials, ledger,
                                PlatformApi(self.base_urls[platform], self._get_session(),
                                            self.timeout_seconds),
                                self.poll_seconds)
        async with self._leased(request):
            outcome = await run_flow(FLOWS[platform], attempt)
            if outcome.error_class is ErrorClass.AUTH:
                try:
                    credentials = await self.accounts.refresh(request.influencer_id,
                                                              platform, credentials)
                except NotConnected:
                    return outcome  # refused, and M10 cannot refresh it: needs reconnecting
                except Unavailable as exc:
                    return _accounts_failure(exc)
                log.info("token refreshed through M10 after a refusal", extra={
                    "item_id": request.item_id, "platform": platform.value,
                    "reason_code": outcome.reason_code})
                outcome = await run_flow(FLOWS[platform],
                                         replace(attempt, credentials=credentials))
        cap = ledger.entry.handles.get(LIVE_CAP_HANDLE)
        if isinstance(cap, int) and cap >= 0:
            await record_account_cap(self.pool, request.influencer_id, platform.value, cap)
        return outcome

    @contextlib.asynccontextmanager
    async def _leased(self, request: PostRequest):
        async def keep() -> None:
            while True:
                await asyncio.sleep(self.lease.total_seconds() / 3)
                until = datetime.now(timezone.utc) + self.lease
                if not await extend_lease(self.pool, request.item_id, request.platform,
                                          request.lease, until):
                    log.warning("lease taken over while the flow ran", extra={
                        "item_id": request.item_id, "platform": request.platform})
                    return

        keeper = asyncio.ensure_future(keep())
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.accounts.close()


def _accounts_failure(error: NotConnected | Unavailable) -> PublishOutcome:
    if isinstance(error, NotConnected):
        return failure(ErrorClass.AUTH, "account_not_connected", error.message)
    return failure(ErrorClass.TRANSIENT, "accounts_unavailable", error.message,
                   retry_after=error.details.get("retry_after"))
