"""The platform gateway over HTTP (DESIGN §3 "Platform gateway").

`POST {base_url}/v1/platforms/{platform}/posts` with the request body as JSON and the
`Idempotency-Key` header. Every answer, and every way the call can go wrong on the wire,
becomes a `PublishOutcome`; only programming errors and cancellation propagate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from .gateway import MAX_MESSAGE_CHARS, ErrorClass, Outcome, PostRequest, PublishOutcome

logger = logging.getLogger("distribution.platforms")



class HttpGateway:
    """Posts clips through the platform gateway; never raises for what it answered."""

    def __init__(self, base_url: str, timeout_seconds: float,
                 session: aiohttp.ClientSession | None = None) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._session = session
        self._owns_session = session is None
        self._closed = False

    def url_for(self, platform: str) -> str:
        return f"{self.base_url}/v1/platforms/{quote(platform, safe='')}/posts"

    async def post(self, request: PostRequest) -> PublishOutcome:
        started = time.monotonic()
        status: int | None = None
        try:
            status, headers, raw = await self._send(request)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            outcome = PublishOutcome(
                Outcome.TRANSIENT, error=f"timeout: no answer within {self.timeout_seconds:g}s",
                error_class=ErrorClass.TRANSIENT, reason_code="timeout")
        except (aiohttp.ClientError, OSError) as exc:
            outcome = PublishOutcome(Outcome.TRANSIENT, error=_describe_connection_error(exc),
                                     error_class=ErrorClass.TRANSIENT,
                                     reason_code="connection_error")
        else:
            outcome = interpret(status, headers, raw)
        _log(request, outcome, status, time.monotonic() - started)
        return outcome

    async def close(self) -> None:
        """Closes the session if this gateway made it; a session passed in stays open."""
        self._closed = True
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def _send(self, request: PostRequest) -> tuple[int, Any, bytes]:
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        # ClientTimeout bounds the exchange; the outer bound also covers reading the body.
        async with asyncio.timeout(self.timeout_seconds):
            async with session.post(
                self.url_for(request.platform),
                json=request.body(),
                headers={"Idempotency-Key": request.idempotency_key,
                         "Accept": "application/json"},
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                return response.status, response.headers, raw

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("HttpGateway is closed")
        if self._session is None:
            # Made on first use, inside the running loop, as aiohttp wants.
            self._session = aiohttp.ClientSession()
        return self._session


def interpret(status: int, headers: Any, raw: bytes, now: datetime | None = None) -> PublishOutcome:
    """What a gateway answer means (status, response headers, raw body)."""
    body = _json(raw)
    if 200 <= status < 300 or status == 409:
        post_id = body.get("post_id") if isinstance(body, dict) else None
        if post_id:
            url = body.get("url")
            return PublishOutcome(Outcome.PUBLISHED, post_id=str(post_id),
                                  post_url=str(url) if url is not None else None)
        if status == 409:
            # A conflict that names no post (e.g. the same key still in flight) is not a
            # definite answer: try again later with the same key.
            return PublishOutcome(
                Outcome.TRANSIENT,
                error=f"HTTP 409 without a post id: {_message(body, raw) or 'conflict'}",
                error_class=ErrorClass.TRANSIENT, reason_code="http_409")
        return PublishOutcome(Outcome.TRANSIENT, error=f"HTTP {status} with no post id",
                              error_class=ErrorClass.TRANSIENT, reason_code="no_post_id")
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After"), now=now)
        what = "rate limited" if status == 429 else "gateway error"
        message = _message(body, raw)
        return PublishOutcome(
            Outcome.TRANSIENT,
            error=f"HTTP {status} {what}" + (f": {message}" if message else ""),
            retry_after=retry_after, error_class=ErrorClass.TRANSIENT,
            reason_code=f"http_{status}")
    if 400 <= status < 500:
        message = _message(body, raw) or f"HTTP {status}"
        return PublishOutcome(Outcome.REJECTED, error=message, error_class=ErrorClass.PERMANENT,
                              reason_code=f"http_{status}")
    # 1xx/3xx: not a definite answer from the gateway (redirects are not followed).
    return PublishOutcome(Outcome.TRANSIENT, error=f"HTTP {status}: unexpected answer",
                          error_class=ErrorClass.TRANSIENT, reason_code=f"http_{status}")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date.

    Missing or unreadable gives None; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _message(body: Any, raw: bytes) -> str:
    """The gateway's message: {"message"}, {"error": {"message"}}, {"error": "..."} or the text."""
    message: Any = None
    if isinstance(body, dict):
        message = body.get("message")
        error = body.get("error")
        if not message and isinstance(error, dict):
            message = error.get("message")
        elif not message and isinstance(error, str):
            message = error
    if not message:
        message = raw.decode("utf-8", errors="replace").strip()
    text = message if isinstance(message, str) else json.dumps(message)
    return text[:MAX_MESSAGE_CHARS]


def _describe_connection_error(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        what = "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) \
            else "cannot connect"
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, ConnectionResetError)):
        what = "connection reset"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        what = "answer cut off"
    else:
        what = "connection error"
    detail = str(exc) or type(exc).__name__
    return f"{what}: {type(exc).__name__}: {detail}"[:MAX_MESSAGE_CHARS]


def _log(request: PostRequest, outcome: PublishOutcome, status: int | None,
         elapsed: float) -> None:
    level = logging.INFO if outcome.outcome is Outcome.PUBLISHED else logging.WARNING
    logger.log(
        level, "platform post %s: %s %s", outcome.outcome.value, request.platform,
        request.item_id,
        extra={"action": "platform_post", "item_id": request.item_id,
               "platform": request.platform, "idempotency_key": request.idempotency_key,
               "outcome": outcome.outcome.value, "http_status": status,
               "post_id": outcome.post_id, "error": outcome.error,
               "retry_after": outcome.retry_after,
               "duration_ms": round(elapsed * 1000, 1)})
