"""Everything direct mode talks to, as local fakes: the four platforms, M10 (accounts) and
M06 (media), each on its own loopback port in a thread of its own. The tests' stacks and
`distribution dev --platforms fakes` start one bundle and point a worker at it with `env()`.

Tokens come from M10 as they would: each token M10 issues (and each rotation on refresh)
is made known to the TikTok fake, the one that checks tokens against its creators."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.loopback import LoopbackServer

from .accounts import FakeAccounts
from .instagram import FakeInstagram
from .media import FakeMediaServer
from .platform_kit import FakePlatform
from .snapchat import FakeSnapchat
from .tiktok import FakeTikTok
from .youtube import FakeYouTube


@dataclass
class DirectFakes:
    media: FakeMediaServer = field(default_factory=FakeMediaServer)
    accounts: FakeAccounts = field(default_factory=FakeAccounts)
    tiktok: FakeTikTok = field(default_factory=lambda: FakeTikTok(init_calls_per_minute=None))
    instagram: FakeInstagram = field(default_factory=lambda: FakeInstagram(quota_total=10_000))
    youtube: FakeYouTube = field(default_factory=FakeYouTube)
    snapchat: FakeSnapchat | None = None  # made on start: it checks uploads against `media`

    def __post_init__(self) -> None:
        self.accounts.token_listeners.append(self._tiktok_token)

    def _tiktok_token(self, platform: str, account_id: str, token: str,
                      previous: str | None) -> None:
        if platform == "tiktok":
            self.tiktok.add_creator(token, account_id, username=account_id)
            if previous:
                self.tiktok.revoke(previous)

    @property
    def platforms(self) -> dict[str, FakePlatform]:
        assert self.snapchat is not None, "not started"
        return {"tiktok": self.tiktok, "instagram": self.instagram, "youtube": self.youtube,
                "snapchat": self.snapchat}

    def _servers(self) -> list[LoopbackServer]:
        return [self.media, self.accounts, *self.platforms.values()]

    def start_in_thread(self) -> DirectFakes:
        if self.snapchat is None:
            self.snapchat = FakeSnapchat(media=self.media)
        started = []
        try:
            for server in self._servers():
                server.start_in_thread()
                started.append(server)
        except BaseException:
            for server in started:
                server.stop_thread()
            raise
        return self

    def stop_thread(self) -> None:
        for server in self._servers():
            server.stop_thread()

    def env(self, poll_seconds: float = 0.2) -> dict[str, str]:
        """A worker's settings for direct mode against these fakes."""
        p = self.platforms
        return {"DISTRIBUTION_PLATFORM_MODE": "direct",
                "DISTRIBUTION_MEDIA_BASE_URL": self.media.url,
                "DISTRIBUTION_ACCOUNTS_URL": self.accounts.url,
                "DISTRIBUTION_TIKTOK_API_URL": p["tiktok"].url,
                "DISTRIBUTION_INSTAGRAM_API_URL": p["instagram"].url,
                "DISTRIBUTION_YOUTUBE_API_URL": p["youtube"].url,
                "DISTRIBUTION_SNAPCHAT_API_URL": p["snapchat"].url,
                "DISTRIBUTION_PLATFORM_POLL_INTERVAL_SECONDS": str(poll_seconds)}
