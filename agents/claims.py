"""distribution.claimed -> items in `claimed`; what can never be processed -> the DLQ."""

from __future__ import annotations

import logging

from app import handlers
from app.faust_app import app
from app.topics import claimed_dlq_topic, claimed_topic
from app.wire import ClaimData, parse_claim

from .dead_letters import dead_letter
from .retrying import until_available

log = logging.getLogger("distribution.claims")

BATCH_SIZE = 500
BATCH_WITHIN_SECONDS = 0.05


@app.agent(claimed_topic)
async def ingest_claims(stream):
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_SECONDS):
        claims, sources = [], {}
        for event in events:
            try:
                claim = parse_claim(event.value)
            except ValueError as exc:
                await dead_letter(claimed_dlq_topic, event, "invalid_event", str(exc))
                continue
            claims.append(claim)
            sources[claim.claim_id] = event
        if not claims:
            continue
        result = await ingest(claims, sources)
        for claim in result.unknown_clips:
            await dead_letter(claimed_dlq_topic, sources[claim.claim_id], "unknown_clip",
                              f"clip {claim.clip_id} is not known and the claim has no "
                              "campaign_id")
        for item_id in result.created:
            log.info("item claimed", extra={"item_id": item_id})
        if result.duplicates:
            log.info("claims already known", extra={"item_ids": result.duplicates[:50],
                                                     "count": len(result.duplicates)})


async def ingest(claims: list[ClaimData], sources: dict) -> handlers.Ingested:
    """The batch in one transaction; if the database refuses it, claim by claim."""
    try:
        return await until_available(lambda: handlers.ingest_claims(app.pool, claims),
                                     "ingest claims")
    except Exception:
        log.exception("claim batch refused; ingesting one by one", extra={"count": len(claims)})
    total = handlers.Ingested()
    for claim in claims:
        try:
            one = await until_available(lambda: handlers.ingest_claims(app.pool, [claim]),
                                        "ingest claim")
        except Exception as exc:
            await dead_letter(claimed_dlq_topic, sources[claim.claim_id], "rejected",
                              f"the database refused the claim: {exc}")
            continue
        total.created += one.created
        total.duplicates += one.duplicates
        total.unknown_clips += one.unknown_clips
    return total
