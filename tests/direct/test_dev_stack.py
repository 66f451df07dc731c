"""What a newcomer runs: `distribution dev` (`make run`) starts its own broker and the fakes
of the four platforms, M10 and M06, and publishes through each platform's own flow. (The
database is a clone on the session's server here; the embedded one has its own tests.)"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import aiohttp
import asyncpg

from app.broker_storage import broker_database_url
from app.embedded import free_port
from tests.clients import Api, Topics, claim_and_wait
from tests.stack import ROOT
from tests.support import eventually

ALL = ["tiktok", "instagram", "youtube", "snapchat"]


async def read_banner(process: asyncio.subprocess.Process) -> dict[str, str]:
    """The lines `dev` prints before the worker starts: URL, broker, token, platforms."""
    banner: dict[str, str] = {}
    while "Ctrl-C" not in banner.get("_last", ""):
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line, f"dev exited before its banner (so far: {banner})"
        match = re.match(r"\s+(\w+):\s+(\S+)", line)
        if match:
            banner[match[1]] = match[2]
        banner["_last"] = line
    return banner


async def ready(session: aiohttp.ClientSession, base_url: str) -> None:
    async def probe() -> bool:
        try:
            async with session.get(f"{base_url}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False
    await eventually(probe, timeout=90, interval=0.2, what="the dev worker ready")


async def test_the_development_stack_publishes_through_the_platforms_own_flows(
        database_server, tmp_path):
    database_url = await database_server.clone("distribution_dev")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "DISTRIBUTION_DATA_DIR": str(tmp_path),
           "DISTRIBUTION_MIN_SCHEDULE_LEAD_SECONDS": "2"}
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DISTRIBUTION_PLATFORM_MODE",
                 "DISTRIBUTION_PLATFORM_GATEWAY_URL"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "dev", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        banner = await read_banner(process)
        assert banner["platforms"] == "direct,"  # through local fakes of their APIs
        async with aiohttp.ClientSession() as session:
            await ready(session, banner["URL"])
            topics = await Topics(banner["broker"]).start()
            try:
                api = Api(banner["URL"], session)
                claimed = await claim_and_wait(topics, api, timeout=90)
            finally:
                await topics.stop()
            code, _ = await api.post(claimed.item_id, "publish-multi", claimed.influencer,
                                     {"platforms": ALL, "caption": {"text": "first look"}})
            assert code == 202
            item = await api.wait_for_item(claimed.item_id, claimed.influencer, timeout=60,
                                           status="published")
            # the console link it printed: the page, signed in with the operator token
            page, _, fragment = banner["console"].partition("#token=")
            assert page == f"{banner['URL']}/console" and fragment == banner["token"]
            async with session.get(f"{banner['URL']}/api/v1/distribution/overview", headers={
                    "Authorization": f"Bearer {fragment}"}) as response:
                assert response.status == 200  # an operator's token
        assert sorted((r["platform"], r["status"]) for r in item["platform_status"]) == [
            (p, "published") for p in sorted(ALL)]
        assert all(r["post_id"] for r in item["platform_status"])
        conn = await asyncpg.connect(broker_database_url(database_url))
        try:  # the broker kept the claim in PostgreSQL (app/broker_storage.py), not in memory
            assert await conn.fetchval("SELECT count(*) FROM broker_objects WHERE key LIKE"
                                       " '%/topics/distribution.claimed/%.batch'") >= 1
        finally:
            await conn.close()
        process.send_signal(signal.SIGINT)  # Ctrl-C stops the worker and what dev started
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await database_server.drop(database_url)
        await database_server.drop(broker_database_url(database_url))  # the broker's topics
