"""Idempotency-Key records, as APIs that take money keep them (Stripe; the IETF httpapi
draft): the same key with the same body replays the first answer and has no second effect;
with another body it is a 422; while the first request is in flight, a 409.

A record is scoped by caller, route and item. Its command id is fixed by the first request,
so a request that retries after a timeout (or after the worker holding the key crashed,
once the lease ran out) sends the very same command, and the command agent, which applies
a command id once, answers it with the first reply.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.domain.errors import IdempotencyKeyInUse, IdempotencyKeyMismatch

from .pool import delete_in_batches, translate_errors
from .queries import Q


@dataclass(frozen=True)
class KeyScope:
    caller: str
    route: str
    item_id: str
    key: str

    def args(self) -> tuple[str, str, str, str]:
        return self.caller, self.route, self.item_id, self.key


@dataclass(frozen=True)
class Run:
    """Go ahead: send the command with this id."""

    command_id: str


@dataclass(frozen=True)
class StoredAnswer:
    """The answer to the first request with the key, to give again."""

    status: int
    body: dict[str, Any]


def request_hash(payload: dict[str, Any]) -> str:
    """The fingerprint of a parsed body: the same request however its JSON was spelled."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def reuse(record: asyncpg.Record | dict[str, Any], fingerprint: str,
          now: datetime) -> Run | StoredAnswer:
    """What a request that finds its key already recorded gets (pure: no I/O)."""
    if record["request_hash"] != fingerprint:
        raise IdempotencyKeyMismatch()
    if record["response_status"] is not None:
        return StoredAnswer(record["response_status"], record["response_body"])
    locked_until = record["locked_until"]
    if locked_until is not None and locked_until > now:
        raise IdempotencyKeyInUse(
            retry_after_seconds=max(1.0, (locked_until - now).total_seconds()))
    return Run(record["command_id"])  # the first request gave up or died: same command


async def begin(pool: asyncpg.Pool, scope: KeyScope, fingerprint: str, now: datetime,
                retention: timedelta, lease: timedelta) -> Run | StoredAnswer:
    """Take the key for this request, or say what the earlier use of it decides."""
    async with translate_errors(), pool.acquire() as conn, conn.transaction():
        await conn.execute(Q["forget_expired_idempotency_key"], *scope.args(), now - retention)
        command_id = await conn.fetchval(Q["insert_idempotency_key"], *scope.args(),
                                         fingerprint, f"http:{uuid.uuid4().hex}", now + lease)
        if command_id is not None:
            return Run(command_id)
        record = await conn.fetchrow(Q["take_idempotency_key"], *scope.args())
        if record is None:  # deleted by a refusal between the two statements
            raise IdempotencyKeyInUse(retry_after_seconds=1)
        decision = reuse(record, fingerprint, now)
        if isinstance(decision, Run):
            await conn.execute(Q["relock_idempotency_key"], *scope.args(), now + lease)
        return decision


async def complete(pool: asyncpg.Pool, scope: KeyScope, status: int,
                   body: dict[str, Any]) -> None:
    async with translate_errors(), pool.acquire() as conn:
        await conn.execute(Q["complete_idempotency_key"], *scope.args(), status, body)


async def release(pool: asyncpg.Pool, scope: KeyScope) -> None:
    """No answer to keep (503, 504): the next request may send the same command at once."""
    async with translate_errors(), pool.acquire() as conn:
        await conn.execute(Q["release_idempotency_key"], *scope.args())


async def forget(pool: asyncpg.Pool, scope: KeyScope) -> None:
    """Refused before it ran (400, 404): as if the key had never been used."""
    async with translate_errors(), pool.acquire() as conn:
        await conn.execute(Q["delete_idempotency_key"], *scope.args())


async def prune(pool: asyncpg.Pool, now: datetime, key_retention: timedelta,
                command_retention: timedelta, batch: int = 5_000) -> tuple[int, int]:
    """Delete keys and applied-command records past their retention: (keys, commands)."""
    keys = await delete_in_batches(pool, Q["prune_idempotency_keys"], now - key_retention, batch)
    commands = await delete_in_batches(pool, Q["prune_processed_commands"],
                                       now - command_retention, batch)
    return keys, commands
