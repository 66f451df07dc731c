"""Outages of a backing service under load: the database stopped, the broker paused.

The service answers 503/504 (never a 500) while one is away, comes back by itself, and
loses nothing it acknowledged: every 2xx mutation is in the item rows afterwards, and every
outcome written meanwhile waits in the outbox and is relayed once the broker is back.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest

from app.topics import COMMANDS, FAILED, PUBLISHED
from app.wire import parse_commands
from tests.clients import claim_all_and_wait
from tests.factories import new_claimed_event, unique
from fakes.gateway import Answer
from tests.stack import open_stack
from tests.support import eventually, operator_token, token

#: How long each backing service is kept away: the fault itself, not a wait for anything.
DB_OUTAGE_SECONDS = 5.0
BROKER_OUTAGE_SECONDS = 5.0
#: The worker's reply wait in the broker test (its default is 10 s), and the bound a
#: request must answer within while a backing service is away.
REQUEST_TIMEOUT_SECONDS = 4
ANSWER_BOUND_SECONDS = 15.0
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=30)

DURATIONS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # exact in binary: compared with ==


@dataclass
class Sent:
    """One HTTP request of a load client and what came back."""

    client: int
    method: str
    item_id: str
    started: float
    ended: float = 0.0
    code: int | None = None
    body: object = None
    retry_after: str | None = None
    overlay: str | None = None
    duration: float | None = None
    key: str | None = None  # its Idempotency-Key
    command_id: str | None = None  # the command the service recorded for that key, if any
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def seconds(self) -> float:
        return self.ended - self.started


async def request(session: aiohttp.ClientSession, sent: Sent, url: str, sub: str,
                  body: dict | None = None, headers: dict | None = None) -> Sent:
    h = {"Authorization": f"Bearer {token(sub)}", **(headers or {})}
    try:
        async with session.request(sent.method, url, json=body, headers=h,
                                   timeout=CLIENT_TIMEOUT) as r:
            sent.code = r.status
            sent.retry_after = r.headers.get("Retry-After")
            text = await r.text()
            try:
                sent.body = json.loads(text)
            except ValueError:
                sent.body = text
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        sent.error = repr(exc)  # no answer at all: a failure of the service
    sent.ended = time.monotonic()
    return sent


def is_error_shape(body: object, code: str) -> bool:
    return (isinstance(body, dict) and set(body) == {"error"}
            and isinstance(body["error"], dict)
            and set(body["error"]) == {"code", "message", "details"}
            and body["error"]["code"] == code)


def bad_answers(sent: list[Sent]) -> list[Sent]:
    """Anything but 2xx, or 503/504 in the error shape with Retry-After."""
    bad = []
    for s in sent:
        if s.ok:
            continue
        if s.code == 503 and s.retry_after and is_error_shape(s.body, "unavailable"):
            continue
        if s.code == 504 and is_error_shape(s.body, "timeout"):
            continue
        bad.append(s)
    return bad


class LoadClient:
    """Overlays on its own items in turn (intro, then outro, each a new duration), each
    followed by a GET; one request at a time, so that per item the last 2xx is defined."""

    def __init__(self, n: int, api_base: str, session: aiohttp.ClientSession, sub: str,
                 items: list[str]) -> None:
        self.n, self.base, self.session, self.sub, self.items = n, api_base, session, sub, items
        self.sent: list[Sent] = []
        self._durations = defaultdict(itertools.count)

    def url(self, item_id: str, action: str = "") -> str:
        return f"{self.base}/api/v1/distribution/items/{item_id}" + (f"/{action}" if action else "")

    async def mutate(self, item_id: str, overlay: str) -> Sent:
        duration = DURATIONS[next(self._durations[item_id, overlay]) % len(DURATIONS)]
        key = unique("key")
        sent = Sent(self.n, "POST", item_id, time.monotonic(), overlay=overlay,
                    duration=duration, key=key)
        self.sent.append(sent)
        return await request(self.session, sent, self.url(item_id, "overlays"), self.sub,
                             {"type": overlay, "duration_seconds": duration},
                             {"Idempotency-Key": key})

    async def read(self, item_id: str) -> Sent:
        sent = Sent(self.n, "GET", item_id, time.monotonic())
        self.sent.append(sent)
        return await request(self.session, sent, self.url(item_id), self.sub)

    async def run(self, stop: asyncio.Event, pause: float = 0.05) -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            item_id = self.items[i % len(self.items)]
            overlay = ("intro", "outro")[(i // len(self.items)) % 2]
            await self.mutate(item_id, overlay)
            await self.read(item_id)
            await asyncio.sleep(pause)


async def claim_items(stack, api, influencer: str, count: int) -> list[str]:
    claimed = await claim_all_and_wait(
        stack.topics, [api], [new_claimed_event(influencer) for _ in range(count)], timeout=60)
    return [c.item_id for c in claimed]


async def readiness(session: aiohttp.ClientSession, base: str) -> tuple[int, dict]:
    try:
        async with session.get(f"{base}/readyz", timeout=aiohttp.ClientTimeout(total=10)) as r:
            return r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return 0, {"error": repr(exc)}


def worker_errors(worker) -> list[dict]:
    """What the worker logged at ERROR or above (an unexpected error behind a 500, a command
    dead-lettered as a bug, a timer round failing); library warnings are not counted."""
    errors = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Error" in line:
                errors.append({"line": line[:300]})
            continue
        if isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL"):
            errors.append({k: record.get(k) for k in ("logger", "message", "error", "command")})
    return errors


async def compare_with_database(db, items: list[str], start_versions: dict[str, int],
                                posts: list[Sent]) -> dict:
    """What the database holds against what the clients were told. `db`: a pool or a
    connection. Each request's command id is the one its Idempotency-Key record holds
    (none: no command was ever sent for it). Lost: a 2xx overlay whose command is not
    recorded as applied, an overlay value that is neither the last 2xx's nor that of a
    later request applied after all (a 503/504 promises nothing either way), or a version
    that does not count the applied changes. Doubled: two 2xx answers on one item showing
    the same version."""
    command_ids = {(r["item_id"], r["idempotency_key"]): r["command_id"] for r in await db.fetch(
        "SELECT item_id, idempotency_key, command_id FROM distribution_idempotency_keys "
        "WHERE item_id = ANY($1) AND route = 'overlays'", items)}
    for s in posts:
        s.command_id = command_ids.get((s.item_id, s.key))
    assert all(s.command_id for s in posts if s.ok), "a 2xx without its key's record"
    applied = {r["command_id"] for r in await db.fetch(
        "SELECT command_id FROM distribution_processed_commands WHERE item_id = ANY($1) "
        "AND kind = 'add-overlay' AND (reply->>'ok')::boolean", items)}
    overlays = {(r["item_id"], r["type"]): r["duration_seconds"] for r in await db.fetch(
        "SELECT item_id, type, duration_seconds FROM distribution_overlays "
        "WHERE item_id = ANY($1)", items)}
    versions = {r["id"]: r["version"] for r in await db.fetch(
        "SELECT id, version FROM distribution_items WHERE id = ANY($1)", items)}
    acknowledged = [s for s in posts if s.ok]
    lost_commands = [(s.item_id, s.command_id) for s in acknowledged
                     if s.command_id not in applied]
    lost_values = []
    for item_id in items:
        for overlay in ("intro", "outro"):
            mine = [s for s in posts if s.item_id == item_id and s.overlay == overlay]
            last_ok = max((i for i, s in enumerate(mine) if s.ok), default=-1)
            may_hold = {mine[last_ok].duration if last_ok >= 0 else None}
            may_hold |= {s.duration for s in mine[last_ok + 1:] if s.command_id in applied}
            held = overlays.get((item_id, overlay))
            if held not in may_hold:
                lost_values.append((item_id, overlay, held, sorted(may_hold, key=str)))
    wrong_versions = {}
    for item_id in items:
        changes = sum(1 for s in posts if s.item_id == item_id and s.command_id in applied)
        if versions[item_id] != start_versions[item_id] + changes:
            wrong_versions[item_id] = (versions[item_id], start_versions[item_id], changes)
    shown = Counter((s.item_id, s.body["version"]) for s in acknowledged)
    return {"lost_commands": lost_commands, "lost_values": lost_values,
            "wrong_versions": wrong_versions,
            "applied_despite_error": sum(1 for s in posts
                                         if not s.ok and s.command_id in applied),
            "doubled": sum(n - 1 for n in shown.values() if n > 1),
            "lost": len(lost_commands) + len(lost_values) + len(wrong_versions)}


async def versions_of(db, items: list[str]) -> dict[str, int]:
    return {r["id"]: r["version"] for r in await db.fetch(
        "SELECT id, version FROM distribution_items WHERE id = ANY($1)", items)}


# ---- 4. the database away ------------------------------------------------------------


@pytest.mark.parametrize("fault", ["stopped", "paused"])
async def test_a_database_outage_answers_503_recovers_by_itself_and_loses_no_acknowledged_change(
        fault, tmp_path, record_figures):
    """`stopped`: pg_ctl stop -m immediate, then started again on the same socket: every
    connection is cut and refused, so the service says 503 at once. `paused`: every server
    process SIGSTOPped: connections hang, so commands time out (504, with a shorter reply
    wait than the default) and reads wait; every answer must still come within the bound."""
    began = time.monotonic()
    async with open_stack(tmp_path, own_postgres=True) as stack:
        postgres = stack.postgres
        env = {"DISTRIBUTION_REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS)} \
            if fault == "paused" else {}
        worker = await stack.started_worker(**env)
        api = stack.api(worker)
        influencer = unique("influencer")
        items = await claim_items(stack, api, influencer, 4)
        start_versions = await versions_of(stack.pool, items)

        clients = [LoadClient(n, worker.url, stack.session, influencer, items[n::2])
                   for n in range(2)]
        stop_load = asyncio.Event()
        load = [asyncio.create_task(c.run(stop_load)) for c in clients]
        # One read sent just after the database went away: the load clients may each be
        # waiting on a request sent just before (a POST now makes several round trips to
        # the database), and then send nothing that both starts and ends during the outage.
        prober = LoadClient(len(clients), worker.url, stack.session, influencer, items)

        def sent() -> list[Sent]:
            return [s for c in (*clients, prober) for s in c.sent]

        def ok_posts_since(t: float) -> Counter:
            return Counter(s.item_id for s in sent()
                           if s.method == "POST" and s.ok and s.started >= t)

        try:
            # warm up: every item changed three times before the fault
            async def every_item_changed_since(t: float) -> bool:
                return all(ok_posts_since(t)[i] >= 3 for i in items)

            await eventually(lambda: every_item_changed_since(0), timeout=30,
                             what="2xx on every item before the outage")

            down_at = time.monotonic()
            if fault == "stopped":
                await postgres.stop("immediate")
            else:
                postgres.pause()
            stopped_at = time.monotonic()
            load.append(asyncio.create_task(prober.read(items[0])))

            async def unready_meanwhile():
                code, body = await readiness(stack.session, worker.url)
                database = body.get("checks", {}).get("database")
                return (code, body) if code == 503 and database not in (None, "ok") else None

            outage = asyncio.create_task(asyncio.sleep(DB_OUTAGE_SECONDS))
            readyz_down = await eventually(unready_meanwhile, timeout=DB_OUTAGE_SECONDS,
                                           interval=0.2, what="/readyz 503 during the outage")
            # alive all the same (a restart would not bring the database back), and its own
            # metrics still served, the cluster's left out
            async with stack.session.get(f"{worker.url}/healthz") as answer:
                healthz_during = (answer.status, await answer.json())
            scrape_started = time.monotonic()
            async with stack.session.get(f"{worker.url}/metrics", headers={
                    "Authorization": f"Bearer {operator_token()}"}) as answer:
                metrics_during = (answer.status, await answer.text())
            scrape_seconds = time.monotonic() - scrape_started
            await outage  # the database stays away this long, load running

            restart_at = time.monotonic()
            if fault == "stopped":
                await postgres.start()
            else:
                postgres.resume()
            up_at = time.monotonic()

            # recovered without a restart: every item changes again (three times, to be sure)
            await eventually(lambda: every_item_changed_since(up_at), timeout=45,
                             interval=0.1, what="2xx on every item after the database came back")
            recovered_at = min(s.ended for s in sent()
                               if s.method == "POST" and s.ok and s.started >= up_at)

            async def ready_again():
                code, body = await readiness(stack.session, worker.url)
                return (code, body) if code == 200 else None

            readyz_up = await eventually(ready_again, timeout=30, interval=0.2,
                                         what="/readyz 200 after the outage")
        finally:
            stop_load.set()
            await asyncio.gather(*load)

        assert worker.process.poll() is None, "the worker must ride the outage out, not exit"
        assert healthz_during == (200, {"status": "ok", "problems": []})
        assert metrics_during[0] == 200 and scrape_seconds < ANSWER_BOUND_SECONDS
        assert "distribution_cluster_figures_up 0.0" in metrics_during[1]
        assert "distribution_items{" not in metrics_during[1]
        assert 'distribution_commands_total{error=""' in metrics_during[1]
        assert readyz_down[1]["status"] == "unavailable" and readyz_down[1]["checks"]["broker"] == "ok"
        assert readyz_up[1] == {"status": "ready", "checks": {"database": "ok", "broker": "ok",
                                                          "commands": "ok", "claims": "ok"}}

        everything = sent()
        codes = Counter(s.code for s in everything)
        unanswered = [s for s in everything if s.code is None]
        assert not unanswered, unanswered[:5]
        bad = bad_answers(everything)
        assert not bad, [(s.method, s.code, s.body, s.retry_after) for s in bad[:5]]
        slow = [s for s in everything if s.seconds > ANSWER_BOUND_SECONDS]
        assert not slow, [(s.method, s.code, round(s.seconds, 1)) for s in slow[:5]]
        during = [s for s in everything if s.started >= stopped_at and s.ended <= restart_at]
        assert during and not [s for s in during if s.ok], Counter(s.code for s in during)
        unavailable_during = sum(1 for s in during if s.code == 503)
        refused_during = sum(1 for s in during if s.code in (503, 504))
        assert refused_during > 0, Counter(s.code for s in during)
        if fault == "stopped":
            assert unavailable_during > 0, Counter(s.code for s in during)
        errors = worker_errors(worker)
        assert not errors, errors[:5]
        assert '"dead-lettered"' not in worker.log_path.read_text(), worker.log_tail(80)

        # nothing acknowledged is lost: compare with what the database holds
        posts = [s for s in everything if s.method == "POST"]
        conn = await asyncpg.connect(stack.database_url)
        try:
            found = await compare_with_database(conn, items, start_versions, posts)
        finally:
            await conn.close()

        record_figures(
            events=len(everything), faults=1, lost=found["lost"], doubled=found["doubled"],
            posts=len(posts), acknowledged=sum(1 for s in posts if s.ok),
            gets=len(everything) - len(posts), codes={str(k): v for k, v in codes.items()},
            fault=fault, unavailable_during_outage=unavailable_during,
            refused_during_outage=refused_during,
            applied_despite_error=found["applied_despite_error"],
            outage_seconds=round(restart_at - down_at, 1),
            restart_seconds=round(up_at - restart_at, 1),
            recovery_seconds=round(recovered_at - up_at, 2),
            max_answer_seconds=round(max(s.seconds for s in everything), 2),
            seconds=round(time.monotonic() - began, 1))
        assert not found["lost_commands"], found["lost_commands"][:5]
        assert not found["lost_values"], found["lost_values"]
        assert not found["wrong_versions"], found["wrong_versions"]
        assert found["lost"] == 0 and found["doubled"] == 0


# ---- 5. the broker away --------------------------------------------------------------


async def test_a_broker_pause_answers_within_bounds_and_relays_the_outbox_once_it_is_back(
        stack, record_figures):
    began = time.monotonic()
    worker = await stack.started_worker(
        DISTRIBUTION_REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT_SECONDS),
        DISTRIBUTION_BACKOFF_MAX_SECONDS="6")
    api = stack.api(worker)
    db = stack.pool
    influencer = unique("influencer")
    publishing = await claim_items(stack, api, influencer, 3)
    mutated = await claim_items(stack, api, influencer, 2)
    start_versions = await versions_of(db, mutated)

    # First round: each item's first post is refused for 4 s (429), which leaves time to
    # lock the items before the second, successful round's results are applied.
    stack.platforms.script("tiktok", *[Answer.status(429, retry_after=4)] * len(publishing))
    for item_id in publishing:
        code, body = await api.post(item_id, "publish", influencer, {"platform": "tiktok"})
        assert code == 202, body
    await stack.platforms.await_calls(len(publishing), timeout=30)

    async def first_round_applied():
        return await db.fetchval(
            "SELECT count(*) FROM distribution_platform_status WHERE item_id = ANY($1) "
            "AND status = 'pending' AND attempts = 1", publishing) == len(publishing)

    await eventually(first_round_applied, timeout=30, what="the 429s applied")

    async def outbox_rows():
        return await db.fetch("SELECT event_id, partition_key, status, published_at "
                              "FROM distribution_outbox WHERE partition_key = ANY($1)",
                              publishing)

    # Hold the items' rows (the command agent waits for them), so that the second round's
    # results are applied only when we let go: while the broker is paused.
    holder = await asyncpg.connect(stack.database_url)
    held = holder.transaction()
    await held.start()
    try:
        await holder.execute("SELECT id FROM distribution_items WHERE id = ANY($1) "
                             "FOR NO KEY UPDATE", publishing)
        assert not await outbox_rows(), "the lock came too late"
        await stack.platforms.await_calls(2 * len(publishing), timeout=30)

        async def agent_waits_on_us():
            return await db.fetchval("SELECT count(*) FROM pg_stat_activity "
                                     "WHERE $1 = ANY(pg_blocking_pids(pid))",
                                     holder.get_server_pid())

        await eventually(agent_waits_on_us, timeout=30, what="the command agent on the lock")

        async def results_sent():
            # the publisher's answers may travel bundled (one record per partition)
            sent = [c for r in await stack.topics.read_all(COMMANDS)
                    for c in parse_commands(r.value)]
            return {c.item_id for c in sent if c.kind == "platform-result"
                    and c.item_id in publishing
                    and c.payload.outcome.value == "published"} == set(publishing)

        await eventually(results_sent, timeout=30, what="the platform results sent")
    except BaseException:
        await held.rollback()
        await holder.close()
        raise

    clients = [LoadClient(n, worker.url, stack.session, influencer, [item_id])
               for n, item_id in enumerate(mutated)]
    load: list[asyncio.Task] = []
    stack.broker.pause()
    paused_at = time.monotonic()
    try:
        await held.commit()  # the agent applies the results now, with the broker away
        await holder.close()

        # two clients mutate an item each, one request at a time, while the broker is away
        async def while_paused(client: LoadClient) -> None:
            for overlay in itertools.cycle(("intro", "outro")):
                if time.monotonic() - paused_at >= BROKER_OUTAGE_SECONDS - 0.5:
                    return
                await client.mutate(client.items[0], overlay)
                await client.read(client.items[0])

        load = [asyncio.create_task(while_paused(c)) for c in clients]
        written = await eventually(outbox_rows, timeout=BROKER_OUTAGE_SECONDS - 1,
                                   interval=0.05, what="outcomes written during the pause")
        assert all(r["status"] == "pending" and r["published_at"] is None for r in written)
        # the broker stays away this long
        await asyncio.sleep(max(0.0, BROKER_OUTAGE_SECONDS - (time.monotonic() - paused_at)))
        still_pending = await outbox_rows()
    finally:
        stack.broker.resume()
        resumed_at = time.monotonic()
        await asyncio.gather(*load, return_exceptions=True)

    assert len(still_pending) >= len(written) and all(
        r["status"] == "pending" and r["published_at"] is None for r in still_pending), \
        still_pending
    everything = [s for c in clients for s in c.sent]
    posts = [s for s in everything if s.method == "POST"]
    assert not [s for s in everything if s.code is None], [s.error for s in everything]
    bad = bad_answers(everything)
    assert not bad, [(s.method, s.code, s.body, s.retry_after) for s in bad[:5]]
    slow = [s for s in everything if s.seconds > ANSWER_BOUND_SECONDS]
    assert not slow, [(s.method, s.code, round(s.seconds, 1)) for s in slow]
    refused = [s for s in posts if s.code in (503, 504)]
    assert refused, Counter(s.code for s in posts)
    assert all(s.ok for s in everything if s.method == "GET"), "reads need no broker"

    # after it is back: the outbox relayed, each outcome once
    async def all_relayed():
        rows = await outbox_rows()
        done = {r["partition_key"] for r in rows} == set(publishing) and all(
            r["status"] == "published" and r["published_at"] is not None for r in rows)
        return rows if done else None

    relayed = await eventually(all_relayed, timeout=45, interval=0.1,
                               what="the outbox relayed after the broker came back")
    relayed_at = time.monotonic()

    # new requests succeed again
    after = []
    for client in clients:
        async def succeeds(c=client):
            s = await c.mutate(c.items[0], "intro")
            after.append(s)
            assert s.ok or s.code in (503, 504), (s.code, s.body)
            return s.ok

        await eventually(succeeds, timeout=45, interval=0.2, what="a 2xx after the pause")
    recovered_at = time.monotonic()

    # one event per outcome on distribution.published (a repeat would carry the same id)
    lost = doubled = repeated = 0
    for item_id in publishing:
        outbox_ids = {str(r["event_id"]) for r in relayed if r["partition_key"] == item_id}
        assert len(outbox_ids) == 1, outbox_ids
        ids = Counter(e["event_id"] for e in
                      await stack.topics.records_for(PUBLISHED, item_id))
        lost += len(outbox_ids - set(ids))
        doubled += len(set(ids) - outbox_ids)
        repeated += sum(n - 1 for n in ids.values())
    failed_events = sum([len(await stack.topics.records_for(FAILED, i))
                         for i in publishing])

    # nothing corrupted: each item posted once and published with that post; the mutated
    # items hold what their last 2xx said
    posted = Counter(p.item_id for p in stack.platforms.posts if p.item_id in publishing)
    doubled += sum(n - 1 for n in posted.values())
    post_ids = {p.item_id: p.post_id for p in stack.platforms.posts if p.item_id in publishing}
    rows = await db.fetch("SELECT i.id, i.status, p.status AS platform_status, p.post_id "
                          "FROM distribution_items i JOIN distribution_platform_status p "
                          "ON p.item_id = i.id WHERE i.id = ANY($1)", publishing)
    assert {r["id"]: (r["status"], r["platform_status"], r["post_id"]) for r in rows} == \
        {i: ("published", "published", post_ids.get(i)) for i in publishing}
    statuses = {r["id"]: r["status"] for r in await db.fetch(
        "SELECT id, status FROM distribution_items WHERE id = ANY($1)", mutated)}
    assert statuses == {i: "claimed" for i in mutated}, statuses
    found = await compare_with_database(db, mutated, start_versions, posts + after)
    lost += found["lost"]
    doubled += found["doubled"]
    errors = worker_errors(worker)
    assert not errors, errors[:5]

    record_figures(
        events=len(everything) + len(after) + len(publishing), faults=1, lost=lost,
        doubled=doubled, requests_started_during_pause=len(everything),
        codes={str(k): v for k, v in Counter(s.code for s in everything).items()},
        max_answer_seconds=round(max(s.seconds for s in everything), 2),
        applied_despite_error=found["applied_despite_error"],
        outcomes=len(publishing), outcomes_written_during_pause=len(still_pending),
        published_events_repeated=repeated, failed_events=failed_events,
        relay_seconds_after_resume=round(relayed_at - resumed_at, 2),
        recovery_seconds=round(recovered_at - resumed_at, 2),
        seconds=round(time.monotonic() - began, 1))
    assert not found["lost_commands"], found["lost_commands"]
    assert not found["lost_values"], found["lost_values"]
    assert not found["wrong_versions"], found["wrong_versions"]
    assert failed_events == 0
    assert lost == 0 and doubled == 0
