"""The operators' statistics: per-platform published/failed counts in the stats window."""

from __future__ import annotations

from faust.web import Request, Response

from app.faust_app import app
from tables.publish_stats import publish_stats, snapshot

from .auth import require_operator
from .errors import ApiView
from .items import authenticate


@app.page("/api/v1/distribution/stats")
class Stats(ApiView):
    """Operator only; answered by the worker holding the table (the token travels along)."""

    async def get(self, request: Request) -> Response:
        require_operator(await authenticate(request))
        return await self.routed(request)

    @app.table_route(table=publish_stats, exact_key="tiktok")
    async def routed(self, request: Request) -> Response:
        return self.json(snapshot())
