"""One view per item route: authenticate, check the input, check access, ask, render.

Every check that can refuse a request runs before its command reaches the topic: a caller
who may not act on the item gets the same 404 as for a missing item, and no lock is taken
and no row written for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import quote

from faust.web import Request, Response

from agents.commands import apply_commands
from app.db import idempotency
from app.db.idempotency import KeyScope, StoredAnswer, request_hash
from app.db.items import StoredItem
from app.db.read_model import item_json, item_owner, preview_json, read_item
from app.domain.errors import DomainError, InvalidRequest, NotFound, Timeout, Unavailable
from app.domain.links import sign
from app.domain.transitions import may_act_on
from app.envelope import rfc3339
from app.faust_app import app
from app.wire import Command, PingCommand, command_message, make_command

from . import schemas
from .auth import Caller, TokenVerifier, require_operator
from .errors import STATUS_BY_CODE, ApiView
from .rate_limit import RateLimiter

log = logging.getLogger("distribution.web")

ITEM = "/api/v1/distribution/items/{id}"
#: Answers to a request with an Idempotency-Key that are not kept: it did not run (400,
#: 404) or its outcome is not known yet (503, 504); the key may be used again.
NOT_STORED = {400, 404}
OUTCOME_UNKNOWN = {503, 504}

verifier = TokenVerifier(app.settings)
limiter = RateLimiter(app.settings.rate_limit_per_second, app.settings.rate_limit_burst)
T = TypeVar("T")


async def authenticate(request: Request) -> Caller:
    """The caller of a request (401 without a valid token), within its rate (else 429)."""
    caller = await verifier.caller(request.headers.get("Authorization"))
    limiter.admit(caller.subject, time.monotonic())
    return caller


def detach(task: asyncio.Future) -> None:
    """Nobody awaits this task's outcome any more: collect it so it is not reported lost."""
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def bounded(work: Awaitable[T], item_id: str | None = None) -> T:
    """Any request waits at most the request timeout (then 504). The work is cancelled and
    left to finish in the background: a query on a paused database cannot even complete its
    cancellation until the server answers, so waiting for it would not be bounded."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=app.settings.request_timeout_seconds)
    except asyncio.CancelledError:
        task.cancel()
        detach(task)
        raise
    if not done:
        task.cancel()
        detach(task)
        raise Timeout(**({"item_id": item_id} if item_id else {}))
    return task.result()


async def check_access(caller: Caller, item_id: str) -> None:
    owner = await bounded(item_owner(app.pool, item_id), item_id)
    if owner is None or not may_act_on(owner, caller.actor):
        raise NotFound(item_id=item_id)


async def ask(command: Command) -> dict:
    """Send the command to the worker owning the item's partition and await its reply."""
    message = command_message(command)
    try:
        reply = await asyncio.wait_for(
            apply_commands.ask(value=message.value, key=message.key),
            timeout=app.settings.request_timeout_seconds)
    except asyncio.TimeoutError:
        raise Timeout(item_id=command.item_id, command_id=command.command_id) from None
    except Exception as exc:  # the broker cannot take the command
        raise Unavailable("the broker cannot be reached", reason=type(exc).__name__) from exc
    if not reply.get("ok"):
        raise DomainError.from_dict(reply.get("error") or {})
    return reply


async def ping() -> str:
    """A round trip through the command agent (readiness)."""
    key = f"ping-{uuid.uuid4().hex}"
    await ask(PingCommand(command_id=key, item_id=key))
    return "ok"


def idempotency_key(request: Request) -> str | None:
    keys = request.headers.getall("Idempotency-Key", [])
    if not keys:
        return None
    if len(keys) > 1 or not schemas.matches(schemas.IDEMPOTENCY_KEY_PATTERN, keys[0]):
        raise InvalidRequest("Idempotency-Key must be one value of 1 to 255 printable ASCII "
                             "characters", field="Idempotency-Key")
    return keys[0]


class CommandView(ApiView):
    """POST: the body becomes a command for the item."""

    kind: str
    route: str
    schema: type[schemas.Body] = schemas.EmptyBody
    status: int = 200
    operator_only: bool = False

    async def post(self, request: Request, id: str, **path: str) -> Response:
        """`path`: the route's other parameters, which join the payload (`platform`)."""
        caller = await authenticate(request)
        item_id = schemas.check_item_id(id)
        key = idempotency_key(request)
        payload = {**schemas.parse(await request.read(), self.schema).payload(), **path}
        await check_access(caller, item_id)
        if self.operator_only:
            require_operator(caller)
        if key is None:
            body, status = self.answer(await self.run(f"http:{uuid.uuid4().hex}", caller,
                                                      item_id, payload))
            return self.json(body, status=status)
        scope = KeyScope(caller.subject, "/".join([self.route, *path.values()]), item_id, key)
        s = app.settings
        begun = await bounded(idempotency.begin(
            app.pool, scope, request_hash(payload), app.now(),
            retention=timedelta(hours=s.idempotency_key_ttl_hours),
            lease=timedelta(seconds=s.request_timeout_seconds + 5)), item_id)
        if isinstance(begun, StoredAnswer):
            return self.json(begun.body, status=begun.status,
                             headers={"Idempotent-Replayed": "true"})
        try:
            body, status = self.answer(await self.run(begun.command_id, caller, item_id, payload))
        except DomainError as err:
            await self.settle_refusal(scope, err)
            raise
        except BaseException:  # cancelled: the outcome is unknown, let a retry find out
            await self.settle(idempotency.release(app.pool, scope), scope)
            raise
        # a 504 here leaves the key in flight: after its lease, a retry sends the same
        # command id and gets the first reply back from the command agent
        await bounded(idempotency.complete(app.pool, scope, status, body), item_id)
        return self.json(body, status=status)

    async def run(self, command_id: str, caller: Caller, item_id: str,
                  payload: dict[str, Any]) -> dict:
        return await ask(make_command(self.kind, item_id, command_id, payload,
                                      actor=caller.subject, operator=caller.operator))

    def answer(self, reply: dict) -> tuple[dict[str, Any], int]:
        return reply["item"], self.status

    async def settle_refusal(self, scope: KeyScope, err: DomainError) -> None:
        status = STATUS_BY_CODE.get(err.code, 400)
        if status in NOT_STORED:
            await self.settle(idempotency.forget(app.pool, scope), scope)
        elif status in OUTCOME_UNKNOWN:
            await self.settle(idempotency.release(app.pool, scope), scope)
        else:  # it ran and was refused (409, 422): that is the answer to give again
            body = {"error": err.as_dict()}
            await self.settle(idempotency.complete(app.pool, scope, status, body), scope)

    @staticmethod
    async def settle(bookkeeping: Awaitable[None], scope: KeyScope) -> None:
        """Key bookkeeping on the way out of a failed request: it must neither hide the
        request's error nor hold its answer past the request timeout, and it goes on when
        the request is cancelled. A key left in flight is free again after its lease."""
        task = asyncio.ensure_future(bookkeeping)
        detach(task)
        await asyncio.wait({task}, timeout=app.settings.request_timeout_seconds)
        if not task.done() or task.cancelled() or task.exception() is not None:
            log.warning("idempotency key left in flight until its lease runs out",
                        extra={"item_id": scope.item_id, "route": scope.route})


@app.page(ITEM + "/overlays")
class Overlays(CommandView):
    kind, route, schema = "add-overlay", "overlays", schemas.OverlayBody


@app.page(ITEM + "/schedule")
class ScheduleItem(CommandView):
    kind, route, schema = "schedule", "schedule", schemas.ScheduleBody


@app.page(ITEM + "/reschedule")
class RescheduleItem(CommandView):
    kind, route, schema = "reschedule", "reschedule", schemas.RescheduleBody


@app.page(ITEM + "/publish")
class PublishItem(CommandView):
    kind, route, schema, status = "publish", "publish", schemas.PublishBody, 202


@app.page(ITEM + "/publish-multi")
class PublishMulti(CommandView):
    kind, route, schema, status = "publish-multi", "publish-multi", schemas.PublishMultiBody, 202


@app.page(ITEM + "/retry")
class RetryItem(CommandView):
    kind, route, status = "retry", "retry", 202


@app.page(ITEM + "/download")
class Download(CommandView):
    kind, route = "download", "download"

    def answer(self, reply: dict) -> tuple[dict[str, Any], int]:
        item_id = reply["item"]["id"]
        s = app.settings
        expires, signature = sign(item_id, datetime.now(timezone.utc), s.download_ttl_seconds,
                                  s.download_key)
        url = (f"{s.base_url}/api/v1/distribution/downloads/{quote(item_id, safe='')}"
               f"?expires={expires}&signature={signature}")
        expires_at = rfc3339(datetime.fromtimestamp(expires, timezone.utc))
        return {"url": url, "expires_at": expires_at}, 200


@app.page(ITEM + "/platforms/{platform}/resolve")
class ResolvePlatform(CommandView):
    """An operator settles a platform whose outcome is unknown."""

    kind, route, schema, operator_only = "resolve-platform", "resolve", schemas.ResolveBody, True


async def readable_item(request: Request, item_id: str) -> StoredItem:
    caller = await authenticate(request)
    item_id = schemas.check_item_id(item_id)
    found = await bounded(read_item(app.pool, item_id), item_id)
    if found is None or not may_act_on(found.item.influencer_id, caller.actor):
        raise NotFound(item_id=item_id)
    return found


@app.page(ITEM)
class GetItem(ApiView):
    async def get(self, request: Request, id: str) -> Response:
        return self.json(item_json(await readable_item(request, id)))


@app.page(ITEM + "/preview")
class Preview(ApiView):
    async def get(self, request: Request, id: str) -> Response:
        item = (await readable_item(request, id)).item
        media = await bounded(app.media.media_for(item.clip_id), item.id)
        return self.json(preview_json(item, media.url, media.duration_seconds))

