"""The operators' routes on the session's worker: the item search and its pages, an item's
timeline, the dead letters and their re-drive (once), and who may use them."""

from __future__ import annotations

from urllib.parse import urlencode

from app.claims_out import claimed_event
from app.topics import CLAIMED, CLAIMED_DLQ
from fakes.gateway import Answer
from tests.clients import claim_all_and_wait, claim_and_wait, failed_on_snapchat
from tests.factories import new_claimed_event, unique
from tests.support import eventually, openapi_schema_errors, operator_token, token

API = "/api/v1/distribution"


def operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {operator_token()}"}


async def search(api, **query) -> tuple[int, dict]:
    return await api.call("GET", f"{api.base}{API}/items?{urlencode(query)}",
                          headers=operator())


async def test_the_search_pages_through_a_campaigns_items_newest_first(api, topics):
    campaign = unique("campaign")
    events = [claimed_event(unique("claim"), unique("clip"), unique("influencer"), campaign)
              for _ in range(3)]
    claimed = await claim_all_and_wait(topics, [api], events)
    ids = [c.item_id for c in claimed]

    code, first = await search(api, campaign_id=campaign, limit=2)
    assert code == 200, first
    assert openapi_schema_errors("ItemPage", first) == []
    code, second = await search(api, campaign_id=campaign, limit=2, cursor=first["next_cursor"])
    assert code == 200, second
    assert second["next_cursor"] is None
    found = [i["id"] for i in first["items"] + second["items"]]
    assert sorted(found) == sorted(ids) and len(first["items"]) == 2
    created = [i["created_at"] for i in first["items"] + second["items"]]
    assert created == sorted(created, reverse=True)

    code, none = await search(api, campaign_id=campaign, status="published")
    assert (code, none) == (200, {"items": [], "next_cursor": None})


async def test_the_search_finds_failed_platforms_and_the_timeline_tells_the_story(
        api, topics, fake_platforms):
    item_id, influencer, _ = await failed_on_snapchat(topics, api, fake_platforms)

    code, page = await search(api, influencer_id=influencer, platform="snapchat",
                              platform_status="failed")
    assert code == 200 and [i["id"] for i in page["items"]] == [item_id]
    code, page = await search(api, influencer_id=influencer, platform="tiktok",
                              platform_status="failed")
    assert code == 200 and page["items"] == []  # TikTok published

    async def timeline():
        code, body = await api.call("GET", f"{api.base}{API}/items/{item_id}/timeline",
                                    headers=operator())
        assert code == 200, body
        events = [e for e in body["entries"] if e["entry"] == "event"]
        return body if events and all(e["status"] == "published" for e in events) else None

    body = await eventually(timeline, timeout=20, what="the outcome event sent")
    assert openapi_schema_errors("Timeline", body) == []
    entries = body["entries"]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    commands = [e["what"] for e in entries if e["entry"] == "command"]
    assert commands == ["publish-multi"]  # the platforms' answers are the attempts
    attempts = {e["platform"]: e for e in entries if e["entry"] == "attempt"}
    assert attempts["tiktok"]["what"] == "published" and attempts["tiktok"]["post_id"]
    assert attempts["snapchat"]["what"] == "failed"
    assert attempts["snapchat"]["error_class"] == "permanent"
    assert "caption rejected" in attempts["snapchat"]["error"]
    assert [(e["what"], e["topic"]) for e in entries if e["entry"] == "event"] == [
        ("distribution.failed", "distribution.failed")]

    # the operator retries the failed platform: the item moves again
    fake_platforms.script("snapchat", Answer.ok())
    code, _ = await api.call("POST", api.item_url(item_id, "retry"), body={},
                             headers=operator())
    assert code == 202
    item = await api.wait_for_item(item_id, influencer, status="published")
    assert {p["platform"]: p["status"] for p in item["platform_status"]} == {
        "tiktok": "published", "snapchat": "published"}


async def test_a_dead_lettered_claim_is_listed_and_re_driven_once(api, topics, pool):
    event = new_claimed_event()
    del event["data"]["campaign_id"]  # an unknown clip without a campaign: dead-lettered
    item_id, clip_id = event["data"]["claim_id"], event["data"]["clip_id"]
    await topics.produce(CLAIMED, event, key=item_id)

    async def listed():
        code, body = await api.call(
            "GET", f"{api.base}{API}/dead-letters?topic={CLAIMED_DLQ}&limit=200",
            headers=operator())
        assert code == 200, body
        return next((r for r in body["records"] if r["key"] == item_id), None)

    record = await eventually(listed, timeout=30, what="the claim in the DLQ")
    assert record["reason"] == "unknown_clip" and record["topic"] == CLAIMED
    assert record["redriven_at"] is None
    assert openapi_schema_errors("DeadLetter", record) == []

    # M09 knows the clip now: the re-drive makes the item
    await pool.execute("INSERT INTO clips (id, campaign_id) VALUES ($1, $2)", clip_id,
                       unique("campaign"))
    url = (f"{api.base}{API}/dead-letters/{CLAIMED_DLQ}/{record['partition']}/"
           f"{record['offset']}/redrive")
    code, body = await api.call("POST", url, headers=operator())
    assert code == 200, body
    assert body["redriven_by"] == "operator-1" and body["redriven_at"]
    await api.wait_for_item(item_id, event["data"]["influencer_id"])

    code, again = await api.call("POST", url, headers=operator())
    assert code == 409 and again["error"]["code"] == "already_redriven"
    assert (await listed())["redriven_at"] == body["redriven_at"]


async def test_operator_routes_refuse_others_and_bad_input(api):
    influencer = {"Authorization": f"Bearer {token('someone')}"}
    for method, path in [("GET", "/items"), ("GET", "/items/x/timeline"),
                         ("GET", "/dead-letters"),
                         ("POST", f"/dead-letters/{CLAIMED_DLQ}/0/0/redrive")]:
        code, body = await api.call(method, f"{api.base}{API}{path}", headers=influencer)
        assert code == 403 and body["error"]["code"] == "forbidden", (path, body)
        code, body = await api.call(method, f"{api.base}{API}{path}")
        assert code == 401, (path, body)
    for query, field in [("status=lost", "status"), ("limit=0", "limit"),
                         ("limit=2&limit=3", "limit"), ("cursor=a.b", "cursor"),
                         ("due_from=yesterday", "due_from"), ("due_from=0.5", "due_from"),
                         ("due_before=2026-03-01T17:30:00", "due_before"),
                         ("colour=red", "colour")]:
        code, body = await api.call("GET", f"{api.base}{API}/items?{query}", headers=operator())
        assert code == 400 and body["error"]["details"]["field"] == field, (query, body)
    # well formed, but not a cursor the service gave
    code, body = await api.call("GET", f"{api.base}{API}/items?cursor=abc", headers=operator())
    assert code == 422 and body["error"]["details"]["field"] == "cursor", body
    code, body = await api.call("GET", f"{api.base}{API}/items/nothing-here/timeline",
                                headers=operator())
    assert code == 404
    code, body = await api.call(
        "POST", f"{api.base}{API}/dead-letters/distribution.commands/0/0/redrive",
        headers=operator())
    assert code == 404
    code, body = await api.call(
        "POST", f"{api.base}{API}/dead-letters/{CLAIMED_DLQ}/0/999999999/redrive",
        headers=operator())
    assert code == 404, body


async def test_the_overview_is_the_databases_figures(api, topics, pool):
    item_id, influencer, _ = await claim_and_wait(topics, api)
    code, _ = await api.post(item_id, "publish", influencer, {"platform": "youtube"})
    assert code == 202
    await api.wait_for_item(item_id, influencer, status="published")

    async def matches():
        code, body = await api.call("GET", f"{api.base}{API}/overview", headers=operator())
        assert code == 200, body
        counts = {r["status"]: r["n"] for r in await pool.fetch(
            "SELECT status, count(*) AS n FROM distribution_items GROUP BY status")}
        return body if body["items_by_status"] == counts else None

    body = await eventually(matches, timeout=20, interval=0.5, what="the database's counts")
    assert openapi_schema_errors("Overview", body) == []
    assert body["outcomes_last_hour"]["youtube"]["published"] >= 1
    assert body["platform_rows"]["youtube"]["published"] >= 1
