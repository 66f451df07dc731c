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
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from app.db.migrate import migrate
from app.db.pool import connect
from app.embedded import Broker, start_postgres
from tests.service import Api, ServiceProcess, Topics, claimed_event


async def main(claims: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_postgres(Path(tmp) / "pg")
        broker = Broker(log_path=Path(tmp) / "broker.log").start()
        conn = await connect(url)
        await migrate(conn)
        await conn.close()
        worker = ServiceProcess(url, broker.bootstrap, Path(tmp) / "worker.log",
                                env={"DISTRIBUTION_LOG_LEVEL": "WARNING"}).start()
        topics = await Topics(broker.bootstrap).start()
        try:
            await worker.ready()
            pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
            influencer = f"bench-{uuid.uuid4().hex[:8]}"
            ids = [f"bench-{uuid.uuid4().hex}" for _ in range(claims)]

            started = time.perf_counter()
            for item_id in ids:
                event = claimed_event(item_id, uuid.uuid4().hex, influencer, "c")
                await topics.producer.send("distribution.claimed", json.dumps(event).encode(),
                                           key=item_id.encode())
            await topics.producer.flush()
            while await pool.fetchval("SELECT count(*) FROM distribution_items "
                                      "WHERE influencer_id = $1", influencer) < claims:
                await asyncio.sleep(0.05)
            ingest = time.perf_counter() - started

            async with aiohttp.ClientSession() as session:
                api = Api(worker.url, session)
                times = []
                for n in range(requests):
                    t = time.perf_counter()
                    code, _ = await api.post(ids[n], "overlays", influencer,
                                             {"type": "intro", "duration_seconds": 1.5})
                    assert code == 200
                    times.append((time.perf_counter() - t) * 1000)
                publish = []
                for n in range(min(requests, 50)):
                    t = time.perf_counter()
                    code, _ = await api.post(ids[-1 - n], "publish-multi", influencer,
                                             {"platforms": ["tiktok", "youtube"]})
                    assert code == 202
                    await api.wait_for_item(ids[-1 - n], influencer, status="published")
                    publish.append((time.perf_counter() - t) * 1000)
            await pool.close()
        finally:
            worker.stop()
            await topics.stop()
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
