from datetime import datetime, timezone

from app import handlers
from app.domain.rules import Policy
from app.wire import make_command
from tests.factories import claim_data, unique


async def test_a_claim_becomes_an_item_that_accepts_an_overlay(pool):
    claim = claim_data()
    result = await handlers.ingest_claims(pool, [claim, claim])
    assert result.created == [claim.claim_id] or result.created == [claim.claim_id] * 2
    cmd = make_command("add-overlay", claim.claim_id, unique("cmd"),
                       {"type": "intro", "duration_seconds": 2.5}, actor=claim.influencer_id)
    applied = await handlers.handle(pool, cmd, datetime.now(timezone.utc), Policy())
    assert applied.reply["ok"], applied.reply
    assert applied.reply["item"]["overlays"] == [{"type": "intro", "duration_seconds": 2.5}]
    again = await handlers.handle(pool, cmd, datetime.now(timezone.utc), Policy())
    assert again.reply["item"]["version"] == applied.reply["item"]["version"]
