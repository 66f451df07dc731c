"""One view per item route: check the token, parse, ask the command agent, render."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

from faust.web import Request, Response, View

from agents.commands import apply_commands
from app.db.read_model import item_json, preview_json, read_item
from app.domain.errors import DomainError, NotFound, Timeout, Unavailable
from app.domain.links import sign
from app.domain.transitions import check_owner
from app.envelope import rfc3339
from app.faust_app import app
from app.topics import encode
from app.wire import Command

from . import schemas
from .auth import caller

ITEM = "/api/v1/distribution/items/{id}"


async def ask(command: Command) -> dict:
    """Send the command to the worker owning the item's partition and await its reply."""
    try:
        reply = await asyncio.wait_for(
            apply_commands.ask(value=encode(command.model_dump(mode="json")),
                               key=command.item_id.encode()),
            timeout=app.settings.request_timeout_seconds)
    except asyncio.TimeoutError:
        raise Timeout(item_id=command.item_id, command_id=command.command_id) from None
    except Exception as exc:  # the broker cannot take the command
        raise Unavailable("the broker cannot be reached", reason=type(exc).__name__) from exc
    if not reply.get("ok"):
        raise DomainError.from_dict(reply.get("error") or {})
    return reply


def command_id(request: Request, actor: str, item_id: str, kind: str) -> str:
    key = request.headers.get("Idempotency-Key")
    if key:
        return f"http:{actor}:{item_id}:{kind}:{key[:200]}"
    return f"http:{uuid.uuid4()}"


class CommandView(View):
    """POST: the body becomes a command for the item."""

    kind: str
    schema: type[schemas.Body] = schemas.EmptyBody
    status: int = 200

    async def post(self, request: Request, id: str) -> Response:
        actor = caller(request.headers.get("Authorization"), app.settings)
        body = schemas.parse(await request.read(), self.schema)
        command = Command(command_id=command_id(request, actor, id, self.kind),
                          kind=self.kind, item_id=id, actor=actor, payload=body.payload())
        reply = await ask(command)
        return self.render(reply)

    def render(self, reply: dict) -> Response:
        return self.json(reply["item"], status=self.status)


@app.page(ITEM + "/overlays")
class Overlays(CommandView):
    kind, schema = "add-overlay", schemas.OverlayBody


@app.page(ITEM + "/schedule")
class ScheduleItem(CommandView):
    kind, schema = "schedule", schemas.ScheduleBody


@app.page(ITEM + "/reschedule")
class RescheduleItem(CommandView):
    kind, schema = "reschedule", schemas.RescheduleBody


@app.page(ITEM + "/publish")
class PublishItem(CommandView):
    kind, schema, status = "publish", schemas.PublishBody, 202


@app.page(ITEM + "/publish-multi")
class PublishMulti(CommandView):
    kind, schema, status = "publish-multi", schemas.PublishMultiBody, 202


@app.page(ITEM + "/retry")
class RetryItem(CommandView):
    kind, status = "retry", 202


@app.page(ITEM + "/download")
class Download(CommandView):
    kind = "download"

    def render(self, reply: dict) -> Response:
        item_id = reply["item"]["id"]
        s = app.settings
        expires, signature = sign(item_id, datetime.now(timezone.utc), s.download_ttl_seconds,
                                  s.download_key)
        url = (f"{s.base_url}/api/v1/distribution/downloads/{quote(item_id, safe='')}"
               f"?expires={expires}&signature={signature}")
        expires_at = rfc3339(datetime.fromtimestamp(expires, timezone.utc))
        return self.json({"url": url, "expires_at": expires_at})


async def owned_item(request: Request, item_id: str):
    actor = caller(request.headers.get("Authorization"), app.settings)
    found = await read_item(app.pool, item_id)
    if found is None:
        raise NotFound(item_id=item_id)
    check_owner(found[0], actor)
    return found


@app.page(ITEM)
class GetItem(View):
    async def get(self, request: Request, id: str) -> Response:
        item, row = await owned_item(request, id)
        return self.json(item_json(item, row))


@app.page(ITEM + "/preview")
class Preview(View):
    async def get(self, request: Request, id: str) -> Response:
        item, _ = await owned_item(request, id)
        media = await app.media.media_for(item.clip_id)
        return self.json(preview_json(item, media.url, media.duration_seconds))
