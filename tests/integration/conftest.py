"""Fixtures shared by the integration tests of the direct flows and of DirectGateway."""

from __future__ import annotations

import aiohttp
import pytest

from fakes.direct import DirectFakes
from fakes.media import FakeMediaServer
from fakes.tiktok import FakeTikTok

#: The clip size `media` serves unless the test module sets its own `MEDIA_SIZE`.
DEFAULT_MEDIA_SIZE = 300_000


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def media(request):
    """The fake M06, serving clips of the test module's `MEDIA_SIZE` bytes (default 300 kB)."""
    size = getattr(request.module, "MEDIA_SIZE", DEFAULT_MEDIA_SIZE)
    async with FakeMediaServer(size_bytes=size) as server:
        yield server


@pytest.fixture
def fakes():
    """The direct-mode fakes (M10, M06 and the platforms) served from a thread of their own,
    TikTok's processing quick and its init calls not rate-limited."""
    bundle = DirectFakes(tiktok=FakeTikTok(processing_seconds=0.02,
                                           init_calls_per_minute=None))
    bundle.start_in_thread()
    try:
        yield bundle
    finally:
        bundle.stop_thread()
