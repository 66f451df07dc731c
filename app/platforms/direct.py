"""Publishing through each platform's own API (`DISTRIBUTION_PLATFORM_MODE=direct`).

No platform recognises a repeated post, so exactly-once rests on our attempt ledger
(app/db/ledger.py): for each (item, platform, key attempt) a flow writes its step and each
handle the platform gave (TikTok's publish id, Instagram's container, YouTube's session
URI, Snapchat's media id) **before** the step that can create a post. Every flow starts by
reading what the ledger holds and reconciling from it, so running a flow again, after a
crash, a timeout, a lost answer or an auth refresh, never sends what could post twice.

A flow advances as far as it can in one lease and returns: published (post id in hand);
in progress (the platform is still working: look again after the poll interval, no attempt
spent); a classed failure; or unknown (the outcome cannot be established: an operator
settles it). The platform modules: tiktok, instagram, youtube, snapchat.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from app.domain.model import ErrorClass

from .gateway import PostRequest, PublishOutcome, failure
from .http import parse_retry_after

if TYPE_CHECKING:
    from app.neighbours import Media


@dataclass(frozen=True)
class Credentials:
    """An account's access, as M10 answers it."""

    access_token: str
    platform_account_id: str  # Instagram user id, Snapchat profile id, TikTok open_id
    expires_at: datetime | None = None


@dataclass(frozen=True)
class LedgerEntry:
    """What one attempt at one (item, platform) has done so far. `step` is the flow's own
    name for the last thing recorded ("started" before anything); `handles` merge."""

    step: str
    handles: Mapping[str, Any]
    started_at: datetime
    updated_at: datetime


#: The handle under which a flow records the account's live posting cap when the platform
#: says it (Instagram's content_publishing_limit `quota_total`); the runner keeps it per
#: account, and planned posts are checked against it instead of the configured cap.
LIVE_CAP_HANDLE = "quota_total"


class LeaseLost(Exception):
    """Another lease took this attempt over; this one must stop without sending anything."""


class Ledger(Protocol):
    """The ledger entry of one leased attempt. Each `record` is committed before it returns;
    it raises LeaseLost once a later lease has claimed the entry."""

    @property
    def entry(self) -> LedgerEntry: ...

    async def record(self, step: str, **handles: Any) -> LedgerEntry: ...


class FlowStopped(Exception):
    """Raised inside a flow to end it with an outcome (an error answer, a lost call)."""

    def __init__(self, outcome: PublishOutcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


# --- calls -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        """The JSON body, or None when there is none or it is not JSON."""
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            return None

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


@dataclass
class PlatformApi:
    """One platform's API: its base URL (a setting; tests point it at a fake), the shared
    session and the timeout of one call."""

    base_url: str
    session: aiohttp.ClientSession
    timeout_seconds: float

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    async def call(self, method: str, path: str, *, timeout_seconds: float | None = None,
                   **kwargs: Any) -> Reply:
        """One request; its answer whatever the status. A call that gets no answer (timeout,
        refused, reset, cut off) stops the flow as transient: the ledger says what may have
        happened, and the next attempt reconciles from it."""
        seconds = timeout_seconds or self.timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                async with self.session.request(method, self.url(path), allow_redirects=False,
                                                **kwargs) as response:
                    return Reply(response.status, response.headers, await response.read())
        except TimeoutError:
            raise FlowStopped(failure(ErrorClass.TRANSIENT, "timeout",
                                      f"{method} {path}: no answer within {seconds:g}s"))
        except (aiohttp.ClientError, OSError) as exc:
            raise FlowStopped(failure(ErrorClass.TRANSIENT, "connection_error",
                                      f"{method} {path}: {type(exc).__name__}: {exc}"))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class DirectAttempt:
    """What a platform flow works with."""

    request: PostRequest
    media: Media
    credentials: Credentials
    ledger: Ledger
    api: PlatformApi
    poll_seconds: float
    now: Callable[[], datetime] = field(default=utcnow)

    @property
    def entry(self) -> LedgerEntry:
        return self.ledger.entry


#: A platform's flow: reconcile from the ledger, then advance as far as it can.
Flow = Callable[[DirectAttempt], Awaitable[PublishOutcome]]


async def run_flow(flow: Flow, attempt: DirectAttempt) -> PublishOutcome:
    """The flow's outcome; a flow stopped by an answer or a lost call ends with its own."""
    try:
        return await flow(attempt)
    except FlowStopped as stopped:
        return stopped.outcome
