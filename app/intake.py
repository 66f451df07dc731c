"""Claims off distribution.claimed -> items in `claimed`, a batch at a time; what can never
become an item goes to distribution.claimed.dlq with the reason. Creating an item is
idempotent, so a batch read again after a crash or a rebalance creates nothing twice."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
from aiokafka import ConsumerRecord

from app import handlers
from app.dead_letters import dead_letter
from app.topics import CLAIMED_DLQ, Send
from app.waiting import until_available
from app.wire import ClaimData, parse_claim

log = logging.getLogger("distribution.claims")


async def ingest_records(pool: asyncpg.Pool, records: Sequence[ConsumerRecord],
                         send: Send) -> handlers.Ingested:
    """Every record either becomes an item (or finds it made already) or is dead-lettered
    before this returns: then its offset may be committed."""
    claims, sources = [], {}
    for record in records:
        try:
            claim = parse_claim(record.value)
        except ValueError as exc:
            await dead_letter(send, CLAIMED_DLQ, record, "invalid_event", str(exc))
            continue
        claims.append(claim)
        sources[claim.claim_id] = record
    if not claims:
        return handlers.Ingested()
    result = await ingest(pool, claims, sources, send)
    for claim in result.unknown_clips:
        await dead_letter(send, CLAIMED_DLQ, sources[claim.claim_id], "unknown_clip",
                          f"clip {claim.clip_id} is not known and the claim has no campaign_id")
    for item_id in result.created:
        log.info("item claimed", extra={"item_id": item_id})
    if result.duplicates:
        log.info("claims already known", extra={"item_ids": result.duplicates[:50],
                                                 "count": len(result.duplicates)})
    return result


async def ingest(pool: asyncpg.Pool, claims: list[ClaimData], sources: dict,
                 send: Send) -> handlers.Ingested:
    """The batch in one transaction; if the database refuses it, claim by claim."""
    try:
        return await until_available(lambda: handlers.ingest_claims(pool, claims),
                                     "ingest claims")
    except Exception:
        log.exception("claim batch refused; ingesting one by one", extra={"count": len(claims)})
    total = handlers.Ingested()
    for claim in claims:
        try:
            one = await until_available(lambda: handlers.ingest_claims(pool, [claim]),
                                        "ingest claim")
        except Exception as exc:
            await dead_letter(send, CLAIMED_DLQ, sources[claim.claim_id], "rejected",
                              f"the database refused the claim: {exc}")
            continue
        total.created += one.created
        total.duplicates += one.duplicates
        total.unknown_clips += one.unknown_clips
    return total
