"""The HTTP surface as an attacker and a careless client meet it: ownership that leaks
nothing, the operator role, Idempotency-Key semantics, bounded input, operator-only
statistics. All against the running worker, its PostgreSQL and its broker."""

from __future__ import annotations

import json

import pytest

from app.db.idempotency import request_hash
from tests.factories import unique
from tests.support import eventually, operator_token, token


async def footprint(pool, item_id: str) -> tuple:
    """Every row a command for the item could have written."""
    async with pool.acquire() as conn:
        return (await conn.fetchval("SELECT version FROM distribution_items WHERE id = $1",
                                    item_id),
                await conn.fetchval("SELECT count(*) FROM distribution_processed_commands "
                                    "WHERE item_id = $1", item_id),
                await conn.fetchval("SELECT count(*) FROM publishing_analytics "
                                    "WHERE item_id = $1", item_id),
                await conn.fetchval("SELECT count(*) FROM distribution_idempotency_keys "
                                    "WHERE item_id = $1", item_id))


async def call(api, method: str, url: str, auth: str | None = None, body=None,
               headers: dict | None = None):
    h = {**({"Authorization": f"Bearer {auth}"} if auth else {}), **(headers or {})}
    async with api.session.request(method, url, headers=h, allow_redirects=False,
                                   **({"json": body} if body is not None else {})) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text.startswith("{") else text), r.headers


# --- ownership ------------------------------------------------------------------------------

async def test_someone_elses_item_is_answered_exactly_like_a_missing_one(api, claimed_item,
                                                                        pool):
    item_id, owner = claimed_item
    stranger, missing = unique("stranger"), unique("claim")
    before = await footprint(pool, item_id)
    for action, body in [("", None), ("preview", None), ("overlays",
                         {"type": "intro", "duration_seconds": 1}), ("retry", {}),
                         ("download", {}), ("publish", {"platform": "tiktok"})]:
        method = "GET" if body is None else "POST"
        theirs = await call(api, method, api.item_url(item_id, action), token(stranger), body,
                            {"Idempotency-Key": unique("k")} if body is not None else None)
        absent = await call(api, method, api.item_url(missing, action), token(stranger), body)
        assert theirs[0] == absent[0] == 404
        assert theirs[1]["error"]["code"] == absent[1]["error"]["code"] == "not_found"
        assert theirs[1]["error"]["message"] == absent[1]["error"]["message"]
        assert theirs[1]["error"]["details"] == {"item_id": item_id}
    assert await footprint(pool, item_id) == before  # no command applied, no key kept


async def test_an_operator_reads_and_acts_on_any_item_and_is_named_in_analytics_and_logs(
        api, claimed_item, pool, service):
    item_id, owner = claimed_item
    operator = unique("operator")
    code, item, _ = await call(api, "GET", api.item_url(item_id), operator_token(operator))
    assert code == 200 and item["influencer_id"] == owner
    code, link, _ = await call(api, "POST", api.item_url(item_id, "download"),
                               operator_token(operator), {})
    assert code == 200 and link["url"]
    code, overlaid, _ = await call(api, "POST", api.item_url(item_id, "overlays"),
                                   operator_token(operator),
                                   {"type": "outro", "duration_seconds": 1.5})
    assert code == 200 and overlaid["overlays"] == [{"type": "outro", "duration_seconds": 1.5}]
    async with pool.acquire() as conn:
        actors = await conn.fetch("SELECT event_type, actor FROM publishing_analytics "
                                  "WHERE item_id = $1", item_id)
    assert [(r["event_type"], r["actor"]) for r in actors] == [("download", operator)]
    applied = [json.loads(line) for line in service.log_path.read_text().splitlines()
               if item_id in line and '"command applied"' in line]
    assert {(r["command"], r["actor"], r["operator"]) for r in applied} == {
        ("download", operator, True), ("add-overlay", operator, True)}


async def test_statistics_and_metrics_are_for_operators_only(api):
    for path in ("/api/v1/distribution/stats", "/metrics"):
        url = f"{api.base}{path}"
        assert (await call(api, "GET", url))[0] == 401
        code, body, _ = await call(api, "GET", url, token(unique("influencer")))
        assert code == 403 and body["error"]["code"] == "forbidden"
        assert (await call(api, "GET", url, operator_token()))[0] == 200


# --- Idempotency-Key ------------------------------------------------------------------------

async def test_the_same_key_and_body_replay_the_first_answer_without_a_second_effect(
        api, claimed_item, pool):
    item_id, owner = claimed_item
    body, key = {"type": "intro", "duration_seconds": 2}, {"Idempotency-Key": unique("key")}
    first = await call(api, "POST", api.item_url(item_id, "overlays"), token(owner), body, key)
    again = await call(api, "POST", api.item_url(item_id, "overlays"), token(owner), body, key)
    assert first[0] == again[0] == 200 and first[1] == again[1]
    assert again[2]["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first[2]
    code, item, _ = await call(api, "GET", api.item_url(item_id), token(owner))
    assert item["version"] == first[1]["version"]  # applied once


async def test_the_same_key_with_another_body_is_a_422(api, claimed_item):
    item_id, owner = claimed_item
    key = {"Idempotency-Key": unique("key")}
    url = api.item_url(item_id, "overlays")
    await call(api, "POST", url, token(owner), {"type": "intro", "duration_seconds": 2}, key)
    code, body, _ = await call(api, "POST", url, token(owner),
                               {"type": "intro", "duration_seconds": 3}, key)
    assert code == 422 and body["error"]["code"] == "idempotency_key_mismatch"


async def test_the_same_key_while_the_first_request_is_in_flight_is_a_409(api, claimed_item,
                                                                         pool):
    item_id, owner = claimed_item
    key, payload = unique("key"), {"type": "intro", "duration_seconds": 1.0}
    async with pool.acquire() as conn:  # as a first request, still running, leaves it
        await conn.execute(
            "INSERT INTO distribution_idempotency_keys (caller, route, item_id, "
            "idempotency_key, request_hash, command_id, locked_until) "
            "VALUES ($1, 'overlays', $2, $3, $4, 'http:in-flight', now() + interval '30 s')",
            owner, item_id, key, request_hash(payload))
    code, body, headers = await call(api, "POST", api.item_url(item_id, "overlays"),
                                     token(owner), payload, {"Idempotency-Key": key})
    assert code == 409 and body["error"]["code"] == "idempotency_key_in_use"
    assert 1 <= int(headers["Retry-After"]) <= 30


async def test_a_refusal_by_the_state_machine_is_kept_and_replayed(api, claimed_item):
    item_id, owner = claimed_item
    key = {"Idempotency-Key": unique("key")}
    first = await call(api, "POST", api.item_url(item_id, "retry"), token(owner), {}, key)
    again = await call(api, "POST", api.item_url(item_id, "retry"), token(owner), {}, key)
    assert first[0] == again[0] == 409 and first[1] == again[1]
    assert again[2]["Idempotent-Replayed"] == "true"


async def test_a_request_refused_before_it_ran_leaves_its_key_unused(api, claimed_item, pool):
    item_id, owner = claimed_item
    key = {"Idempotency-Key": unique("key")}
    url = api.item_url(item_id, "overlays")
    code, _, _ = await call(api, "POST", url, token(owner), {"type": "intro"}, key)
    assert code == 400
    code, _, _ = await call(api, "POST", url, None, {"type": "intro"}, key)
    assert code == 401
    assert (await footprint(pool, item_id))[3] == 0
    code, body, headers = await call(api, "POST", url, token(owner),
                                     {"type": "intro", "duration_seconds": 1}, key)
    assert code == 200 and "Idempotent-Replayed" not in headers


@pytest.mark.parametrize("key", ["", "k" * 256, "caf\u00e9", "tab\there"])
async def test_a_key_outside_1_to_255_printable_ascii_characters_is_a_400(api, claimed_item,
                                                                          key):
    item_id, owner = claimed_item
    async with api.session.post(api.item_url(item_id, "retry"), json={}, headers={
            "Authorization": f"Bearer {token(owner)}",
            "Idempotency-Key": key.encode("latin-1").decode("latin-1")}) as r:
        body = await r.json()
    assert r.status == 400 and body["error"]["details"]["field"] == "Idempotency-Key"


# --- bounded input --------------------------------------------------------------------------

@pytest.mark.parametrize("raw_id", ["a%2Fb", "%00abc", "-starts-with-dash", "x" * 201,
                                    "%E2%9C%93", "a%20b", "x" * 5_000])
async def test_a_malformed_item_id_is_a_4xx_in_the_error_shape(api, raw_id):
    from yarl import URL
    for method, action in (("GET", ""), ("GET", "/preview"), ("POST", "/retry")):
        url = URL(f"{api.base}/api/v1/distribution/items/{raw_id}{action}", encoded=True)
        async with api.session.request(method, url, json={} if method == "POST" else None,
                                       headers={"Authorization":
                                                f"Bearer {token('someone')}"}) as r:
            text = await r.text()
        assert r.status in (400, 404), (raw_id, r.status, text[:200])
        assert json.loads(text)["error"]["code"] in ("invalid_request", "not_found")


async def test_an_oversized_request_line_or_header_is_a_400_and_never_quoted_in_the_logs(
        api, service):
    """aiohttp's parser refuses these before any route runs (text/plain 400; it is the HTTP
    layer's answer, not ours), and reports them with the offending text: the log keeps only
    the error's name."""
    from yarl import URL
    secret = unique("secret")
    async with api.session.get(URL(f"{api.base}/api/v1/distribution/items/{secret}"
                                   + "x" * 10_000, encoded=True)) as r:
        assert r.status == 400
    async with api.session.get(api.item_url("some-item"), headers={
            "Authorization": f"Bearer {secret}" + "y" * 20_000}) as r:
        assert r.status == 400

    async def reported():
        return service.log_path.read_text().count("Error handling request") >= 2
    await eventually(reported, timeout=10, what="the bad requests reported")
    assert secret not in service.log_path.read_text()


async def test_an_undeclared_method_is_a_405_naming_the_allowed_ones(api, claimed_item):
    item_id, owner = claimed_item
    for method, url in [("TRACE", api.item_url(item_id)), ("DELETE", api.item_url(item_id)),
                        ("PUT", api.item_url(item_id, "overlays")),
                        ("GET", api.item_url(item_id, "schedule"))]:
        code, body, headers = await call(api, method, url, token(owner))
        assert code == 405 and body["error"]["code"] == "method_not_allowed", (method, url)
        assert method not in headers["Allow"] and headers["Allow"]
    # HEAD reaches every view (Faust routes it); a route without GET refuses it alike
    code, _, headers = await call(api, "HEAD", api.item_url(item_id, "retry"), token(owner))
    assert code == 405 and headers["Allow"] == "POST"
    async with api.session.head(api.item_url(item_id),
                                headers={"Authorization": f"Bearer {token(owner)}"}) as r:
        assert r.status == 200


@pytest.mark.parametrize("query", ["", "?expires=abc&signature=00", "?expires=1&signature=zz",
                                   "?expires=99999999999&signature=" + "0" * 64,
                                   "?expires=1&expires=2&signature=" + "0" * 64,
                                   "?expires=1&signature=" + "0" * 63 + "%00"])
async def test_a_malformed_download_link_is_a_403(api, claimed_item, query):
    item_id, _ = claimed_item
    code, body, _ = await call(api, "GET",
                               f"{api.base}/api/v1/distribution/downloads/{item_id}{query}")
    assert code == 403 and body["error"]["code"] == "forbidden"


async def test_an_oversized_or_garbage_token_is_a_401_in_the_error_shape(api, claimed_item):
    item_id, _ = claimed_item
    for auth in ["x" * 7000, "a.b.c", "\u00ff" * 10, token("x") + "tampered"]:
        code, body, headers = await call(api, "GET", api.item_url(item_id), auth)
        assert code == 401 and body["error"]["code"] == "unauthorized"
        assert headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_extreme_date_is_refused_as_a_client_error(api, claimed_item):
    item_id, owner = claimed_item
    for when in ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                 "2026-02-30T10:00:00Z", "+275760-09-13T00:00:00Z"]:
        code, body, _ = await call(api, "POST", api.item_url(item_id, "schedule"), token(owner),
                                   {"platforms": ["tiktok"], "scheduled_at": when})
        assert code in (400, 422) and body["error"]["code"] in ("invalid_request",
                                                                "rule_violation"), when
