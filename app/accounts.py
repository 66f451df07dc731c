"""Connected accounts: their credentials from M10 (the module that owns them), and the
notice that an account on hold is usable again.

M10's owner API (`DISTRIBUTION_ACCOUNTS_URL`): `GET {url}/api/v1/accounts/{influencer}/
{platform}` answers `{"access_token", "expires_at", "platform_account_id"}` (404: not
connected); `POST …/refresh` after the platform refused a token, same answer. Tokens are
kept until shortly before they expire; one refresh per account at a time, so that the
posts of an account that meet a refused token together cause one refresh, not one each.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import aiohttp
import asyncpg
from pydantic import AwareDatetime, BaseModel, Field

from app.db.pool import translate_errors
from app.db.unit_of_work import unit_of_work
from app.domain.errors import NotFound, Unavailable
from app.envelope import account_envelope
from app.platforms.direct import Credentials
from app.platforms.http import parse_retry_after
from app.topics import RECONNECTED

log = logging.getLogger("distribution.accounts")

#: A token this close to its expiry is fetched again before use.
EXPIRY_MARGIN = timedelta(seconds=60)


class NotConnected(NotFound):
    """M10 knows no usable account of the influencer on the platform."""

    code = "not_found"


class AccountAnswer(BaseModel):
    access_token: str = Field(min_length=1)
    expires_at: AwareDatetime | None = None
    platform_account_id: str = Field(min_length=1)


class AccountsClient:
    def __init__(self, base_url: str, token: str | None, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[tuple[str, str], Credentials] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def credentials(self, influencer_id: str, platform: str) -> Credentials:
        key = (influencer_id, platform)
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._cache.get(key)
            if cached is not None and _fresh(cached):
                return cached
            return await self._fetch("GET", key)

    async def refresh(self, influencer_id: str, platform: str,
                      refused: Credentials) -> Credentials:
        """New credentials after the platform refused `refused`; a refresh another post of
        the account made meanwhile is used as it is."""
        key = (influencer_id, platform)
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._cache.get(key)
            if cached is not None and cached.access_token != refused.access_token \
                    and _fresh(cached):
                return cached
            return await self._fetch("POST", key, "/refresh")

    def forget(self, influencer_id: str, platform: str) -> None:
        self._cache.pop((influencer_id, platform), None)

    async def _fetch(self, method: str, key: tuple[str, str], suffix: str = "") -> Credentials:
        influencer_id, platform = key
        url = (f"{self.base_url}/api/v1/accounts/{quote(influencer_id, safe='')}/"
               f"{quote(platform, safe='')}{suffix}")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=self.headers)
        try:
            async with self._session.request(method, url) as response:
                if response.status in (404, 409, 410):
                    self._cache.pop(key, None)
                    raise NotConnected(f"M10 answered {response.status}: the account is not "
                                       "connected or cannot be refreshed",
                                       influencer_id=influencer_id, platform=platform)
                if response.status in (401, 403):
                    # our own token refused: no account is to blame (nor held for it)
                    log.error("M10 refused the service's token (DISTRIBUTION_ACCOUNTS_TOKEN)",
                              extra={"status": response.status})
                    raise Unavailable(f"M10 refused the service's token ({response.status})")
                if response.status != 200:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise Unavailable(f"M10 answered {response.status}",
                                      **({"retry_after": retry_after} if retry_after else {}))
                answer = AccountAnswer.model_validate(await response.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValidationError too
            raise Unavailable("M10 cannot be reached or answered what we cannot read",
                              reason=type(exc).__name__) from exc
        credentials = Credentials(answer.access_token, answer.platform_account_id,
                                  answer.expires_at)
        self._cache[key] = credentials
        return credentials

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _fresh(credentials: Credentials) -> bool:
    return (credentials.expires_at is None
            or credentials.expires_at - EXPIRY_MARGIN > datetime.now(timezone.utc))


async def account_reconnected(pool: asyncpg.Pool, influencer_id: str, platform: str,
                              now: datetime, trace_id: str | None = None) -> bool:
    """Lifts the account's hold (its held posts are due at once) and says so on
    distribution.accounts; False when the account was not held."""
    async with translate_errors(), unit_of_work(pool) as uow:
        hold = await uow.accounts.release(influencer_id, platform)
        if hold is None:
            return False
        topic, envelope = account_envelope(RECONNECTED, influencer_id, platform, now,
                                           trace_id=trace_id)
        uow.outbox.add(topic, envelope)
        await uow.commit()
    log.info("account reconnected: its held posts are due", extra={
        "influencer_id": influencer_id, "platform": platform,
        "held_since": hold.held_at.isoformat()})
    return True
