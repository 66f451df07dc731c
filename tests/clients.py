"""Clients of a running service, as its neighbours use it: its topics (M09 producing claims,
readers of the outcome topics) and its HTTP API (an influencer with a token); and the one
way the tests get a claimed item: produce the claim, wait until GET shows the item."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import NamedTuple

import aiohttp
from aiokafka import AIOKafkaProducer

from app.replay import read_topics
from app.topics import CLAIMED
from tests.factories import new_claimed_event
from tests.support import eventually, token


class Topics:
    """Produce to and read from the service's topics, as a neighbour would."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> Topics:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await self.producer.start()
        return self

    async def stop(self) -> None:
        await self.producer.stop()

    async def produce(self, topic: str, value: bytes | dict, key: str | None = None) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self.producer.send_and_wait(topic, raw, key=key.encode() if key else None)

    async def produce_fast(self, topic: str, events: list[dict]) -> None:
        """All events in flight at once (the producer batches them), each keyed by its
        envelope's partition key."""
        futures = [await self.producer.send(topic, json.dumps(ev).encode(),
                                            key=ev["partition_key"].encode())
                   for ev in events]
        await asyncio.gather(*futures)

    async def read_all(self, topic: str) -> list:
        """Every record now on the topic (all partitions, from the start)."""
        return [r async for r in read_topics(self.bootstrap, [topic], 0, None)]

    async def records_for(self, topic: str, key: str) -> list[dict]:
        return [json.loads(r.value) for r in await self.read_all(topic)
                if r.key is not None and r.key.decode() == key]


class Api:
    """HTTP calls to a worker as an influencer."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base = base_url
        self.session = session

    def item_url(self, item_id: str, action: str = "") -> str:
        return f"{self.base}/api/v1/distribution/items/{item_id}" + (f"/{action}" if action else "")

    async def call(self, method: str, url: str, sub: str | None = None, body=None,
                   headers: dict | None = None) -> tuple[int, dict]:
        h = dict(headers or {})
        if sub is not None:
            h["Authorization"] = f"Bearer {token(sub)}"
        async with self.session.request(method, url, json=body, headers=h,
                                        allow_redirects=False) as r:
            try:
                data = await r.json(content_type=None)
            except ValueError:
                data = {"text": await r.text()}
            return r.status, data

    async def post(self, item_id: str, action: str, sub: str, body=None, **kw):
        return await self.call("POST", self.item_url(item_id, action), sub,
                               {} if body is None else body, **kw)

    async def get(self, item_id: str, sub: str, action: str = ""):
        return await self.call("GET", self.item_url(item_id, action), sub)

    async def wait_for_item(self, item_id: str, sub: str, timeout: float = 30.0,
                            status: str | None = None) -> dict:
        async def probe():
            code, body = await self.get(item_id, sub)
            if code == 200 and (status is None or body["status"] == status):
                return body
            return None
        return await eventually(probe, timeout=timeout,
                                what=f"item {item_id} {status or 'exists'}")


class ClaimedItem(NamedTuple):
    item_id: str
    influencer: str
    item: dict  # what GET answered once the item existed


async def claim_and_wait(topics: Topics, api: Api, event: dict | None = None,
                         timeout: float = 30.0) -> ClaimedItem:
    """Produces a claimed event (by default one for a new item, clip, influencer and
    campaign), then waits until GET shows its item."""
    [claimed] = await claim_all_and_wait(topics, [api], [event or new_claimed_event()],
                                         timeout)
    return claimed


async def claim_all_and_wait(topics: Topics, apis: Sequence[Api], events: Sequence[dict],
                             timeout: float = 30.0) -> list[ClaimedItem]:
    """Produces every event first (keyed by claim id, as M09 does), then waits for each
    item in turn, asking the `apis` in rotation: any worker must serve any item."""
    for event in events:
        await topics.produce(CLAIMED, event, key=event["data"]["claim_id"])
    claimed = []
    for n, event in enumerate(events):
        item_id, influencer = event["data"]["claim_id"], event["data"]["influencer_id"]
        item = await apis[n % len(apis)].wait_for_item(item_id, influencer, timeout=timeout)
        claimed.append(ClaimedItem(item_id, influencer, item))
    return claimed



async def failed_on_snapchat(topics: Topics, api: Api, fake_platforms) -> ClaimedItem:
    """A new item published to TikTok and Snapchat, Snapchat refusing its caption for good:
    the item ends `failed` (TikTok published)."""
    from fakes.gateway import Answer

    item_id, influencer, _ = await claim_and_wait(topics, api)
    fake_platforms.script("snapchat", Answer.status(400, message="caption rejected"))
    code, _ = await api.post(item_id, "publish-multi", influencer,
                             {"platforms": ["tiktok", "snapchat"]})
    assert code == 202
    item = await api.wait_for_item(item_id, influencer, status="failed")
    return ClaimedItem(item_id, influencer, item)
