"""The service as a real worker process, and a client for its topics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from app.embedded import free_port
from app.replay import read_topics
from tests.support import DOWNLOAD_SECRET, JWT_SECRET, eventually, token

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServiceProcess:
    """`distribution worker` in its own process, started and stopped by its pid."""

    database_url: str
    bootstrap: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        env = {**os.environ, "DATABASE_URL": self.database_url,
               "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
               "DISTRIBUTION_WEB_PORT": str(self.port),
               "DISTRIBUTION_JWT_SECRET": JWT_SECRET,
               "DISTRIBUTION_DOWNLOAD_SECRET": DOWNLOAD_SECRET,
               # Tests call fast and often, as one caller; the limit has a test of its own.
               "DISTRIBUTION_RATE_LIMIT_PER_SECOND": "10000",
               "DISTRIBUTION_RATE_LIMIT_BURST": "10000",
               "DISTRIBUTION_TOPIC_PARTITIONS": "4",
               "DISTRIBUTION_MIN_SCHEDULE_LEAD_SECONDS": "2",
               "DISTRIBUTION_SCHEDULER_INTERVAL_SECONDS": "0.2",
               "DISTRIBUTION_PUBLISHER_INTERVAL_SECONDS": "0.2",
               "DISTRIBUTION_OUTBOX_INTERVAL_SECONDS": "0.2",
               "DISTRIBUTION_BACKOFF_BASE_SECONDS": "0.2",
               "DISTRIBUTION_BACKOFF_MAX_SECONDS": "1",
               "DISTRIBUTION_LOG_JSON": "true", "DISTRIBUTION_FRAMEWORK_LOG_LEVEL": "INFO",
               **self.env}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT)
        return self

    async def ready(self, timeout: float = 90.0) -> ServiceProcess:
        """Ready once /readyz says so: database, broker and a command's round trip through
        the command agent."""

        async def probe():
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited:\n{self.log_tail()}")
            try:
                async with aiohttp.ClientSession() as s, s.get(
                        f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    return r.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return False

        await eventually(probe, timeout=timeout, interval=0.2, what="worker ready")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


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

    async def read_all(self, topic: str) -> list:
        """Every record now on the topic (all partitions, from the start)."""
        return [r async for r in read_topics(self.bootstrap, [topic], 0, None)]

    async def records_for(self, topic: str, key: str) -> list[dict]:
        return [json.loads(r.value) for r in await self.read_all(topic)
                if r.key is not None and r.key.decode() == key]


def claimed_event(claim_id: str, clip_id: str, influencer_id: str,
                  campaign_id: str | None, claimed_at: str | None = None) -> dict:
    from datetime import datetime, timezone
    data = {"claim_id": claim_id, "clip_id": clip_id, "influencer_id": influencer_id,
            "claimed_at": claimed_at or datetime.now(timezone.utc).isoformat()}
    if campaign_id is not None:
        data["campaign_id"] = campaign_id
    return {"event_id": str(uuid.uuid4()), "event_type": "distribution.claimed",
            "event_version": 1, "occurred_at": data["claimed_at"], "source": "M09",
            "partition_key": claim_id, "trace_id": uuid.uuid4().hex, "data": data}


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
