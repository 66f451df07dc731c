"""GET of a signed download link: the signature is the credential; redirects to the clip."""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web
from faust.web import Request, Response, View

from app.db.read_model import read_item
from app.domain.errors import NotFound
from app.domain.links import verify
from app.faust_app import app


@app.page("/api/v1/distribution/downloads/{id}")
class DownloadLink(View):
    async def get(self, request: Request, id: str) -> Response:
        verify(id, request.query.get("expires", ""), request.query.get("signature", ""),
               datetime.now(timezone.utc), app.settings.download_key)
        found = await read_item(app.pool, id)
        if found is None:
            raise NotFound(item_id=id)
        media = await app.media.media_for(found[0].clip_id)
        raise web.HTTPFound(media.url)
