from datetime import datetime, timezone

from app import handlers
from app.wire import ClaimData, Command
from app.domain.rules import Policy
from tests.support import unique


async def test_a_claim_becomes_an_item_that_accepts_an_overlay(pool):
    claim = ClaimData(claim_id=unique("claim"), clip_id=unique("clip"),
                      influencer_id=unique("inf"), campaign_id=unique("camp"),
                      claimed_at=datetime.now(timezone.utc))
    result = await handlers.ingest_claims(pool, [claim, claim])
    assert result.created == [claim.claim_id] or result.created == [claim.claim_id] * 2
    cmd = Command(command_id=unique("cmd"), kind="add-overlay", item_id=claim.claim_id,
                  actor=claim.influencer_id, payload={"type": "intro", "duration_seconds": 2.5})
    applied = await handlers.handle(pool, cmd, datetime.now(timezone.utc), Policy())
    assert applied.reply["ok"], applied.reply
    assert applied.reply["item"]["overlays"] == [{"type": "intro", "duration_seconds": 2.5}]
    again = await handlers.handle(pool, cmd, datetime.now(timezone.utc), Policy())
    assert again.reply["item"]["version"] == applied.reply["item"]["version"]
