"""The operators' routes (the operator scope only): the cluster's overview, the item
search, an item's timeline, the dead letters and their re-drive. Retrying an item's failed platforms and settling an
unknown platform are the item routes `retry` and `platforms/{platform}/resolve`."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime

from faust.web import Request, Response

from app import metrics
from app.broker_security import kafka_client_kwargs
from app.channels import send
from app.db.operator import Cursor, ItemFilter, item_timeline, redrives, search_items
from app.db.read_model import item_json, read_item
from app.dead_letters import DeadLetter
from app.domain.errors import InvalidRequest, NotFound, RuleViolation, Unavailable
from app.envelope import rfc3339
from app.faust_app import app
from app.redrive import dead_letter_at, latest_dead_letters, redrive
from app.topics import DLQ_TOPICS

from . import schemas
from .auth import Caller, require_operator
from .errors import ApiView
from .items import authenticate, bounded

log = logging.getLogger("distribution.operator")

API = "/api/v1/distribution"
#: The first characters of a dead-lettered record shown in a listing.
VALUE_PREVIEW_CHARS = 2_000


async def operator(request: Request) -> Caller:
    caller = await authenticate(request)
    require_operator(caller)
    return caller


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor[0].isoformat(), cursor[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(text: str) -> Cursor:
    """The cursor's place; well formed but not one of ours: 422."""
    try:
        created, item_id = json.loads(base64.urlsafe_b64decode(text.encode()))
        return datetime.fromisoformat(created), str(item_id)
    except (ValueError, TypeError, binascii.Error):
        raise RuleViolation("cursor: not a cursor this service gave", field="cursor") from None


def instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@app.page(API + "/overview")
class Overview(ApiView):
    async def get(self, request: Request) -> Response:
        await operator(request)
        if not await metrics.CLUSTER.refresh(app.pool, app.settings.request_timeout_seconds):
            raise Unavailable("the database did not give the cluster's figures")
        return self.json(metrics.CLUSTER.overview())


@app.page(API + "/items")
class SearchItems(ApiView):
    async def get(self, request: Request) -> Response:
        await operator(request)
        q = schemas.parse_query(request.query, schemas.ItemSearchQuery)
        where = ItemFilter(
            status=q.status and q.status.value, platform=q.platform and q.platform.value,
            platform_status=q.platform_status and q.platform_status.value,
            influencer_id=q.influencer_id, campaign_id=q.campaign_id,
            due_from=instant(q.due_from), due_before=instant(q.due_before))
        after = decode_cursor(q.cursor) if q.cursor else None
        items, next_page = await bounded(search_items(app.pool, where, after, q.limit))
        return self.json({"items": [item_json(i) for i in items],
                          "next_cursor": encode_cursor(next_page) if next_page else None})


@app.page(API + "/items/{id}/timeline")
class Timeline(ApiView):
    async def get(self, request: Request, id: str) -> Response:
        await operator(request)
        item_id = schemas.check_item_id(id)
        found = await bounded(read_item(app.pool, item_id), item_id)
        if found is None:
            raise NotFound(item_id=item_id)
        entries = await bounded(item_timeline(app.pool, item_id), item_id)
        return self.json({"item": item_json(found),
                          "entries": [{**e, "at": rfc3339(e["at"])} for e in entries]})


def dead_letter_json(letter: DeadLetter, redrive: dict | None) -> dict:
    body = letter.body
    value = body.get("value")
    return {"dlq_topic": letter.dlq_topic, "partition": letter.partition,
            "offset": letter.offset, "reason": body.get("reason"), "error": body.get("error"),
            "topic": body.get("topic"), "key": body.get("key"),
            "value": value[:VALUE_PREVIEW_CHARS] if isinstance(value, str) else None,
            "value_bytes": body.get("value_bytes"), "received_at": body.get("received_at"),
            "redriven_at": rfc3339(redrive["redriven_at"]) if redrive else None,
            "redriven_by": redrive["operator"] if redrive else None}


def broker() -> tuple[str, dict]:
    s = app.settings
    return s.kafka_bootstrap_servers, kafka_client_kwargs(s)


@app.page(API + "/dead-letters")
class DeadLetters(ApiView):
    async def get(self, request: Request) -> Response:
        await operator(request)
        q = schemas.parse_query(request.query, schemas.DeadLettersQuery)
        records = []
        for topic in [q.topic] if q.topic else list(DLQ_TOPICS):
            letters = await latest_dead_letters(*broker(), topic, q.limit)
            done = await bounded(redrives(app.pool, topic))
            records += [dead_letter_json(d, done.get((d.partition, d.offset))) for d in letters]
        records.sort(key=lambda r: r["received_at"] or "", reverse=True)
        return self.json({"records": records})


@app.page(API + "/dead-letters/{topic}/{partition}/{offset}/redrive")
class Redrive(ApiView):
    """Sends the record back to its topic, once."""

    async def post(self, request: Request, topic: str, partition: str,
                   offset: str) -> Response:
        caller = await operator(request)
        if topic not in DLQ_TOPICS:
            raise NotFound(f"{topic!r} is not a dead-letter topic")
        if not (partition.isdigit() and offset.isdigit()):
            raise InvalidRequest("partition and offset are whole numbers",
                                 field="partition" if not partition.isdigit() else "offset")
        letter = await dead_letter_at(*broker(), topic, int(partition), int(offset))
        at = await bounded(redrive(app.pool, send, letter, caller.subject))
        log.warning("dead letter re-driven", extra={
            "dlq_topic": topic, "partition": letter.partition, "offset": letter.offset,
            "topic": letter.body.get("topic"), "key": letter.body.get("key"),
            "operator": caller.subject})
        return self.json(dead_letter_json(letter, {"redriven_at": at,
                                                   "operator": caller.subject}))
