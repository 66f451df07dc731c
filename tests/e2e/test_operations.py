"""What operators and integrators read: health, readiness, metrics, stats, the API document."""

from __future__ import annotations

import json
from pathlib import Path

from tests.clients import claim_and_wait
from tests.support import eventually, openapi_schema_errors, operator_token

OPENAPI = Path(__file__).resolve().parents[2] / "contracts/api/v1/distribution-service.openapi.json"


async def test_liveness_and_readiness_report_ok(api):
    assert await api.call("GET", f"{api.base}/healthz") == (200, {"status": "ok"})

    async def ready():
        # each check has 2 s: on a loaded machine one may miss it, and the next poll pass
        code, body = await api.call("GET", f"{api.base}/readyz")
        assert openapi_schema_errors("Readiness", body) == []
        return body if code == 200 else None

    body = await eventually(ready, timeout=20, interval=0.5, what="readiness")
    assert body == {"status": "ready",
                    "checks": {"database": "ok", "broker": "ok", "commands": "ok"}}


async def test_the_service_serves_its_openapi_document(api):
    code, body = await api.call("GET", f"{api.base}/openapi.json")
    assert code == 200 and body == json.loads(OPENAPI.read_text())


async def test_stats_count_platform_outcomes_from_the_outcome_topics_for_an_operator(
        api, topics):
    operator = {"Authorization": f"Bearer {operator_token()}"}
    code, before = await api.call("GET", f"{api.base}/api/v1/distribution/stats",
                                  headers=operator)
    assert code == 200, before
    item_id, influencer, _ = await claim_and_wait(topics, api)
    code, _ = await api.post(item_id, "publish-multi", influencer,
                             {"platforms": ["snapchat", "youtube"]})
    assert code == 202
    await api.wait_for_item(item_id, influencer, status="published")

    async def counted():
        code, now = await api.call("GET", f"{api.base}/api/v1/distribution/stats",
                                   headers=operator)
        grown = all(now["platforms"][p]["published"] == before["platforms"][p]["published"] + 1
                    for p in ("snapchat", "youtube"))
        return now if code == 200 and grown else None

    after = await eventually(counted, timeout=30, what="stats counting the outcome")
    assert after["platforms"]["tiktok"] == before["platforms"]["tiktok"]
    assert openapi_schema_errors("Stats", after) == []
    code, text = await api.call("GET", f"{api.base}/metrics", headers=operator)
    assert code == 200 and 'distribution_platform_outcomes{platform="youtube"' in text["text"]
