"""Commands in batches, one transaction per batch: lock and load the batch's items and
check its command ids at once, decide each command in its order, then write what they
changed in one statement (app/db/writes.py) and commit.

Also the claim ingestion, which creates items in batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.db.items import NewItem, StoredItem
from app.db.pool import CONNECTION_ERRORS
from app.db.read_model import item_json
from app.db.unit_of_work import UnitOfWork, unit_of_work
from app.domain import events as e
from app.domain.errors import DomainError, NotFound, Unavailable
from app.domain.model import Item
from app.domain.quota import check_quota, planned_posts, with_live_caps
from app.domain.rules import Policy, claim_expires_at
from app.domain.transitions import Decision, decide
from app.envelope import account_envelope, outcome_envelopes
from app.topics import NEEDS_RECONNECT
from app.wire import ClaimData, Command

log = logging.getLogger("distribution.handlers")


@dataclass
class Applied:
    reply: dict[str, Any]
    publishing_started: bool = False
    outbox_written: bool = False
    repeated: bool = False  # the command was applied before; this is its first reply
    events: tuple[e.Event, ...] = ()  # what it changed (for the metrics)
    scheduled_at: datetime | None = None  # the item's due time, when it has one

    @property
    def outcome(self) -> tuple[str, str]:
        """(applied | refused | duplicate, a refusal's error code)."""
        if self.repeated:
            return "duplicate", ""
        error = self.reply.get("error")
        return ("refused", error["code"]) if error else ("applied", "")


#: The reply to a readiness probe's ping, which changes nothing.
PONG: dict[str, Any] = {"ok": True, "item": None, "error": None}


def error_reply(error: DomainError) -> dict[str, Any]:
    return {"ok": False, "item": None, "error": error.as_dict()}


async def handle(pool: asyncpg.Pool, command: Command, now: datetime, policy: Policy) -> Applied:
    """Apply one command in one transaction; a command seen before returns its first reply."""
    [result] = await handle_batch(pool, [command], now, policy)
    if isinstance(result, Exception):
        raise result
    return result


async def handle_batch(pool: asyncpg.Pool, commands: Sequence[Command], now: datetime,
                       policy: Policy) -> list[Applied | Exception]:
    """Apply commands in their order in one transaction: a refusal is a reply like any
    other, and a command that fails (a bug, a constraint) is undone alone and answered by
    its exception, in its place. The database unreachable fails the whole batch
    (Unavailable), and nothing of it is kept. Batches applied side by side can meet in a
    deadlock (two accounts' posting-limit locks taken in turn): the batch PostgreSQL picks
    is applied again, whole."""
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        try:
            try:
                return await _handle_batch(pool, commands, now, policy, isolated=False)
            except _CommandFailed:
                # rare (a bug, a constraint): again, each command in a savepoint of its own,
                # so that the failing one is undone alone
                return await _handle_batch(pool, commands, now, policy, isolated=True)
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_RETRIES:
                raise
            log.warning("command batch met a deadlock: applied again",
                        extra={"commands": len(commands), "attempt": attempt})
    raise AssertionError("unreachable")


#: How often a batch that lost a deadlock is applied again.
DEADLOCK_RETRIES = 5


class _CommandFailed(Exception):
    """A command of a batch applied without savepoints failed: the batch is undone."""


async def _handle_batch(pool: asyncpg.Pool, commands: Sequence[Command], now: datetime,
                        policy: Policy, isolated: bool) -> list[Applied | Exception]:
    async with unit_of_work(pool) as uow:
        if not isolated:
            try:
                results: list[Applied | Exception] = [
                    *await apply_together(uow, commands, now, policy)]
                await uow.flush()  # a constraint it breaks is a failing command too
            except (Unavailable, asyncpg.DeadlockDetectedError, *CONNECTION_ERRORS):
                raise
            except Exception as exc:
                raise _CommandFailed() from exc
        else:
            results = []
            for command in commands:
                try:
                    async with uow.savepoint():  # its writes are flushed on the way out
                        applied = await apply_together(uow, [command], now, policy)
                    results.extend(applied)  # only once they were kept: one result each
                except (Unavailable, asyncpg.DeadlockDetectedError, *CONNECTION_ERRORS):
                    raise
                except Exception as exc:
                    # undone alone; the caller dead-letters it
                    log.exception("command failed",
                                  extra=_log_extra(command, outcome="failed"))
                    results.append(exc)
        await uow.commit()
    return results


@dataclass
class Loaded:
    """What a batch of commands decides on: its items as they stand (locked; each replaced
    by what the batch's last command on it saved) and the replies of its commands already
    applied (those the batch applies added as it goes)."""

    items: dict[str, StoredItem]
    replies: dict[str, dict[str, Any]]


async def apply_together(uow: UnitOfWork, commands: Sequence[Command], now: datetime,
                         policy: Policy) -> list[Applied]:
    """Lock and load the commands' items and check their ids once for all of them, then
    apply each in its order; the writes wait for the caller's flush."""
    items = await uow.items.lock_many(c.item_id for c in commands)
    # after the lock: a copy of a command applied meanwhile is seen here
    replies = await uow.commands.replies_for(c.command_id for c in commands)
    loaded = Loaded(items, replies)
    return [await apply_command(uow, loaded, command, now, policy) for command in commands]


async def apply_command(uow: UnitOfWork, loaded: Loaded, command: Command, now: datetime,
                        policy: Policy) -> Applied:
    """Decide on one command and keep its writes in the caller's transaction. The reply
    of an applied command is the item as it now stands, for whoever asked; the service's
    own commands (due items, platform answers: no actor) have no asker, and their reply,
    kept only to know a repeat by, carries no item."""
    order = command.to_domain()  # typed on the way in: nothing left to refuse for its shape
    earlier = loaded.replies.get(command.command_id)
    if earlier is not None:
        log.info("command repeated", extra=_log_extra(command, outcome="duplicate"))
        return Applied(earlier, repeated=True)
    stored = loaded.items.get(command.item_id)
    try:
        if stored is None:
            raise NotFound(item_id=command.item_id)
        decision = decide(stored.item, command.actor_of(), order, now, policy)
        await check_posting_limits(uow, stored.item, order, decision, now, policy)
    except DomainError as err:
        applied = Applied(error_reply(err))
        log.info("command refused", extra=_log_extra(
            command, outcome="refused", error=err.code, reason=err.message))
    else:
        saved = loaded.items[command.item_id] = uow.items.save(stored, decision.item)
        uow.items.add_analytics(command.item_id, decision.events, now, command.actor)
        uow.items.add_attempts(decision.item, decision.events)
        outcomes = outcome_envelopes(decision.item, decision.events, now,
                                     command.trace_id, cause=command.command_id)
        outcomes += await hold_accounts(uow, decision.events, now, command.trace_id)
        for topic, envelope in outcomes:
            uow.outbox.add(topic, envelope)
        shown = item_json(saved) if command.actor is not None else None
        applied = Applied(
            {"ok": True, "item": shown, "error": None},
            publishing_started=any(isinstance(ev, e.PublishingStarted)
                                   for ev in decision.events),
            outbox_written=bool(outcomes), events=tuple(decision.events),
            scheduled_at=stored.item.scheduled_at)
        log.info("command applied", extra=_log_extra(
            command, outcome="applied", status_before=stored.item.status.value,
            status=decision.item.status.value, version=decision.item.version,
            events=[type(ev).__name__ for ev in decision.events]))
    uow.commands.record(command.command_id, command.item_id, command.kind, applied.reply)
    loaded.replies[command.command_id] = applied.reply
    return applied


async def hold_accounts(uow: UnitOfWork, events: list[e.Event], now: datetime,
                        trace_id: str | None) -> list[tuple[str, dict[str, Any]]]:
    """Holds each account that needs reconnecting; the event goes out once per hold (the
    account's other posts that meet the same refusal meanwhile add nothing)."""
    out = []
    for ev in events:
        if isinstance(ev, e.AccountNeedsReconnect) and await uow.accounts.hold(
                ev.influencer_id, ev.platform.value, ev.reason_code, ev.error):
            log.warning("account needs reconnecting: its posts are held", extra={
                "influencer_id": ev.influencer_id, "platform": ev.platform.value,
                "reason_code": ev.reason_code, "error": ev.error})
            out.append(account_envelope(NEEDS_RECONNECT, ev.influencer_id, ev.platform.value,
                                        now, ev.reason_code, ev.error, trace_id))
    return out


#: Posts this long before a planned one can share its window (a Pacific day of 25 hours
#: included).
QUOTA_LOOKBACK = timedelta(hours=26)


async def check_posting_limits(uow: UnitOfWork, item: Item, order: object,
                               decision: Decision, now: datetime, policy: Policy) -> None:
    """QuotaExceeded when a post the command plans does not fit the account's limit on its
    platform, counted over what the account has posted and planned."""
    planned = planned_posts(order, decision.events, decision.item.platforms, now)
    limited = {platform for platform, _ in planned if platform in policy.quotas}
    if not limited:
        return
    since = min(when for _, when in planned) - QUOTA_LOOKBACK
    await uow.flush()  # the account's posts the batch planned before this one count too
    usage = await uow.posts.times(item.influencer_id, limited, since, now, item.id)
    live = await uow.posts.live_caps(item.influencer_id, limited)
    check_quota(planned, usage, with_live_caps(policy.quotas, live))


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
    """Create items for a batch of claims in one transaction; replays create nothing.

    A claim without a campaign takes its clip's campaign from M09's clips."""
    result = Ingested()
    async with unit_of_work(pool) as uow:
        campaigns = await uow.clips.campaigns_for(
            sorted({cl.clip_id for cl in claims if not cl.campaign_id}))
        ready = []
        for claim in claims:
            campaign_id = claim.campaign_id or campaigns.get(claim.clip_id)
            if campaign_id is None:
                result.unknown_clips.append(claim)
            else:
                ready.append(NewItem(claim.claim_id, claim.influencer_id, claim.clip_id,
                                     campaign_id, claim.claimed_at,
                                     claim_expires_at(claim.claimed_at)))
        created = await uow.items.add_claimed(ready) if ready else set()
        for new in ready:
            if new.id in created:
                created.discard(new.id)  # a repeat in the same batch is a duplicate
                result.created.append(new.id)
            else:
                result.duplicates.append(new.id)
        await uow.commit()
    return result
