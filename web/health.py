"""Liveness, readiness (database and broker reachable), metrics, the API document."""

from __future__ import annotations

import asyncio

from faust.web import Request, Response

from app.db.health import ping as ping_database
from app.faust_app import app
from tables.publish_stats import snapshot

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
    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/readyz")
class Readiness(ApiView):
    async def get(self, request: Request) -> Response:
        database, broker, commands = await asyncio.gather(
            run_check(check_database), run_check(check_broker), run_check(ping))
        checks = {"database": database, "broker": broker, "commands": commands}
        ready = all(v == "ok" for v in checks.values())
        return self.json({"status": "ready" if ready else "unavailable", "checks": checks},
                         status=200 if ready else 503)


@app.page("/metrics")
class Metrics(ApiView):
    """Operator only: it tells how busy each platform is."""

    async def get(self, request: Request) -> Response:
        require_operator(await authenticate(request))
        stats = snapshot()
        lines = ["# HELP distribution_platform_outcomes Platform outcomes in the stats window.",
                 "# TYPE distribution_platform_outcomes gauge"]
        for platform, counts in stats["platforms"].items():
            for outcome, n in counts.items():
                lines.append(f'distribution_platform_outcomes{{platform="{platform}",'
                             f'outcome="{outcome}"}} {n}')
        pool = getattr(app, "pool", None)
        if pool is not None:
            lines += ["# TYPE distribution_db_pool_size gauge",
                      f"distribution_db_pool_size {pool.get_size()}",
                      "# TYPE distribution_db_pool_idle gauge",
                      f"distribution_db_pool_idle {pool.get_idle_size()}"]
        return self.text("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")


@app.page("/openapi.json")
class OpenApi(ApiView):
    async def get(self, request: Request) -> Response:
        return self.json(OPENAPI)
