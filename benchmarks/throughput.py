"""Rough throughput and latency of one worker on the embedded stack (a real PostgreSQL and
the Tansu broker), for orientation: run `.venv/bin/python -m benchmarks.throughput`.

Measures: claims ingested per second (N claims produced at once, until every item exists),
the HTTP round trip of a mutation (view -> command topic -> agent -> PostgreSQL -> reply),
and publish-multi to two platforms until the item is published (simulated adapter; the
item is polled every 50 ms, so that figure is rounded up to the poll)."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from aiokafka import AIOKafkaProducer

from app.claims_out import claimed_event
from app.cli import migrate_database
from app.embedded import Broker, WorkerProcess, start_postgres
from app.topics import CLAIMED
from web.auth import issue_token

JWT_SECRET = secrets.token_urlsafe(32)
#: The worker's settings: fresh secrets, no rate limit in the way (one caller sends every
#: request), and the timers of the test suite, so that the figures compare with earlier runs.
WORKER_SETTINGS = {
    "DISTRIBUTION_JWT_SECRET": JWT_SECRET,
    "DISTRIBUTION_DOWNLOAD_SECRET": secrets.token_urlsafe(32),
    "DISTRIBUTION_RATE_LIMIT_PER_SECOND": "10000",
    "DISTRIBUTION_RATE_LIMIT_BURST": "10000",
    "DISTRIBUTION_TOPIC_PARTITIONS": "4",
    "DISTRIBUTION_SCHEDULER_INTERVAL_SECONDS": "0.2",
    "DISTRIBUTION_PUBLISHER_INTERVAL_SECONDS": "0.2",
    "DISTRIBUTION_OUTBOX_INTERVAL_SECONDS": "0.2",
    "DISTRIBUTION_LOG_LEVEL": "WARNING",
}


class Client:
    """The two calls the benchmark makes, as one influencer."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, influencer: str) -> None:
        self.base = f"{base_url}/api/v1/distribution/items"
        self.session = session
        self.headers = {"Authorization": f"Bearer {issue_token(influencer, JWT_SECRET)}"}

    async def post(self, item_id: str, action: str, body: dict) -> int:
        async with self.session.post(f"{self.base}/{item_id}/{action}", json=body,
                                     headers=self.headers) as r:
            await r.read()
            return r.status

    async def wait_until_published(self, item_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            async with self.session.get(f"{self.base}/{item_id}", headers=self.headers) as r:
                if r.status == 200 and (await r.json())["status"] == "published":
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"item {item_id} not published within {timeout} s")
            await asyncio.sleep(0.05)


async def main(claims: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_postgres(Path(tmp) / "pg")
        broker = Broker(log_path=Path(tmp) / "broker.log").start()
        await migrate_database(url)
        worker = WorkerProcess(url, broker.bootstrap, Path(tmp) / "worker.log",
                               env={**WORKER_SETTINGS,
                                    "DISTRIBUTION_DATA_DIR": str(Path(tmp) / "worker")}
                               ).start()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            await worker.ready()
            pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
            influencer = f"bench-{uuid.uuid4().hex[:8]}"
            ids = [f"bench-{uuid.uuid4().hex}" for _ in range(claims)]

            started = time.perf_counter()
            for item_id in ids:
                event = claimed_event(item_id, uuid.uuid4().hex, influencer, "c")
                await producer.send(CLAIMED, json.dumps(event).encode(),
                                    key=item_id.encode())
            await producer.flush()
            while await pool.fetchval("SELECT count(*) FROM distribution_items "
                                      "WHERE influencer_id = $1", influencer) < claims:
                await asyncio.sleep(0.05)
            ingest = time.perf_counter() - started

            async with aiohttp.ClientSession() as session:
                api = Client(worker.url, session, influencer)
                times = []
                for n in range(requests):
                    t = time.perf_counter()
                    code = await api.post(ids[n], "overlays",
                                          {"type": "intro", "duration_seconds": 1.5})
                    assert code == 200
                    times.append((time.perf_counter() - t) * 1000)
                publish = []
                for n in range(min(requests, 50)):
                    t = time.perf_counter()
                    code = await api.post(ids[-1 - n], "publish-multi",
                                          {"platforms": ["tiktok", "youtube"]})
                    assert code == 202
                    await api.wait_until_published(ids[-1 - n])
                    publish.append((time.perf_counter() - t) * 1000)
            await pool.close()
        finally:
            worker.stop()
            await producer.stop()
            broker.stop()
            server.cleanup()
    q = statistics.quantiles
    print(f"claims ingested: {claims} in {ingest:.2f} s = {claims / ingest:,.0f} claims/s")
    print(f"overlay request round trip over {requests}: median {statistics.median(times):.1f} "
          f"ms, p95 {q(times, n=20)[18]:.1f} ms")
    print(f"publish-multi (2 platforms) until published over {len(publish)}: median "
          f"{statistics.median(publish):.1f} ms, p95 {q(publish, n=20)[18]:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.claims, args.requests))
