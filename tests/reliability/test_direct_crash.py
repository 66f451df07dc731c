"""Direct mode, a worker SIGKILLed again and again while it publishes: ≥ 100 items on three
platforms (TikTok, Instagram, YouTube, through fakes of their own APIs, none of which
recognises a repeated post), the worker killed at random moments and right after a point of
no return (a post made, its answer never sent), restarted each time.

Counted at the fakes: no (item, platform) posted twice. Every platform row ends
`published` with the fake's post id — none left `pending` or `publishing`, none failed —
except the one case the design leaves to an operator: a TikTok init a kill caught between
its ledger record and its answer ends `unknown` (`init_outcome_unknown`), and was not
posted.

(Snapchat is left out: it has no lookup, so a crash at its point of no return ends
`unknown` by design; its flow tests cover that.)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

from fakes.media import FakeMediaServer
from fakes.platform_kit import HANG_AFTER
from tests.factories import claimed_event, unique
from tests.stack import NO_POSTING_LIMITS, open_stack
from tests.support import eventually

ITEMS = 105
ITEMS_PER_INFLUENCER = 5  # several posts per account: a lookup must find the right one
PLATFORMS = ("tiktok", "instagram", "youtube")
#: The step of each platform's flow after which a post exists (its point of no return).
NO_RETURN_STEP = {"tiktok": "init", "instagram": "media_publish", "youtube": "upload"}
KILLS = 6
SEED = 20261129
PUBLISH_CHUNK = ITEMS // (KILLS + 1)  # per worker life
CALLS_AT_ONCE = 16

ENV = {"DISTRIBUTION_PUBLISH_LEASE_SECONDS": "5",
       "DISTRIBUTION_DUE_REQUEUE_SECONDS": "5",
       "DISTRIBUTION_PLATFORM_TIMEOUT_SECONDS": "2",
       # Each TikTok init a kill catches between its ledger record and its answer ends
       # `unknown` (recorded, maybe sent, not listed): how many depends on the calls under
       # way and on the machine's load (1 to 7 of 315 in runs at 16).
       "DISTRIBUTION_PUBLISHER_CONCURRENCY": str(CALLS_AT_ONCE),
       **NO_POSTING_LIMITS}


def caption(item_id: str) -> str:
    return f"direct crash {item_id}"  # item ids are of one length: no id is inside another



async def test_a_direct_worker_killed_again_and_again_posts_each_item_at_most_once(
        database_server, tmp_path, record_figures):
    started = time.monotonic()
    rng = random.Random(SEED)
    media = FakeMediaServer(size_bytes=200_000)  # started (and stopped) with the fakes
    async with open_stack(tmp_path, database_server=database_server, direct=True,
                          media=media) as stack:
        fakes = stack.direct.platforms
        worker = await stack.started_worker(**ENV)

        ids = [unique("claim") for _ in range(ITEMS)]
        influencer_of = {i: f"influencer-{n // ITEMS_PER_INFLUENCER}-{ids[0][-6:]}"
                         for n, i in enumerate(ids)}
        campaign = unique("campaign")
        await stack.topics.produce_fast(
            "distribution.claimed",
            [claimed_event(i, unique("clip"), influencer_of[i], campaign) for i in ids])

        async def all_claimed():
            return await stack.pool.fetchval(
                "SELECT count(*) FROM distribution_items WHERE id = ANY($1::text[])",
                ids) == ITEMS

        await eventually(all_claimed, timeout=60, interval=0.1, what="the claims ingested")

        def posts_made() -> int:
            return sum(len(fake.posts) for name, fake in fakes.items() if name in PLATFORMS)

        expected = ITEMS * len(PLATFORMS)
        to_publish = list(ids)

        async def publish_some(n: int) -> None:
            """publish-multi for the next `n` items, through the worker alive now."""
            api = stack.api(worker)
            batch, to_publish[:] = to_publish[:n], to_publish[n:]
            answers = await asyncio.gather(*(
                api.post(i, "publish-multi", influencer_of[i],
                         {"platforms": list(PLATFORMS),
                          "caption": {"text": caption(i), "hashtags": ["ad"]}})
                for i in batch))
            refused = [(code, body) for code, body in answers if code != 202]
            assert not refused, refused[:3]

        no_return_order = rng.sample(PLATFORMS, len(PLATFORMS))  # each platform's turn

        def arm(k: int):
            """The fault of kill k, when it falls after a point of no return: the next call
            of the platform's point of no return makes its post and is never answered; the
            worker dies while it still waits (its timeout: 2 s). Armed before its life's
            chunk is published, which a fast worker could otherwise finish first."""
            if k % 2 == 0 or k >= KILLS:
                return None
            platform = no_return_order[k // 2 % len(PLATFORMS)]
            fake, step = fakes[platform], NO_RETURN_STEP[platform]
            armed = (platform, fake, step, len(fake.calls_to(step)), len(fake.posts))
            fake.faults.script(step, HANG_AFTER)
            return armed

        # A chunk of items per worker life (the first and each after a restart), so that
        # every kill falls while there is publishing to do, and the last worker has its own.
        life_base = posts_made()  # posts made before this worker life's chunk
        armed = arm(0)
        await publish_some(PUBLISH_CHUNK)

        kills = []  # (kind, platform or None, posts made, rows unsettled)
        kills_began = time.monotonic()
        for k in range(KILLS):
            if armed is not None:
                platform, fake, step, calls0, posts0 = armed

                async def called(fake=fake, step=step, calls0=calls0):
                    return len(fake.calls_to(step)) > calls0

                async def posted(fake=fake, posts0=posts0):
                    return len(fake.posts) > posts0

                try:
                    await eventually(called, timeout=10, interval=0.01,
                                     what=f"a {platform} {step} call")
                    # its post made (TikTok: once processed), its answer never sent
                    await eventually(posted, timeout=5, interval=0.01,
                                     what=f"a {platform} post after the hanging call")
                    kind = "after_no_return"
                except AssertionError:
                    kind = "no_call_to_hang"  # killed all the same, counted apart
            else:
                # A random moment of this life's work: when the fakes hold a random number
                # of its posts (some made, some not).
                platform = None
                target = life_base + rng.randint(1, PUBLISH_CHUNK * len(PLATFORMS) - 1)

                async def reached(target=target):
                    return posts_made() >= target

                await eventually(reached, timeout=30, interval=0.005,
                                 what=f"{target} posts at the fakes")
                kind = "random"
            worker.kill()  # SIGKILL
            unsettled = await stack.pool.fetchval(
                "SELECT count(*) FROM distribution_platform_status "
                "WHERE item_id = ANY($1::text[]) AND status IN ('pending', 'publishing')", ids)
            kills.append((kind, platform, posts_made(), unsettled))
            if armed is not None:
                fake.faults.take(step)  # a fault left unused is not left for later calls
            worker = await stack.started_worker(**ENV)
            life_base = posts_made()
            armed = arm(k + 1)
            await publish_some(PUBLISH_CHUNK if k < KILLS - 1 else len(to_publish))
        assert not to_publish
        killed_at = time.monotonic()
        kill_phase = killed_at - kills_began

        async def settled():
            return await stack.pool.fetchval(
                "SELECT count(*) FROM distribution_platform_status "
                "WHERE item_id = ANY($1::text[]) AND status IN ('pending', 'publishing')",
                ids) == 0

        try:
            await eventually(settled, timeout=120, interval=0.5,
                             what="no platform of these items pending or publishing")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await _state(stack, ids)}") from None
        settled_in = time.monotonic() - killed_at

        rows = await stack.pool.fetch(
            "SELECT item_id, platform, status, post_id, last_error, reason_code, attempts "
            "FROM distribution_platform_status WHERE item_id = ANY($1::text[])", ids)
        assert Counter((r["item_id"], r["platform"]) for r in rows) == Counter(
            {(i, p): 1 for i in ids for p in PLATFORMS})

        posts = defaultdict(list)
        for platform in PLATFORMS:
            for i in ids:
                made = fakes[platform].posts_with(caption(i))
                if made:
                    posts[(i, platform)] = made
        doubled = {k: [p.post_id for p in v] for k, v in posts.items() if len(v) > 1}

        statuses = Counter(r["status"] for r in rows)
        wrong = []  # rows whose end does not match what the fake holds, or without a reason
        for r in rows:
            key, made = (r["item_id"], r["platform"]), posts.get((r["item_id"], r["platform"]))
            if r["status"] == "published":
                if not made or r["post_id"] != made[0].post_id:
                    wrong.append((key, "published", r["post_id"],
                                  [p.post_id for p in made or []]))
            elif r["status"] == "failed":
                if not (r["last_error"] or r["reason_code"]):
                    wrong.append((key, "failed without a reason"))
                if made:
                    wrong.append((key, "failed, yet posted", [p.post_id for p in made]))
            elif r["status"] == "unknown":
                if not r["reason_code"]:
                    wrong.append((key, "unknown without a reason", r["last_error"]))
            else:
                wrong.append((key, r["status"]))
        reasons = Counter((r["status"], r["reason_code"], (r["last_error"] or "")[:80])
                          for r in rows if r["status"] != "published")
        unknown_posted = sum(1 for r in rows if r["status"] == "unknown"
                             and posts.get((r["item_id"], r["platform"])))
        published_share = statuses["published"] / expected
        lost = sum(1 for r in rows if r["status"] == "published"  # published, yet no post
                   and not posts.get((r["item_id"], r["platform"])))
        figures = dict(
            events=expected, faults=len(kills), lost=lost, doubled=sum(
                len(v) - 1 for v in doubled.values()),
            items=ITEMS, platforms=len(PLATFORMS), kills=len(kills),
            kills_after_no_return=sum(1 for k in kills if k[0] == "after_no_return"),
            kills_mid_publishing=sum(1 for k in kills if k[3] > 0),
            rows_unsettled_at_kills=[k[3] for k in kills],
            posts_at_kills=[k[2] for k in kills],
            no_return_platforms=[k[1] for k in kills if k[0] == "after_no_return"],
            published=statuses["published"], failed=statuses["failed"],
            unknown=statuses["unknown"], unknown_though_posted=unknown_posted,
            published_share=round(published_share, 4),
            kill_phase_seconds=round(kill_phase, 1), settle_seconds=round(settled_in, 1),
            seconds=round(time.monotonic() - started, 1))
        print(f"\nkills {kills}\nnot published {dict(reasons)}")
        record_figures(**figures)

        assert not doubled, doubled
        assert not wrong, wrong[:10]
        # Nothing but the one case the design leaves open: a TikTok init caught by a kill,
        # never posted, and no more of them than the calls a kill can catch under way.
        assert {(status, reason) for status, reason, _ in reasons} <= {
            ("unknown", "init_outcome_unknown")}, dict(reasons)
        assert unknown_posted == 0, dict(reasons)
        assert statuses["unknown"] <= len(kills) * CALLS_AT_ONCE, dict(reasons)
        assert len(kills) >= 5 and figures["kills_after_no_return"] >= 2, kills
        assert set(figures["no_return_platforms"]) == set(PLATFORMS), kills
        assert figures["kills_mid_publishing"] == len(kills), kills


async def _state(stack, ids: list[str]) -> str:
    """What is left unfinished, for a failure message."""
    platforms = await stack.pool.fetch(
        "SELECT platform, status, attempts, key_attempt, count(*), min(next_attempt_at) "
        "AS next_at, min(last_error) AS error, min(reason_code) AS reason "
        "FROM distribution_platform_status WHERE item_id = ANY($1::text[]) "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2", ids)
    posts = {name: len(fake.posts) for name, fake in stack.direct.platforms.items()}
    tails = "\n".join(f"--- {w.log_path.name}\n{w.log_tail(15)}" for w in stack.workers[-2:])
    return (f"platforms {[dict(r) for r in platforms]}\nposts at the fakes {posts}\n"
            f"now {datetime.now(timezone.utc)}\n{tails}")
