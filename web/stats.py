"""The operators' statistics: per-platform published/failed counts in the stats window."""

from __future__ import annotations

import asyncio

from faust.web import Request, Response

from app.domain.errors import Unavailable
from app.faust_app import app
from tables.publish_stats import publish_stats, snapshot

from .auth import require_operator
from .errors import ApiView
from .items import authenticate

METADATA_TIMEOUT_SECONDS = 2.0


async def know_table_partitions() -> None:
    """Faust routes to the table's owner by the partitions of its changelog topic as the
    producer knows them; a producer that never wrote to that topic forgets them at its
    next metadata refresh (a 500 seen in the OpenAPI fuzzing). Asking for them keeps the
    topic among those the producer follows."""
    producer = app.producer._ensure_producer()  # the aiokafka producer under Faust's
    topic = publish_stats.changelog_topic.get_topic_name()
    try:
        await asyncio.wait_for(producer.partitions_for(topic), METADATA_TIMEOUT_SECONDS)
    except Exception as exc:  # the broker cannot say: not a bug of the request
        raise Unavailable("the statistics are not available yet",
                          reason=type(exc).__name__) from exc


@app.page("/api/v1/distribution/stats")
class Stats(ApiView):
    """Operator only; answered by the worker holding the table (the token travels along)."""

    async def get(self, request: Request) -> Response:
        require_operator(await authenticate(request))
        await know_table_partitions()
        return await self.routed(request)

    @app.table_route(table=publish_stats, exact_key="tiktok")
    async def routed(self, request: Request) -> Response:
        return self.json(snapshot())
