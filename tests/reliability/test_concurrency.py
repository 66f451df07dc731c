"""Concurrent conflicting commands on one item: one winner per transition."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone

from tests.clients import claim_and_wait


async def test_fifty_concurrent_conflicting_requests_change_the_item_once_per_transition(
        stack, record_figures):
    worker = await stack.started_worker()
    api = stack.api(worker)
    item_id, influencer, start = await claim_and_wait(stack.topics, api)
    when = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    requests = [("schedule", {"platforms": ["tiktok"], "scheduled_at": when})] * 25 + \
               [("publish", {"platform": "youtube"})] * 25
    answers = await asyncio.gather(*(api.post(item_id, action, influencer, body)
                                     for action, body in requests))
    codes = Counter(code for code, _ in answers)
    winners = [(action, body) for (action, _), (code, body) in zip(requests, answers)
               if code in (200, 202)]
    # claimed -> scheduled -> publishing: at most one schedule and one publish can win
    assert codes[409] == len(requests) - len(winners), codes
    assert 1 <= len(winners) <= 2 and len({a for a, _ in winners}) == len(winners), winners
    final = await api.wait_for_item(item_id, influencer, status="published")
    changes = len(winners) + 1  # plus the platform result that settled it
    assert final["version"] == start["version"] + changes
    record_figures(events=len(requests), faults=0, lost=0, doubled=codes[200] + codes[202] -
                   len(winners), winners=len(winners), conflicts=codes[409])
