"""`distribution claim`, as a newcomer runs it: one claimed event on the broker, built as M09
sends it; a bad id or a broker out of reach is one line and exit status 2."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys

from aiokafka.admin import AIOKafkaAdminClient

from app.embedded import Broker, free_port
from app.replay import read_topics
from app.resources import ensure_topics
from app.settings import Settings
from app.topics import CLAIMED
from tests.factories import unique
from tests.stack import ROOT
from tests.support import event_schema_errors, eventually


async def claim_command(bootstrap: str, *args: str, **env: str) -> tuple[int, str, str]:
    """Run `distribution claim ARGS` against `bootstrap` as a newcomer would, with no secrets
    set: (exit status, stdout, stderr)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DISTRIBUTION_")},
           "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DISTRIBUTION_WEB_PORT": "7077", **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "claim", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


async def claims_keyed(bootstrap: str, claim_id: str) -> list:
    """The records keyed `claim_id` on the claims topic, once there is one."""
    async def on_the_topic():
        return [r async for r in read_topics(bootstrap, [CLAIMED], 0, None)
                if r.key == claim_id.encode()]
    return await eventually(on_the_topic, timeout=20, what=f"claim {claim_id} on the topic")


def assert_refused_in_one_line(code: int, out: str, err: str, says: str) -> None:
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("distribution claim: ") and says in err, err


async def test_a_claim_goes_to_the_claims_topic_as_m09_sends_it(broker):
    await ensure_topics(Settings(kafka_bootstrap_servers=broker.bootstrap))  # as the service
    influencer, clip, campaign = unique("influencer"), unique("clip"), unique("campaign")

    code, out, err = await claim_command(broker.bootstrap, "--influencer", influencer,
                                         "--clip", clip, "--campaign", campaign)

    assert code == 0, err
    claim_id = re.search(r"^claim id: (\S+)$", out, re.MULTILINE)[1]
    assert f"item:     http://127.0.0.1:7077/api/v1/distribution/items/{claim_id}\n" in out

    [record] = await claims_keyed(broker.bootstrap, claim_id)
    event = json.loads(record.value)
    assert event_schema_errors(event, "distribution.claimed.schema.json") == []
    assert event["source"] == "M09" and event["partition_key"] == claim_id
    assert {k: event["data"][k] for k in ("claim_id", "influencer_id", "clip_id",
                                          "campaign_id")} == {
        "claim_id": claim_id, "influencer_id": influencer, "clip_id": clip,
        "campaign_id": campaign}


async def test_a_given_claim_id_is_the_item_id_and_the_campaign_may_be_left_to_the_clip(broker):
    await ensure_topics(Settings(kafka_bootstrap_servers=broker.bootstrap))
    claim_id = unique("claim")

    code, out, err = await claim_command(broker.bootstrap, "--influencer", unique("inf"),
                                         "--clip", unique("clip"), "--claim-id", claim_id)

    assert code == 0, err
    assert out.startswith(f"claim id: {claim_id}\n")

    [record] = await claims_keyed(broker.bootstrap, claim_id)
    assert "campaign_id" not in json.loads(record.value)["data"]  # the service looks it up


async def test_an_id_that_is_not_an_item_id_is_refused_before_any_broker_is_asked():
    for option, value in (("--claim-id", "has space"), ("--clip", "-leading-dash"),
                          ("--influencer", "x" * 201), ("--campaign", "semi;colon")):
        args = {"--influencer": "inf-1", "--clip": "clip-1", option: value}
        code, out, err = await claim_command(f"127.0.0.1:{free_port()}",  # `=`: "-leading…"
                                             *[f"{o}={v}" for o, v in args.items()])
        assert_refused_in_one_line(code, out, err, f"{option} {value!r} is not a valid id")


async def test_a_broker_out_of_reach_is_one_line_and_exit_status_2():
    nothing_there = f"127.0.0.1:{free_port()}"

    code, out, err = await claim_command(nothing_there, "--influencer", "inf-1",
                                         "--clip", "clip-1")

    assert_refused_in_one_line(code, out, err, f"cannot reach the broker at {nothing_there}")


async def test_a_broker_without_the_claims_topic_is_told_to_start_the_service_first(tmp_path):
    bare = Broker(log_path=tmp_path / "broker.log").start()  # no service has run on it
    try:
        code, out, err = await claim_command(bare.bootstrap, "--influencer", "inf-1",
                                             "--clip", "clip-1")
        assert_refused_in_one_line(code, out, err, f"has no topic {CLAIMED} yet")
        admin = AIOKafkaAdminClient(bootstrap_servers=bare.bootstrap)
        await admin.start()
        try:
            assert CLAIMED not in await admin.list_topics()  # not made with the broker's defaults
        finally:
            await admin.close()
    finally:
        bare.stop()


async def test_contradictory_kafka_security_settings_are_one_line_naming_the_variable(broker):
    code, out, err = await claim_command(broker.bootstrap, "--influencer", "inf-1",
                                         "--clip", "clip-1",
                                         DISTRIBUTION_KAFKA_SECURITY_PROTOCOL="SASL_SSL")

    assert_refused_in_one_line(code, out, err, "DISTRIBUTION_KAFKA_SASL_USERNAME")
