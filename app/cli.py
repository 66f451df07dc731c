"""distribution migrate | worker | dev | token | replay | claim"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from app.settings import DEVELOPMENT_DOWNLOAD_SECRET, DEVELOPMENT_JWT_SECRET
from app.topics import CLAIMED, COMMANDS

# M09's `clips` table, for local stacks and tests: its one copy, which docker-compose also
# mounts into the postgres image's init directory.
CLIPS_STAND_IN = (Path(__file__).parent / "db" / "clips_stand_in.sql").read_text()


def _settings():
    from app.settings import get_settings
    return get_settings()


async def migrate_database(dsn: str, stand_in_clips: bool = False) -> list[str]:
    """Apply the migrations (and, for local stacks and tests, M09's `clips` stand-in)."""
    from app.db.migrate import migrate
    from app.db.pool import connect

    conn = await connect(dsn)
    try:
        applied = await migrate(conn)
        if stand_in_clips:  # M09's table, for the local stack only
            await conn.execute(CLIPS_STAND_IN)
        return applied
    finally:
        await conn.close()


def cmd_migrate(args) -> int:
    from app.logs import setup_logging

    s = _settings()
    setup_logging(s.log_level, s.log_json)
    if not s.database_url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate_database(s.database_url))
    print(f"applied: {', '.join(applied)}" if applied else "the schema is up to date")
    return 0


def run_worker() -> int:
    """Migrate, then run the Faust worker until SIGINT/SIGTERM."""
    from app.logs import setup_logging

    s = _settings()
    setup_logging(s.log_level, s.log_json, s.framework_log_level)
    if not s.database_url or not s.kafka_bootstrap_servers:
        print("DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS must be set "
              "(or use `distribution dev` for the embedded stack)", file=sys.stderr)
        return 2
    asyncio.run(migrate_database(s.database_url))
    from app.faust_app import app

    app.discover_components()
    worker = make_worker(app, s)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def make_worker(app, s):
    """Faust's worker, logging as our settings say."""
    import faust

    from app.logs import logging_config

    worker = faust.Worker(app, loglevel=s.log_level, quiet=True,
                          logging_config=logging_config(s.log_level, s.log_json,
                                                        s.framework_log_level),
                          redirect_stdouts=False)
    # Faust's terminal spinner, at WARNING and above, sets the root logger to DEBUG (and
    # counts every record): every INFO and DEBUG record of every library was then made and
    # dropped, a tenth of claim ingestion's time. A service has no terminal to spin.
    worker.spinner = None
    return worker


def cmd_worker(args) -> int:
    return run_worker()


#: How often `dev` looks again at a platform still processing (the fakes take 0.2 s).
DEV_POLL_SECONDS = 1.0


def _platforms_line(s, fakes) -> str:
    if fakes is None:
        return s.publishing_mode
    urls = ", ".join(f"{name} {server.url}" for name, server in fakes.platforms.items())
    return (f"direct, through local fakes of their APIs: {urls}; M10 {fakes.accounts.url}, "
            f"M06 {fakes.media.url}")


def cmd_dev(args) -> int:
    """The embedded stack: PostgreSQL and the broker from wheels unless configured."""
    from app.broker_storage import start_dev_broker
    from app.embedded import start_postgres
    from web.auth import issue_token

    data_dir = Path(os.environ.get("DISTRIBUTION_DATA_DIR", ".distribution")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    broker = storage = server = fakes = None
    try:
        chosen = (os.environ.get("DISTRIBUTION_PLATFORM_MODE")
                  or os.environ.get("DISTRIBUTION_PLATFORM_GATEWAY_URL"))
        if args.platforms == "fakes" and not chosen:
            # The platforms' own flows, against local fakes of them, M10 and M06.
            from fakes.direct import DirectFakes
            fakes = DirectFakes().start_in_thread()
            for variable, value in fakes.env(poll_seconds=DEV_POLL_SECONDS).items():
                os.environ.setdefault(variable, value)
        if not os.environ.get("DATABASE_URL"):
            server, uri = start_postgres(data_dir / "postgres")
            os.environ["DATABASE_URL"] = uri
        topics = ""
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            # The topics outlive a restart (so replay works here too), unless kept in memory.
            broker, storage = start_dev_broker(os.environ["DATABASE_URL"],
                                               data_dir / "broker.log")
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
            topics = (f"   (topics kept in {storage.database_url})" if storage
                      else "   (topics in memory: gone at exit)")
        os.environ.setdefault("DISTRIBUTION_WEB_PORT", str(args.port or 6066))
        os.environ.setdefault("DISTRIBUTION_LOG_JSON", "false")
        # Public secrets: fine on a developer's machine, refused by every other command.
        os.environ.setdefault("DISTRIBUTION_JWT_SECRET", DEVELOPMENT_JWT_SECRET)
        os.environ.setdefault("DISTRIBUTION_DOWNLOAD_SECRET", DEVELOPMENT_DOWNLOAD_SECRET)
        asyncio.run(migrate_database(os.environ["DATABASE_URL"], stand_in_clips=True))
        s = _settings()
        token = issue_token("influencer-dev", s.jwt_secret.get_secret_value(), timedelta(days=7),
                            scope=s.operator_scope)
        base = s.base_url
        # imports the app: only once the settings above are in the environment
        from web.console import console_link
        print(f"""
distribution service (development stack)
  URL:       {base}
  database:  {os.environ['DATABASE_URL']}
  broker:    {os.environ['KAFKA_BOOTSTRAP_SERVERS']}{topics}
  token:     {token}   (sub = influencer-dev, operator, 7 days)
  console:   {console_link(base, token)}
  platforms: {_platforms_line(s, fakes)}

  a claim as M09 sends it, then the item:
  KAFKA_BOOTSTRAP_SERVERS={os.environ['KAFKA_BOOTSTRAP_SERVERS']} .venv/bin/distribution claim \
--influencer influencer-dev --clip clip-1 --campaign camp-1
  curl -s -H "Authorization: Bearer {token}" {base}/api/v1/distribution/items/ITEM_ID

Ctrl-C stops the service and the embedded servers.
""", flush=True)
        return run_worker()
    finally:
        if fakes is not None:
            fakes.stop_thread()
        if broker is not None:
            broker.stop()
        if storage is not None:
            storage.stop_thread()
        if server is not None:
            server.cleanup()


async def _replay(args, s) -> int:
    from datetime import datetime

    from tqdm import tqdm

    from app.broker_security import kafka_client_kwargs
    from app.db.pool import create_pool
    from app.replay import replay

    from_time = datetime.fromisoformat(args.from_timestamp) if args.from_timestamp else None
    if from_time is not None and from_time.tzinfo is None:
        print("--from-timestamp needs an offset, e.g. 2026-11-24T10:00:00Z", file=sys.stderr)
        return 2
    await migrate_database(s.database_url)
    pool = await create_pool(s.database_url, 1, 4)
    bar = tqdm(unit="record", desc="replay", disable=args.quiet)
    try:
        report = await replay(pool, s.kafka_bootstrap_servers, s.policy(),
                              from_offset=args.from_offset, from_time=from_time,
                              topics=tuple(args.topics.split(",")), progress=bar.update,
                              on_total=lambda n: setattr(bar, "total", n) or bar.refresh(),
                              security=kafka_client_kwargs(s))
    finally:
        bar.close()
        await pool.close()
    print(f"replayed {report.records} records: {report.claims_created} items created, "
          f"{report.commands_applied} commands applied, {report.commands_repeated} already "
          f"applied, {report.skipped} skipped")
    for reason in report.skipped_reasons:
        print(f"  skipped {reason}")
    return 0


def cmd_replay(args) -> int:
    from app.logs import setup_logging

    s = _settings()
    setup_logging("WARNING", s.log_json)
    if not s.database_url or not s.kafka_bootstrap_servers:
        print("DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS must be set", file=sys.stderr)
        return 2
    return asyncio.run(_replay(args, s))


#: How long `claim` waits for the broker: a newcomer hears at once that it is not there.
CLAIM_TIMEOUT_SECONDS = 5.0


def claim_problem(ids: dict[str, str | None]) -> str | None:
    """The first id (by its option) that is not a valid id, or None: ids travel in URL paths
    and Kafka keys, so each must look like an item id (ITEM_ID_PATTERN)."""
    import re

    from app.domain.model import ITEM_ID_PATTERN

    for option, value in ids.items():
        if value is not None and not re.fullmatch(ITEM_ID_PATTERN, value):
            return (f"{option} {value!r} is not a valid id: 1 to 200 letters, digits, '.', '_', "
                    "':' or '-', the first a letter or digit")
    return None


class NoClaimsTopic(Exception):
    """The broker does not have the claims topic (yet)."""


async def _produce_claim(s, event: dict) -> None:
    """Send the claim as M09 does (keyed by the claim id) and wait for the broker's ack."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    from app.broker_security import kafka_client_kwargs
    from app.topics import encode

    security = kafka_client_kwargs(s)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers, **security)
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks="all",
                                **security)
    try:
        async with asyncio.timeout(CLAIM_TIMEOUT_SECONDS):
            await admin.start()
            # Producing to a missing topic would have the broker create it with its own
            # defaults, which the service then keeps: its partitions, its retention.
            if CLAIMED not in await admin.list_topics():
                raise NoClaimsTopic
            await producer.start()
            await producer.send_and_wait(CLAIMED, encode(event),
                                         key=event["partition_key"].encode())
    finally:
        await producer.stop()
        await admin.close()


def cmd_claim(args) -> int:
    """One `distribution.claimed` event, as M09 sends it; prints the claim id and item URL."""
    import logging
    import uuid

    from aiokafka.errors import KafkaConnectionError, KafkaError

    from app.claims_out import claimed_event

    logging.disable(logging.CRITICAL)  # aiokafka's retries: the one line below says it all
    s = _settings()
    claim_id = args.claim_id or f"claim-{uuid.uuid4().hex[:12]}"
    bootstrap = s.kafka_bootstrap_servers
    problem = claim_problem({"--claim-id": claim_id, "--influencer": args.influencer,
                             "--clip": args.clip, "--campaign": args.campaign})
    if problem is None and not bootstrap:
        problem = "KAFKA_BOOTSTRAP_SERVERS is not set (`distribution dev` prints its broker)"
    if problem is None:
        event = claimed_event(claim_id, args.clip, args.influencer, args.campaign)
        try:
            asyncio.run(_produce_claim(s, event))
        except (TimeoutError, KafkaConnectionError, OSError):
            problem = (f"cannot reach the broker at {bootstrap} within "
                       f"{CLAIM_TIMEOUT_SECONDS:g} s")
        except NoClaimsTopic:
            problem = (f"the broker at {bootstrap} has no topic {CLAIMED} yet: start the "
                       "service first (`make run` or `distribution worker` creates them)")
        except KafkaError as exc:
            problem = f"the broker at {bootstrap} refused the claim: {exc!r}"
        except ValueError as exc:  # the Kafka TLS/SASL settings (app/broker_security.py)
            problem = str(exc)
    if problem is not None:
        print("distribution claim: " + " ".join(problem.split()), file=sys.stderr)
        return 2
    print(f"claim id: {claim_id}\nitem:     {s.base_url}/api/v1/distribution/items/{claim_id}")
    return 0


def cmd_token(args) -> int:
    from web.auth import issue_token

    s = _settings()
    if s.jwt_secret is None:
        print("DISTRIBUTION_JWT_SECRET is not set: tokens of an identity provider are made "
              "there, not here", file=sys.stderr)
        return 2
    print(issue_token(args.sub, s.jwt_secret.get_secret_value(), timedelta(hours=args.hours),
                      scope=s.operator_scope if args.operator else None,
                      issuer=s.jwt_issuer, audience=s.jwt_audience))
    return 0


def cmd_openapi(args) -> int:
    """Write the OpenAPI document generated from the code, or with --check say whether the
    contract file is that document (exit 1 if not)."""
    from web.openapi import DOCUMENT_PATH, build_document, render

    text = render(build_document())
    if args.check:
        current = DOCUMENT_PATH.read_text(encoding="utf-8") if DOCUMENT_PATH.exists() else None
        if current != text:
            print(f"{DOCUMENT_PATH} differs from the document the code generates: run "
                  "`distribution openapi`", file=sys.stderr)
            return 1
        print(f"{DOCUMENT_PATH} is up to date")
        return 0
    DOCUMENT_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOCUMENT_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT_PATH}")
    return 0


def cmd_bench(args) -> int:
    """The benchmarks (benchmarks/): the real stack, each workload beside its baseline."""
    from benchmarks.run import main as bench_main
    return bench_main(args)


def refuse_unsafe_settings() -> int | None:
    """Exit status 2 with a message naming each variable, when the settings are unsafe."""
    from app.broker_security import ssl_context
    from app.settings import unsafe_settings

    s = _settings()
    problems = unsafe_settings(s)
    try:
        ssl_context(s)  # checks the Kafka security settings (and loads the TLS files)
    except ValueError as exc:
        problems.append(str(exc))
    if not problems:
        return None
    print("refusing to start: " + "; ".join(problems) + " (`distribution dev` runs with "
          "development secrets; see the README's configuration section)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="distribution", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply the migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("worker", help="run a worker").set_defaults(func=cmd_worker)
    dev = sub.add_parser("dev", help="run a worker on the embedded stack")
    dev.add_argument("--port", type=int, default=None)
    dev.add_argument("--platforms", choices=("fakes", "simulated"), default="fakes",
                     help="fakes (default): each platform's own flow against local fakes of "
                          "the four platforms, M10 and M06; simulated: the in-process "
                          "stand-in. DISTRIBUTION_PLATFORM_MODE, when set, wins.")
    dev.set_defaults(func=cmd_dev)
    token = sub.add_parser("token", help="print a development token")
    token.add_argument("--sub", required=True, help="the influencer id")
    token.add_argument("--hours", type=float, default=24)
    token.add_argument("--operator", action="store_true",
                       help="with the operator scope (any item, any action)")
    token.set_defaults(func=cmd_token)
    rep = sub.add_parser("replay", help="re-apply distribution.claimed and distribution.commands")
    where = rep.add_mutually_exclusive_group()
    where.add_argument("--from-offset", type=int, default=0,
                       help="offset to start from in every partition (default 0)")
    where.add_argument("--from-timestamp", help="RFC 3339 time to start from")
    rep.add_argument("--topics", default=f"{CLAIMED},{COMMANDS}")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.set_defaults(func=cmd_replay)
    claim = sub.add_parser("claim", help="produce a distribution.claimed event, as M09 does")
    claim.add_argument("--influencer", required=True, help="the influencer id")
    claim.add_argument("--clip", required=True, help="the clip id")
    claim.add_argument("--campaign", help="the campaign id (unset: the service looks the clip "
                                          "up in M09's clips table; a clip not there goes to "
                                          "the DLQ)")
    claim.add_argument("--claim-id", help="the claim id, which is the item id (default: a new "
                                          "one)")
    claim.set_defaults(func=cmd_claim)
    api = sub.add_parser("openapi", help="write the OpenAPI document generated from the code")
    api.add_argument("--check", action="store_true",
                     help="exit 1 if the contract file differs from it, write nothing")
    api.set_defaults(func=cmd_openapi)
    bench = sub.add_parser("bench", help="run the benchmarks and write BENCHMARKS.md")
    bench.add_argument("--quick", action="store_true",
                       help="small sizes (CI): every workload runs, in under two minutes")
    bench.add_argument("--database-url", help="a PostgreSQL server to make the run's own "
                       "database on (dropped afterwards); default: an embedded one")
    bench.add_argument("--bootstrap", help="HOST:PORT of a Kafka-protocol broker; default: "
                       "an embedded Tansu")
    bench.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    bench.add_argument("--only", help="comma-separated workloads (default: all; see "
                       "benchmarks/run.py WORKLOADS)")
    bench.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    if args.func not in (cmd_dev, cmd_openapi, cmd_bench, cmd_claim):  # no secrets needed
        refused = refuse_unsafe_settings()
        if refused is not None:
            return refused
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
