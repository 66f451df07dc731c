"""M10 (connected accounts) as a real HTTP server on loopback: `GET
/api/v1/accounts/{influencer_id}/{platform}` answers the account's access token, its expiry
and the platform's account id; `POST …/refresh` rotates the token (the previous one is
refused by the platform fakes that check tokens). An account is connected on first sight
unless a test says otherwise:

    m10 = FakeAccounts(); m10.start_in_thread()
    m10.disconnect("inf-1", "tiktok")           # 404: not connected
    m10.refuse_refresh("inf-2", "youtube")      # refresh answers 409: needs reconnecting
    m10.script("inf-3", "instagram", 503)       # the next call fails, then answers again
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from aiohttp import web

from app.loopback import LoopbackServer

ROUTE = "/api/v1/accounts/{influencer_id}/{platform}"


class FakeAccounts(LoopbackServer):
    def __init__(self, host: str = "127.0.0.1", token_ttl_seconds: float = 3600,
                 required_token: str | None = None) -> None:
        super().__init__(host)
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self.required_token = required_token
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], str] = {}
        self._disconnected: set[tuple[str, str]] = set()
        self._refresh_refused: set[tuple[str, str]] = set()
        self._scripts: dict[tuple[str, str], deque[int]] = {}
        self._serial = itertools.count(1)
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (method, influencer, platform)
        #: Told of each token issued: (platform, account id, new token, the token it
        #: replaces or None). A platform fake that checks tokens learns them this way.
        self.token_listeners: list[Callable[[str, str, str, str | None], None]] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(ROUTE, self._account)
        app.router.add_post(ROUTE + "/refresh", self._refresh)

    @staticmethod
    def account_id(influencer_id: str, platform: str) -> str:
        """The platform's id of the influencer's account (Instagram user, Snapchat profile,
        TikTok open_id)."""
        return f"{platform}-{influencer_id}"

    def token_of(self, influencer_id: str, platform: str) -> str:
        """The account's current token (made on first sight)."""
        key = (influencer_id, platform)
        with self._lock:
            token = self._tokens.get(key)
        return token or self._issue(key)

    def _issue(self, key: tuple[str, str]) -> str:
        influencer_id, platform = key
        with self._lock:
            previous = self._tokens.get(key)
            token = self._tokens[key] = f"tok-{platform}-{influencer_id}-{next(self._serial)}"
        for listener in self.token_listeners:
            listener(platform, self.account_id(influencer_id, platform), token, previous)
        return token

    def disconnect(self, influencer_id: str, platform: str) -> None:
        with self._lock:
            self._disconnected.add((influencer_id, platform))

    def refuse_refresh(self, influencer_id: str, platform: str, refused: bool = True) -> None:
        with self._lock:
            (self._refresh_refused.add if refused else self._refresh_refused.discard)(
                (influencer_id, platform))

    def script(self, influencer_id: str, platform: str, *statuses: int) -> None:
        with self._lock:
            self._scripts.setdefault((influencer_id, platform), deque()).extend(statuses)

    def _scripted(self, key: tuple[str, str]) -> int | None:
        with self._lock:
            queue = self._scripts.get(key)
            return queue.popleft() if queue else None

    def _answer(self, influencer_id: str, platform: str) -> web.Response:
        expires = datetime.now(timezone.utc) + self.token_ttl
        return web.json_response({
            "access_token": self.token_of(influencer_id, platform),
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "platform_account_id": self.account_id(influencer_id, platform)})

    def _refused(self, request: web.Request, key: tuple[str, str]) -> web.Response | None:
        self.calls[(request.method, *key)] += 1
        if self.required_token and request.headers.get("Authorization") != \
                f"Bearer {self.required_token}":
            return web.json_response({"error": {"message": "service token required"}},
                                     status=401)
        status = self._scripted(key)
        if status is not None:
            return web.json_response({"error": {"message": f"scripted {status}"}},
                                     status=status)
        if key in self._disconnected:
            return web.json_response({"error": {"message": "not connected"}}, status=404)
        return None

    async def _account(self, request: web.Request) -> web.Response:
        key = (request.match_info["influencer_id"], request.match_info["platform"])
        return self._refused(request, key) or self._answer(*key)

    async def _refresh(self, request: web.Request) -> web.Response:
        key = (request.match_info["influencer_id"], request.match_info["platform"])
        refused = self._refused(request, key)
        if refused is not None:
            return refused
        if key in self._refresh_refused:
            return web.json_response({"error": {"message": "the grant was revoked: the "
                                                "influencer must reconnect"}}, status=409)
        self._issue(key)
        return self._answer(*key)
