"""GET of a signed download link: the signature is the credential; redirects to the clip.

A link that is malformed, tampered with or expired is a 403, whatever is wrong with it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web
from faust.web import Request, Response

from app.db.read_model import read_item
from app.domain.errors import Forbidden, NotFound
from app.domain.links import verify
from app.faust_app import app

from . import schemas
from .errors import ApiView
from .items import bounded


def link_part(request: Request, name: str, pattern: str) -> str:
    values = request.query.getall(name, [])
    if len(values) != 1 or not schemas.matches(pattern, values[0]):
        raise Forbidden("the download link is not valid")
    return values[0]


@app.page("/api/v1/distribution/downloads/{id}")
class DownloadLink(ApiView):
    async def get(self, request: Request, id: str) -> Response:
        if not schemas.matches(schemas.ITEM_ID_PATTERN, id):
            raise Forbidden("the download link is not valid")
        verify(id, link_part(request, "expires", schemas.EXPIRES_PATTERN),
               link_part(request, "signature", schemas.SIGNATURE_PATTERN),
               datetime.now(timezone.utc), app.settings.download_key)
        found = await bounded(read_item(app.pool, id), id)
        if found is None:
            raise NotFound(item_id=id)
        media = await bounded(app.media.media_for(found.item.clip_id), id)
        raise web.HTTPFound(media.url)
