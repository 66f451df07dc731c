"""Claim ingestion from the topic: idempotent, and poison goes to the DLQ."""

from __future__ import annotations

from app.topics import CLAIMED, CLAIMED_DLQ
from tests.clients import claim_and_wait
from tests.factories import claimed_event, new_claimed_event, unique
from tests.support import event_schema_errors, eventually


async def items_of(pool, influencer: str) -> list:
    return await pool.fetch("SELECT id FROM distribution_items WHERE influencer_id = $1",
                            influencer)


async def dlq_for(topics, key: str) -> list[dict]:
    return await topics.records_for(CLAIMED_DLQ, key)


async def test_a_claim_delivered_twice_and_a_second_claim_for_the_same_clip_make_one_item(
        api, topics, pool):
    influencer, clip, campaign = unique("influencer"), unique("clip"), unique("campaign")
    first = claimed_event(unique("claim"), clip, influencer, campaign)
    await topics.produce(CLAIMED, first, key=first["data"]["claim_id"])
    await topics.produce(CLAIMED, first, key=first["data"]["claim_id"])
    other = claimed_event(unique("claim"), clip, influencer, campaign)
    await topics.produce(CLAIMED, other, key=first["data"]["claim_id"])
    # a later claim on the same partition shows that the ones before it were processed
    marker = claimed_event(unique("claim"), unique("clip"), influencer, campaign)
    await topics.produce(CLAIMED, marker, key=first["data"]["claim_id"])

    await api.wait_for_item(marker["data"]["claim_id"], influencer)
    assert sorted(r["id"] for r in await items_of(pool, influencer)) == sorted(
        [first["data"]["claim_id"], marker["data"]["claim_id"]])


async def test_poison_claims_go_to_the_dlq_with_a_reason_and_the_agent_goes_on(
        api, topics, pool):
    influencer = unique("influencer")
    poison = {
        unique("bad-json"): b"{not json",
        unique("missing-field"): claimed_event("x", "y", influencer, "c") | {"data": {}},
        unique("unknown-type"): claimed_event(unique("c"), unique("clip"), influencer, "camp")
        | {"event_type": "distribution.unclaimed"},
        unique("unknown-clip"): claimed_event(unique("claim"), unique("clip"), influencer,
                                              None),
    }
    for key, value in poison.items():
        await topics.produce(CLAIMED, value, key=key)

    async def all_dead_lettered():
        found = {key: await dlq_for(topics, key) for key in poison}
        return found if all(found.values()) else None

    found = await eventually(all_dead_lettered, timeout=30, what="poison in the DLQ")
    for key, records in found.items():
        assert len(records) == 1, (key, records)
        record = records[0]
        assert record["reason"] and record["error"] and record["topic"] == "distribution.claimed"
        assert isinstance(record["offset"], int)
        assert event_schema_errors(record, "distribution.claimed.dlq.schema.json") == []
    assert found[next(k for k in poison if k.startswith("unknown-clip"))][0]["reason"] == \
        "unknown_clip"
    assert "JSON" in found[next(k for k in poison if k.startswith("bad-json"))][0]["error"]

    healthy = await claim_and_wait(topics, api, new_claimed_event(influencer))
    assert [r["id"] for r in await items_of(pool, influencer)] == [healthy.item_id]
