"""A worker asked for readiness from its first millisecond still becomes ready.

Faust marked its reply topic as handled before reading it; a readiness ping that arrived
that early and timed out left the worker unable to read any reply, for good (every POST a
504, /readyz a 503 forever). Polled this fast, the unfixed worker got stuck every time."""

from __future__ import annotations

import aiohttp

from tests.clients import claim_and_wait
from tests.support import eventually, operator_token


async def test_a_worker_polled_for_readiness_from_its_start_becomes_ready(stack,
                                                                          record_figures):
    worker = stack.worker()
    statuses: list[int] = []
    unjoined: list[int] = []  # the statuses of answers whose claims consumer had not joined

    async def ready() -> bool:
        assert worker.process.poll() is None, worker.log_tail()
        try:
            async with stack.session.get(f"{worker.url}/readyz",
                                         timeout=aiohttp.ClientTimeout(total=3)) as r:
                statuses.append(r.status)
                body = await r.json()
                if body["checks"]["claims"] != "ok":
                    unjoined.append(r.status)
                return r.status == 200
        except aiohttp.ClientError:  # not listening yet
            return False

    await eventually(ready, timeout=60, interval=0.005, what="worker ready")
    assert 503 in statuses  # it was asked before it could answer, which is the point
    assert set(unjoined) <= {503}  # not ready while no claim could be read
    api = stack.api(worker)
    item_id, influencer, _ = await claim_and_wait(stack.topics, api)
    code, body = await api.post(item_id, "overlays", influencer,
                                {"type": "intro", "duration_seconds": 1})
    assert code == 200, body
    # The statistics route answers on a worker that has counted no outcome yet
    code, stats = await api.call("GET", f"{worker.url}/api/v1/distribution/stats",
                                 headers={"Authorization": f"Bearer {operator_token()}"})
    assert code == 200, stats
    assert stats["platforms"]["tiktok"] == {"published": 0, "failed": 0}
    record_figures(events=len(statuses), faults=0, lost=0, doubled=0,
                   readiness_polls=len(statuses), not_ready_answers=statuses.count(503))
