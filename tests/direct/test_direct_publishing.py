"""The whole service in direct mode: an item published through each platform's own flow
ends published with the post id the platform gave, posted exactly once there."""

from __future__ import annotations

from tests.clients import claim_and_wait
from tests.factories import unique

ALL = ["tiktok", "instagram", "youtube", "snapchat"]


async def test_an_item_published_to_the_four_platforms_is_posted_once_on_each(
        api, topics, fakes, pool):
    claimed = await claim_and_wait(topics, api)
    text = f"Launch day {unique('caption')}"
    code, body = await api.post(claimed.item_id, "publish-multi", claimed.influencer,
                                {"platforms": ALL, "caption": {"text": text,
                                                               "hashtags": ["ad"]}})
    assert code == 202, body
    item = await api.wait_for_item(claimed.item_id, claimed.influencer, timeout=60,
                                   status="published")
    assert item["publication"] == "published"
    rows = {r["platform"]: r for r in item["platform_status"]}
    for platform in ALL:
        posts = fakes.platforms[platform].posts_with(text)
        assert len(posts) == 1, (platform, posts)
        assert (rows[platform]["status"], rows[platform]["post_id"]) == (
            "published", posts[0].post_id), platform
        if platform != "youtube":  # (YouTube knows the channel by the token alone)
            assert posts[0].account_id == fakes.accounts.account_id(claimed.influencer,
                                                                    platform)
    # Instagram said the account's cap on the way: planned posts are checked against it
    cap = await pool.fetchval(
        "SELECT cap FROM distribution_account_caps WHERE influencer_id = $1 "
        "AND platform = 'instagram'", claimed.influencer)
    assert cap == fakes.instagram.quota_total
