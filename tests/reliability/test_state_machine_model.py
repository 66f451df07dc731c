"""Random command sequences through the real service, beside a small model of what the
state machine allows: no sequence reaches a state or a row set the model forbids."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.clients import claim_and_wait
from tests.factories import claimed_event, unique
from fakes.gateway import Answer
from tests.support import eventually

PLATFORMS = ["tiktok", "instagram", "youtube", "snapchat"]
FLAKY = "snapchat"  # refuses the first post of each round the model asks it to

ALLOWED = {
    "overlays": {"claimed", "scheduled"},
    "schedule": {"claimed"},
    "reschedule": {"scheduled"},
    "publish-multi": {"claimed", "scheduled"},
    "retry": {"failed"},
    "download": {"claimed", "scheduled", "publishing", "published", "failed"},
}


def make_machine(stack, api, loop):
    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    class DistributionModel(RuleBasedStateMachine):
        @initialize()
        def claim(self):
            self.item, self.influencer = unique("model"), unique("influencer")
            _, _, item = run(claim_and_wait(stack.topics, api, claimed_event(
                self.item, unique("clip"), self.influencer, "campaign")))
            self.status, self.version = "claimed", item["version"]
            self.platforms: list[str] = []
            self.outcomes = 0  # outbox events the model expects

        def send(self, action: str, body: dict) -> tuple[int, dict]:
            code, answer = run(api.post(self.item, action, self.influencer, body))
            if self.status in ALLOWED[action]:
                assert code in (200, 202), (action, self.status, answer)
                if action != "download":
                    assert answer["version"] == self.version + 1
                    self.version += 1
            else:
                assert code == 409, (action, self.status, answer)
                assert answer["error"]["code"] == "invalid_state_transition"
            return code, answer

        def settle(self) -> dict:
            async def settled():
                code, item = await api.get(self.item, self.influencer)
                return item if item["status"] in ("published", "failed") else None
            item = run(eventually(settled, timeout=30, what="publishing settled"))
            self.version = item["version"]
            return item

        @rule(kind=st.sampled_from(["intro", "outro"]), seconds=st.sampled_from([0.5, 2.5, 3.0]))
        def overlay(self, kind, seconds):
            self.send("overlays", {"type": kind, "duration_seconds": seconds})

        @rule(platforms=st.lists(st.sampled_from(PLATFORMS), min_size=1, max_size=3,
                                 unique=True))
        def schedule(self, platforms):
            when = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
            code, _ = self.send("schedule", {"platforms": platforms, "scheduled_at": when})
            if code == 200:
                self.status, self.platforms = "scheduled", platforms

        @rule(hours=st.integers(1, 48))
        def reschedule(self, hours):
            when = (datetime.now(timezone.utc) + timedelta(hours=hours)).isoformat()
            self.send("reschedule", {"scheduled_at": when})

        @rule(platforms=st.lists(st.sampled_from(PLATFORMS), min_size=1, max_size=4,
                                 unique=True))
        def publish(self, platforms):
            if self.status in ALLOWED["publish-multi"] and FLAKY in platforms:
                stack.platforms.script(FLAKY, Answer.status(400, message="refused once"))
            code, _ = self.send("publish-multi", {"platforms": platforms})
            if code == 202:
                self.platforms = platforms
                item = self.settle()
                self.status = "failed" if FLAKY in platforms else "published"
                assert item["status"] == self.status, item
                self.outcomes += 1

        @rule()
        def retry(self):
            code, _ = self.send("retry", {})
            if code == 202:
                item = self.settle()
                self.status = "published"
                assert item["status"] == "published", item
                self.outcomes += 1

        @rule()
        def download(self):
            self.send("download", {})

        @invariant()
        def rows_are_what_the_model_allows(self):
            if not hasattr(self, "item"):
                return
            code, item = run(api.get(self.item, self.influencer))
            assert code == 200 and item["status"] == self.status, (self.status, item)
            assert item["version"] == self.version
            rows = {p["platform"]: p for p in item["platform_status"]}
            if self.status in ("claimed", "scheduled"):
                assert rows == {}
            else:
                assert set(rows) == set(self.platforms)
                for platform, row in rows.items():
                    if row["status"] == "published":
                        assert row["post_id"]
                    else:
                        assert self.status == "failed" and platform == FLAKY, row
            for platform in PLATFORMS:  # never posted twice
                assert len(stack.platforms.posts_for(self.item, platform)) <= 1
            outbox = run(stack.pool.fetchval(
                "SELECT count(*) FROM distribution_outbox WHERE partition_key = $1", self.item))
            assert outbox == self.outcomes

    return DistributionModel


async def test_random_command_sequences_stay_inside_the_state_machine(stack, record_figures):
    worker = await stack.started_worker()
    api = stack.api(worker)
    machine = make_machine(stack, api, asyncio.get_running_loop())
    machine.TestCase.settings = settings(
        max_examples=12, stateful_step_count=10, deadline=None,
        suppress_health_check=list(HealthCheck))
    await asyncio.to_thread(machine.TestCase().runTest)
    commands = await stack.pool.fetchval(
        "SELECT count(*) FROM distribution_processed_commands WHERE item_id LIKE 'model-%'")
    assert commands > 0
    record_figures(events=commands, faults=0, lost=0, doubled=0, examples=12)
