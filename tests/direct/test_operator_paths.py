"""What needs a person, through the whole service in direct mode: a platform whose outcome
cannot be established waits for an operator, and an account whose token is refused even
after a refresh holds its posts until M10 says it is reconnected."""

from __future__ import annotations

from fakes.platform_kit import HANG_AFTER
from tests.clients import Api, claim_and_wait
from tests.factories import new_claimed_event, unique
from tests.support import event_schema_errors, eventually, operator_token

ACCOUNT_EVENTS = "distribution.accounts"


async def as_operator(api: Api, method: str, url: str, body=None) -> tuple[int, dict]:
    return await api.call(method, url, body=body,
                          headers={"Authorization": f"Bearer {operator_token()}"})


def row(item: dict, platform: str) -> dict:
    return next(r for r in item["platform_status"] if r["platform"] == platform)


async def test_a_post_whose_outcome_is_unknown_waits_for_an_operator_who_settles_it(
        api, topics, fakes):
    claimed = await claim_and_wait(topics, api)
    text = f"Spotlight {unique('caption')}"
    fakes.snapchat.faults.script("spotlights", HANG_AFTER)  # posted, the answer never comes
    code, _ = await api.post(claimed.item_id, "publish-multi", claimed.influencer,
                             {"platforms": ["snapchat", "tiktok"], "caption": {"text": text}})
    assert code == 202

    async def unknown_on_snapchat():
        _, item = await api.get(claimed.item_id, claimed.influencer)
        return item if row(item, "snapchat")["status"] == "unknown" and \
            row(item, "tiktok")["status"] == "published" else None

    item = await eventually(unknown_on_snapchat, timeout=60, what="snapchat unknown")
    assert item["status"] == "publishing"  # never posted again; nothing settles it but a person
    assert row(item, "snapchat")["reason_code"] == "spotlight_outcome_unknown"
    [post] = fakes.snapchat.posts_with(text)
    profile = fakes.accounts.account_id(claimed.influencer, "snapchat")
    assert len([c for c in fakes.snapchat.calls_to("spotlights") if profile in c.path]) == 1
    _, preview = await api.get(claimed.item_id, claimed.influencer, "preview")
    assert row(preview, "snapchat")["status"] == "unknown"
    [event] = await eventually(lambda: topics.records_for("distribution.unknown",
                                                          claimed.item_id),
                               timeout=30, what="the distribution.unknown event")
    assert event_schema_errors(event, "distribution.unknown.schema.json") == []
    assert (event["data"]["platform"], event["data"]["reason_code"]) == (
        "snapchat", "spotlight_outcome_unknown")

    resolve = api.item_url(claimed.item_id, "platforms/snapchat/resolve")
    found = {"outcome": "published", "post_id": post.post_id}
    code, body = await api.call("POST", resolve, claimed.influencer, found)
    assert (code, body["error"]["code"]) == (403, "forbidden")  # the owner is not an operator
    code, body = await as_operator(api, "POST", resolve, found)
    assert code == 200, body
    assert (body["status"], body["publication"]) == ("published", "published")
    assert row(body, "snapchat")["post_id"] == post.post_id
    code, body = await as_operator(api, "POST", resolve, found)  # settled already
    assert (code, body["error"]["code"]) == (409, "invalid_state_transition")


async def test_a_refused_account_holds_its_posts_until_m10_says_it_is_reconnected(
        api, topics, fakes):
    influencer = unique("influencer")
    claimed = [await claim_and_wait(topics, api, new_claimed_event(influencer))
               for _ in range(2)]
    token = fakes.accounts.token_of(influencer, "tiktok")
    fakes.tiktok.revoke(token)                      # the platform refuses the token,
    fakes.accounts.refuse_refresh(influencer, "tiktok")  # and M10 cannot refresh it
    for c in claimed:
        code, _ = await api.post(c.item_id, "publish", influencer, {"platform": "tiktok"})
        assert code == 202

    key = f"{influencer}:tiktok"
    [held] = await eventually(lambda: topics.records_for(ACCOUNT_EVENTS, key), timeout=60,
                              what="account.needs_reconnect")
    assert held["event_type"] == "account.needs_reconnect"
    assert held["data"]["reason_code"] == "access_token_invalid"
    assert event_schema_errors(held, "distribution.accounts.schema.json") == []
    # held, neither failed nor spending attempts: the post that met the refusal, and the
    # other (not attempted, or refused too before the hold)
    for c in claimed:
        _, item = await api.get(c.item_id, influencer)
        tiktok = row(item, "tiktok")
        assert (item["status"], tiktok["status"], tiktok["attempts"]) == (
            "publishing", "pending", 0), tiktok
        assert tiktok["error_class"] in ("auth", None), tiktok
    account = fakes.accounts.account_id(influencer, "tiktok")

    def posted() -> list:
        return [p for p in fakes.tiktok.posts if p.account_id == account]

    assert posted() == []

    fakes.accounts.refuse_refresh(influencer, "tiktok", refused=False)  # reconnected at M10
    url = f"{api.base}/api/v1/distribution/accounts/{influencer}/tiktok/reconnected"
    code, body = await as_operator(api, "POST", url)
    assert (code, body) == (200, {"influencer_id": influencer, "platform": "tiktok",
                                  "released": True})
    for c in claimed:
        item = await api.wait_for_item(c.item_id, influencer, timeout=60, status="published")
        assert row(item, "tiktok")["post_id"]
    assert len(posted()) == 2  # one each

    async def reconnected():
        events = await topics.records_for(ACCOUNT_EVENTS, key)
        return events if len(events) == 2 else None

    events = await eventually(reconnected, timeout=30, what="account.reconnected")
    assert [e["event_type"] for e in events] == ["account.needs_reconnect",
                                                 "account.reconnected"]
