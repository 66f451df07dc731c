"""One transaction per command: lock, decide, save, outbox, commit.

Also the claim ingestion, which creates items in batches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, Field, ValidationError

from app import neighbours
from app.db.items import caption_from_json, item_from_row
from app.db.outbox import outcome_envelopes
from app.db.queries import Q
from app.db.read_model import item_json
from app.db.unit_of_work import unit_of_work
from app.domain import commands as c
from app.domain import events as e
from app.domain.errors import DomainError, InvalidRequest, NotFound
from app.domain.rules import Policy, claim_expires_at
from app.domain.transitions import decide
from app.wire import ClaimData, Command, actor_of

log = logging.getLogger("distribution.handlers")


class _PlatformResult(BaseModel):
    platform: str
    key_attempt: int = Field(ge=1)
    outcome: str = Field(pattern="^(published|transient|rejected)$")
    post_id: str | None = None
    post_url: str | None = None
    error: str | None = None
    retry_after: float | None = None
    jitter: float = Field(0.5, ge=0, lt=1)
    attempt: int = Field(0, ge=0)


def to_domain(command: Command) -> object:
    """The domain command a wire command carries; a malformed payload is a 400."""
    p = command.payload
    try:
        match command.kind:
            case "add-overlay":
                return c.AddOverlay(str(p["type"]), float(p["duration_seconds"]))
            case "schedule":
                return c.Schedule(list(p["platforms"]), str(p["scheduled_at"]),
                                  p.get("timezone"), caption_from_json(p.get("caption")))
            case "reschedule":
                return c.Reschedule(str(p["scheduled_at"]), p.get("timezone"))
            case "publish" | "publish-multi":
                return c.Publish(list(p["platforms"]), caption_from_json(p.get("caption")))
            case "retry":
                return c.Retry()
            case "download":
                return c.RequestDownload()
            case "publish-due":
                return c.PublishDue(datetime.fromisoformat(p["scheduled_at"]))
            case "platform-result":
                return c.RecordPlatformResult(**_PlatformResult.model_validate(p).model_dump())
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise InvalidRequest(f"malformed {command.kind} command: {exc}") from None
    raise InvalidRequest(f"unknown command kind {command.kind!r}")


@dataclass
class Applied:
    reply: dict[str, Any]
    publishing_started: bool = False
    outbox_written: bool = False
    repeated: bool = False  # the command was applied before; this is its first reply


#: The reply to a readiness probe's ping, which changes nothing.
PONG: dict[str, Any] = {"ok": True, "item": None, "error": None}


def error_reply(error: DomainError) -> dict[str, Any]:
    return {"ok": False, "item": None, "error": error.as_dict()}


async def handle(pool: asyncpg.Pool, command: Command, now: datetime, policy: Policy) -> Applied:
    """Apply one command in one transaction; a command seen before returns its first reply."""
    async with unit_of_work(pool) as uow:
        item = await uow.items.lock(command.item_id)
        earlier = await uow.commands.reply_for(command.command_id)
        if earlier is not None:
            log.info("command repeated", extra=_log_extra(command, outcome="duplicate"))
            return Applied(earlier, repeated=True)
        if item is None:
            reply, applied = error_reply(NotFound(item_id=command.item_id)), None
        else:
            try:
                decision = decide(item, actor_of(command), to_domain(command), now, policy)
            except DomainError as err:
                reply, applied = error_reply(err), None
            else:
                await uow.items.save(item, decision.item)
                await uow.items.add_analytics(item.id, decision.events, now, command.actor)
                outcomes = outcome_envelopes(decision.item, decision.events, now,
                                             command.trace_id, cause=command.command_id)
                for topic, envelope in outcomes:
                    await uow.outbox.add(topic, envelope)
                row = await uow.items.get_row(item.id)
                reply = {"ok": True, "item": item_json(item_from_row(row), row), "error": None}
                applied = Applied(
                    reply,
                    publishing_started=any(isinstance(ev, e.PublishingStarted)
                                           for ev in decision.events),
                    outbox_written=bool(outcomes))
                log.info("command applied", extra=_log_extra(
                    command, outcome="applied", status_before=item.status.value,
                    status=decision.item.status.value, version=decision.item.version,
                    events=[type(ev).__name__ for ev in decision.events]))
        if applied is None:
            log.info("command refused", extra=_log_extra(
                command, outcome="refused", error=reply["error"]["code"],
                reason=reply["error"]["message"]))
        await uow.commands.record(command.command_id, command.item_id, command.kind, reply)
    return applied or Applied(reply)


def _log_extra(command: Command, **fields: Any) -> dict[str, Any]:
    return {"item_id": command.item_id, "command": command.kind,
            "command_id": command.command_id, "trace_id": command.trace_id,
            "actor": command.actor, "operator": command.operator, **fields}


@dataclass
class Ingested:
    created: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unknown_clips: list[ClaimData] = field(default_factory=list)


async def ingest_claims(pool: asyncpg.Pool, claims: list[ClaimData]) -> Ingested:
    """Create items for a batch of claims in one transaction; replays create nothing."""
    result = Ingested()
    async with unit_of_work(pool) as uow:
        missing = sorted({cl.clip_id for cl in claims if not cl.campaign_id})
        campaigns = await neighbours.campaigns_for_clips(uow.conn, missing)
        ready = []
        for claim in claims:
            campaign_id = claim.campaign_id or campaigns.get(claim.clip_id)
            if campaign_id is None:
                result.unknown_clips.append(claim)
            else:
                ready.append((claim, campaign_id))
        if ready:
            created = await uow.conn.fetch(
                Q["insert_claims"],
                [cl.claim_id for cl, _ in ready], [cl.influencer_id for cl, _ in ready],
                [cl.clip_id for cl, _ in ready], [camp for _, camp in ready],
                [cl.claimed_at for cl, _ in ready],
                [claim_expires_at(cl.claimed_at) for cl, _ in ready])
            new_ids = {r["id"] for r in created}
            for claim, _ in ready:
                if claim.claim_id in new_ids:
                    new_ids.discard(claim.claim_id)  # a repeat in the same batch is a duplicate
                    result.created.append(claim.claim_id)
                else:
                    result.duplicates.append(claim.claim_id)
    return result
