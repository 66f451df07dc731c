"""What operators and integrators read: health, readiness, metrics, stats, the API document."""

from __future__ import annotations

import json
from pathlib import Path

from tests.clients import claim_and_wait
from app.topics import CLAIMED, COMMANDS
from tests.support import eventually, openapi_schema_errors, operator_token, token

OPENAPI = Path(__file__).resolve().parents[2] / "contracts/api/v1/distribution-service.openapi.json"


async def test_liveness_and_readiness_report_ok(api):
    assert await api.call("GET", f"{api.base}/healthz") == (
        200, {"status": "ok", "problems": []})

    async def ready():
        # each check has 2 s: on a loaded machine one may miss it, and the next poll pass
        code, body = await api.call("GET", f"{api.base}/readyz")
        assert openapi_schema_errors("Readiness", body) == []
        return body if code == 200 else None

    body = await eventually(ready, timeout=20, interval=0.5, what="readiness")
    assert body == {"status": "ready",
                    "checks": {"database": "ok", "broker": "ok", "commands": "ok",
                               "claims": "ok"}}


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

    # each platform counted once (other tests on the session's worker publish too, so the
    # other platforms' counts may move meanwhile)
    after = await eventually(counted, timeout=30, what="stats counting the outcome")
    assert openapi_schema_errors("Stats", after) == []


async def test_metrics_tell_commands_attempts_lag_and_the_clusters_figures(api, topics, pool):
    operator = {"Authorization": f"Bearer {operator_token()}"}
    item_id, influencer, _ = await claim_and_wait(topics, api)
    code, _ = await api.post(item_id, "publish-multi", influencer, {"platforms": ["tiktok"]})
    assert code == 202
    await api.wait_for_item(item_id, influencer, status="published")

    async def scraped():
        code, body = await api.call("GET", f"{api.base}/metrics", headers=operator)
        assert code == 200
        return parse_metrics(body["text"])

    got = await scraped()
    assert got[("distribution_commands_total",
                (("error", ""), ("kind", "publish-multi"), ("outcome", "applied")))] >= 1
    assert got[("distribution_platform_attempts_total",
                (("error_class", ""), ("outcome", "published"), ("platform", "tiktok"),
                 ("reason", "")))] >= 1
    lag_topics = {dict(labels)["topic"] for name, labels in got
                  if name == "distribution_consumer_lag"}
    assert {COMMANDS, CLAIMED} <= lag_topics  # Faust's agents and the claims consumer
    assert got[("faust_messages_received_total", ())] >= 1  # Faust's own sensor
    assert got[("distribution_db_pool_size", ())] >= 1

    async def cluster_matches_the_database():
        # the figures a scrape gives are at most DISTRIBUTION_METRICS_CLUSTER_MAX_AGE old
        published = await pool.fetchval(
            "SELECT count(*) FROM distribution_items WHERE status = 'published'")
        got = await scraped()
        return got if got.get(("distribution_items", (("status", "published"),))) \
            == published else None

    got = await eventually(cluster_matches_the_database, timeout=20, interval=0.5,
                           what="the items by status of the database")
    assert got[("distribution_outbox_pending", ())] >= 0


async def test_metrics_are_for_operators_only(api):
    code, body = await api.call("GET", f"{api.base}/metrics",
                                headers={"Authorization": f"Bearer {token('someone')}"})
    assert code == 403, body


def parse_metrics(text: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
