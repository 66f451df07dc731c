"""Every error code of the contract, produced by a real request, in the one error shape."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.factories import unique
from tests.support import openapi_schema_errors, token


def assert_error(code: int, body: dict, status: int, error_code: str) -> dict:
    assert code == status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == error_code
    assert body["error"]["message"]
    assert openapi_schema_errors("Error", body) == []
    return body["error"]


async def test_an_unknown_item_is_not_found(api):
    code, body = await api.get(unique("nothing"), unique("influencer"))
    assert_error(code, body, 404, "not_found")
    code, body = await api.post(unique("nothing"), "retry", unique("influencer"))
    assert_error(code, body, 404, "not_found")


async def test_an_unknown_route_is_not_found_in_the_same_shape(api):
    code, body = await api.call("GET", f"{api.base}/api/v1/distribution/nowhere")
    assert_error(code, body, 404, "not_found")


@pytest.mark.parametrize("body, field", [
    ({"type": "intro", "duration_seconds": 3.001}, "duration_seconds"),
    ({"type": "intro", "duration_seconds": 0}, "duration_seconds"),
    ({"type": "sideways", "duration_seconds": 1}, "type"),
    ({"type": "intro"}, "duration_seconds"),
    ({"type": "intro", "duration_seconds": "long"}, "duration_seconds"),
])
async def test_a_bad_overlay_is_a_400_naming_the_field(api, claimed_item, body, field):
    item_id, influencer = claimed_item
    code, answer = await api.post(item_id, "overlays", influencer, body)
    assert assert_error(code, answer, 400, "invalid_request")["details"]["field"] == field


async def test_a_body_that_is_not_json_is_a_400(api, claimed_item):
    item_id, influencer = claimed_item
    async with api.session.post(api.item_url(item_id, "overlays"), data=b"{oops",
                                headers={"Authorization": f"Bearer {token(influencer)}"}) as r:
        assert_error(r.status, await r.json(), 400, "invalid_request")


async def test_a_malformed_schedule_is_a_400_naming_the_field(api, claimed_item):
    item_id, influencer = claimed_item
    soon = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    cases = [
        ({"platforms": ["tiktok"], "scheduled_at": "2030-01-01T10:00:00",
          "timezone": "Mars/Olympus"}, "timezone"),
        ({"platforms": ["tiktok"], "scheduled_at": "next tuesday"}, "scheduled_at"),
        ({"scheduled_at": soon}, "platforms"),
    ]
    for body, field in cases:
        code, answer = await api.post(item_id, "schedule", influencer, body)
        assert assert_error(code, answer, 400, "invalid_request")["details"]["field"] == field
    code, item = await api.get(item_id, influencer)
    assert (item["status"], item["version"]) == ("claimed", 1)


async def test_a_schedule_a_rule_refuses_is_a_422_rule_violation_naming_the_field(
        api, claimed_item):
    item_id, influencer = claimed_item
    too_late = (datetime.now(timezone.utc) + timedelta(days=31)).isoformat()
    too_early = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    cases = [
        ({"platforms": ["tiktok"], "scheduled_at": too_late}, "scheduled_at"),
        ({"platforms": ["tiktok"], "scheduled_at": too_early}, "scheduled_at"),
        ({"platforms": ["tiktok"], "scheduled_at": "2027-03-28T02:30:00",
          "timezone": "Europe/Paris"}, "scheduled_at"),  # daylight saving gap
        ({"platforms": ["tiktok"], "scheduled_at": "2027-10-31T02:30:00",
          "timezone": "Europe/Paris"}, "scheduled_at"),  # daylight saving fold
        ({"platforms": ["tiktok"], "scheduled_at": "2030-01-01T10:00:00"}, "timezone"),
        ({"platforms": ["snapchat"],
          "scheduled_at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(),
          "caption": {"text": "x" * 161}}, "caption"),
    ]
    for body, field in cases:
        code, answer = await api.post(item_id, "schedule", influencer, body)
        assert assert_error(code, answer, 422, "rule_violation")["details"]["field"] == field
    code, item = await api.get(item_id, influencer)
    assert (item["status"], item["version"]) == ("claimed", 1)


async def test_an_unsupported_platform_has_its_own_code(api, claimed_item):
    item_id, influencer = claimed_item
    code, body = await api.post(item_id, "publish", influencer, {"platform": "myspace"})
    assert assert_error(code, body, 400, "unsupported_platform")["details"]["field"]


async def test_missing_bad_and_expired_tokens_are_401(api, claimed_item):
    item_id, _ = claimed_item
    url = api.item_url(item_id, "retry")
    code, body = await api.call("POST", url, body={})
    assert_error(code, body, 401, "unauthorized")
    forged = token("someone", secret="not-the-service-secret-not-the-service-secret")
    code, body = await api.call("POST", url, body={},
                                headers={"Authorization": f"Bearer {forged}"})
    assert_error(code, body, 401, "unauthorized")
    expired = token("someone", exp=datetime.now(timezone.utc) - timedelta(minutes=5))
    code, body = await api.call("GET", api.item_url(item_id),
                                headers={"Authorization": f"Bearer {expired}"})
    assert_error(code, body, 401, "unauthorized")


async def test_another_influencers_item_is_answered_as_not_found_everywhere_and_unchanged(
        api, claimed_item, pool):
    item_id, influencer = claimed_item
    stranger = unique("stranger")
    _, missing = await api.get(unique("nothing"), stranger)
    _, before = await api.get(item_id, influencer)
    for action, body in [("overlays", {"type": "intro", "duration_seconds": 1}),
                         ("publish", {"platform": "tiktok"}), ("download", {}), ("retry", {})]:
        for headers in ({}, {"Idempotency-Key": unique("key")}):
            code, answer = await api.post(item_id, action, stranger, body, headers=headers)
            error = assert_error(code, answer, 404, "not_found")
            assert error == {**missing["error"], "details": {"item_id": item_id}}
    for action in ("", "preview"):
        code, answer = await api.get(item_id, stranger, action)
        error = assert_error(code, answer, 404, "not_found")
        assert error == {**missing["error"], "details": {"item_id": item_id}}
    code, after = await api.get(item_id, influencer)
    assert code == 200 and after == before and after["version"] == 1
    # refused before the command was sent: nothing recorded for the stranger
    assert await pool.fetchval(
        "SELECT count(*) FROM publishing_analytics WHERE item_id = $1", item_id) == 0
    assert await pool.fetchval(
        "SELECT count(*) FROM distribution_idempotency_keys WHERE item_id = $1", item_id) == 0


async def test_a_transition_the_state_machine_forbids_is_a_409(api, claimed_item):
    item_id, influencer = claimed_item
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    code, body = await api.post(item_id, "reschedule", influencer, {"scheduled_at": later})
    error = assert_error(code, body, 409, "invalid_state_transition")
    assert error["details"]["status"] == "claimed"
    code, body = await api.post(item_id, "retry", influencer)
    assert_error(code, body, 409, "invalid_state_transition")


async def test_the_same_idempotency_key_takes_effect_once(api, claimed_item):
    item_id, influencer = claimed_item
    headers = {"Idempotency-Key": unique("key")}
    body = {"type": "outro", "duration_seconds": 1.5}
    first = await api.post(item_id, "overlays", influencer, body, headers=headers)
    second = await api.post(item_id, "overlays", influencer, body, headers=headers)
    assert first[0] == second[0] == 200
    assert first[1]["version"] == second[1]["version"]
    code, item = await api.get(item_id, influencer)
    assert item["version"] == first[1]["version"]
