"""Liveness, readiness (database and broker reachable), metrics, the API document."""

from __future__ import annotations

import asyncio
import time

from faust.web import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.claims import claims_joined
from app import liveness, metrics
from app.db.health import ping as ping_database
from app.faust_app import app

from .auth import require_operator
from .errors import ApiView
from .items import authenticate, ping
from .openapi import build_document

CHECK_TIMEOUT_SECONDS = 2.0
#: The API document, generated from the request and answer models once per process.
OPENAPI = build_document()


async def check_database() -> str:
    await ping_database(app.pool, CHECK_TIMEOUT_SECONDS)
    return "ok"


async def check_broker() -> str:
    client = app.producer._ensure_producer().client
    await client.fetch_all_metadata()
    return "ok"


async def run_check(check) -> str:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # report, never raise: this is what readiness is for
        return f"error: {type(exc).__name__}"


@app.page("/healthz")
class Liveness(ApiView):
    """Fails (503) when a vital loop died or stalled, or the event loop was blocked."""

    async def get(self, request: Request) -> Response:
        problems = liveness.problems(app.vitals.loops, app.loop_watch.last_block,
                                     time.monotonic(), app.settings.health_max_loop_block_seconds)
        if problems:
            return self.json({"status": "unhealthy", "problems": problems}, status=503)
        return self.json({"status": "ok", "problems": []})


@app.page("/readyz")
class Readiness(ApiView):
    async def get(self, request: Request) -> Response:
        database, broker, commands = await asyncio.gather(
            run_check(check_database), run_check(check_broker), run_check(ping))
        checks = {"database": database, "broker": broker, "commands": commands,
                  "claims": claims_joined()}
        ready = all(v == "ok" for v in checks.values())
        return self.json({"status": "ready" if ready else "unavailable", "checks": checks},
                         status=200 if ready else 503)


@app.page("/metrics")
class Metrics(ApiView):
    """Operator only: it tells how busy each platform is."""

    async def get(self, request: Request) -> Response:
        require_operator(await authenticate(request))
        # the cluster's figures, read from PostgreSQL (the same on every worker); left out
        # when it does not answer, the worker's own are served all the same
        await metrics.CLUSTER.refresh(app.pool, CHECK_TIMEOUT_SECONDS)
        return self.bytes(generate_latest(metrics.REGISTRY),
                          headers={"Content-Type": CONTENT_TYPE_LATEST})


@app.page("/openapi.json")
class OpenApi(ApiView):
    async def get(self, request: Request) -> Response:
        return self.json(OPENAPI)
