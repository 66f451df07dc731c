"""app.db.migrate on fresh, empty databases: order, once only, concurrent migrators, the
constraints the migrations declare, and the indexes the hot queries rely on."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from app.db.migrate import MIGRATIONS_DIR, migrate
from app.db.queries import Q
from app.settings import Settings
from tests.factories import make_item

MIGRATIONS = ["20260225_0005_m31_distribution_service",
              "20260225_0011_m31_distribution_reliability",
              "20261129_0012_m31_http_hardening",
              "20261129_0013_m31_error_classes",
              "20261129_0014_m31_direct_publishing",
              "20261129_0015_m31_live_posting_caps",
              "20261129_0016_m31_outbox_retention",
              "20261129_0017_m31_operator_figures"]


async def table_exists(conn, name: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)


# ------------------------------------------------------------------------------------------
# applying


async def test_a_fresh_database_gets_every_file_in_order_and_a_second_run_applies_nothing(
        empty_database):
    conn = await asyncpg.connect(await empty_database())
    try:
        assert not await table_exists(conn, "distribution_items")
        assert await migrate(conn) == MIGRATIONS
        recorded = await conn.fetch(
            "SELECT version, applied_at FROM distribution_schema_migrations ORDER BY version")
        assert [r["version"] for r in recorded] == MIGRATIONS
        for table in ("distribution_items", "distribution_captions", "distribution_overlays",
                      "distribution_platform_status", "publishing_analytics",
                      "distribution_outbox", "distribution_processed_commands",
                      "distribution_idempotency_keys", "distribution_publish_ledger",
                      "distribution_account_holds"):
            assert await table_exists(conn, table), table
        assert not await table_exists(conn, "clips")  # M09's table: never created here

        assert await migrate(conn) == []
        assert await conn.fetch("SELECT version, applied_at FROM distribution_schema_migrations"
                                " ORDER BY version") == recorded
    finally:
        await conn.close()


async def test_two_migrators_at_once_apply_each_file_exactly_once(empty_database):
    url = await empty_database()
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        applied = await asyncio.gather(migrate(first), migrate(second))
        assert sorted(applied, key=len) == [[], MIGRATIONS]
        assert await first.fetchval(
            "SELECT count(*) FROM distribution_schema_migrations") == len(MIGRATIONS)
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_a_failing_migration_leaves_nothing_half_applied(empty_database, tmp_path: Path):
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "20990101_0001_broken.sql").write_text(
        "CREATE TABLE distribution_broken (id int);\nSELECT 1 / 0;\n")
    conn = await asyncpg.connect(await empty_database())
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, tmp_path)
        assert not await table_exists(conn, "distribution_broken")
        assert not await table_exists(conn, "distribution_items")
        assert await migrate(conn) == MIGRATIONS  # the real set still applies cleanly
    finally:
        await conn.close()


def test_no_migration_file_creates_or_alters_clips():
    for path in MIGRATIONS_DIR.glob("*.sql"):
        code = "\n".join(line.split("--")[0] for line in path.read_text().lower().splitlines())
        assert " clips" not in code and "clips " not in code, path.name


# ------------------------------------------------------------------------------------------
# constraints


async def test_an_item_status_outside_the_state_machine_is_rejected(pool):
    with pytest.raises(asyncpg.CheckViolationError, match="distribution_items_status_check"):
        await make_item(pool, status="archived")
    for status in ("claimed", "publishing", "published", "failed"):
        await make_item(pool, status=status)
    with pytest.raises(asyncpg.CheckViolationError, match="distribution_items_schedule_check"):
        await make_item(pool, status="scheduled")  # without a time and zone
    await make_item(pool, status="scheduled", scheduled_at=datetime.now(timezone.utc),
                   timezone="UTC")
    with pytest.raises(asyncpg.CheckViolationError, match="distribution_items_platforms_check"):
        await make_item(pool, platforms=["tiktok", "myspace"])


async def test_a_second_item_for_the_same_influencer_clip_and_campaign_is_rejected(pool):
    await make_item(pool, influencer_id="inf-dup", clip_id="clip-dup", campaign_id="camp-dup")
    with pytest.raises(asyncpg.UniqueViolationError, match="distribution_items_claim_key"):
        await make_item(pool, influencer_id="inf-dup", clip_id="clip-dup",
                       campaign_id="camp-dup")
    await make_item(pool, influencer_id="inf-dup", clip_id="clip-dup", campaign_id="camp-2")


async def test_overlays_must_be_an_intro_or_outro_of_more_than_0_and_at_most_3_seconds(pool):
    item = await make_item(pool)
    insert = "INSERT INTO distribution_overlays (item_id, type, duration_seconds) VALUES ($1, $2, $3)"
    with pytest.raises(asyncpg.CheckViolationError, match="distribution_overlays_type_check"):
        await pool.execute(insert, item, "bumper", 1.0)
    for bad in (0.0, -1.0, 3.001):
        with pytest.raises(asyncpg.CheckViolationError,
                           match="distribution_overlays_duration_check"):
            await pool.execute(insert, item, "intro", bad)
    await pool.execute(insert, item, "intro", 3.0)
    await pool.execute(insert, item, "outro", 0.001)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(insert, item, "intro", 1.0)  # one of each per item
    assert await pool.fetchval(
        "SELECT count(*) FROM distribution_overlays WHERE item_id = $1", item) == 2


async def test_platform_rows_need_a_known_platform_and_a_post_id_once_published(pool):
    item = await make_item(pool, status="publishing")
    insert = ("INSERT INTO distribution_platform_status (item_id, platform, status, post_id)"
              " VALUES ($1, $2, $3, $4)")
    with pytest.raises(asyncpg.CheckViolationError,
                       match="distribution_platform_status_platform_check"):
        await pool.execute(insert, item, "myspace", "pending", None)
    with pytest.raises(asyncpg.CheckViolationError,
                       match="distribution_platform_status_status_check"):
        await pool.execute(insert, item, "tiktok", "lost", None)
    with pytest.raises(asyncpg.CheckViolationError,
                       match="distribution_platform_status_post_check"):
        await pool.execute(insert, item, "tiktok", "published", None)
    await pool.execute(insert, item, "tiktok", "published", "post-1")
    await pool.execute(insert, item, "youtube", "pending", None)
    with pytest.raises(asyncpg.CheckViolationError,
                       match="distribution_platform_status_post_check"):
        await pool.execute("UPDATE distribution_platform_status SET status = 'published'"
                               " WHERE item_id = $1 AND platform = 'youtube'", item)
    analytics = ("INSERT INTO publishing_analytics (item_id, platform, event_type)"
                 " VALUES ($1, $2, $3)")
    with pytest.raises(asyncpg.CheckViolationError,
                       match="publishing_analytics_platform_check"):
        await pool.execute(analytics, item, "myspace", "published")
    with pytest.raises(asyncpg.CheckViolationError,
                       match="publishing_analytics_event_type_check"):
        await pool.execute(analytics, item, "tiktok", "liked")
    await pool.execute(analytics, item, None, "download")


# ------------------------------------------------------------------------------------------
# query plans


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


async def explain(conn, sql: str, *args) -> list[dict]:
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    doc = json.loads(raw) if isinstance(raw, str) else raw
    return plan_nodes(doc[0]["Plan"])


def uses_index(nodes: list[dict], index: str) -> bool:
    return any(n.get("Index Name") == index and n["Node Type"] in (
        "Index Scan", "Index Only Scan", "Bitmap Index Scan") for n in nodes)


def seq_scans(nodes: list[dict], table: str) -> list[dict]:
    return [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == table]


@pytest.fixture(scope="module")
async def populated(empty_database):
    """~5,000 items as a live system has them (few scheduled), ~5,000 outbox rows (few pending)."""
    migrated = await asyncpg.connect(await empty_database())
    await migrate(migrated)
    await migrated.execute("""
        INSERT INTO distribution_items (id, influencer_id, clip_id, campaign_id, status,
            claimed_at, claim_expires_at, scheduled_at, timezone, platforms)
        SELECT 'bulk-' || g, 'inf-' || (g % 400), 'clip-' || g, 'camp-' || (g % 25),
            s.status, now() - g * interval '5 minutes', now() - g * interval '5 minutes'
                + interval '1 day',
            CASE WHEN s.status = 'claimed' THEN NULL
                 -- scheduled ones spread over the next two days, a few already due;
                 -- the rest were scheduled in the past weeks
                 WHEN s.status = 'scheduled' THEN now() + (g / 100 - 5) * interval '1 hour'
                 ELSE now() - g * interval '7 minutes' END,
            CASE WHEN s.status = 'claimed' THEN NULL ELSE 'Europe/Paris' END,
            ARRAY['tiktok']
        FROM generate_series(1, 5000) g,
        LATERAL (SELECT CASE WHEN g % 100 = 0 THEN 'scheduled'
                             WHEN g % 10 = 1 THEN 'claimed'
                             WHEN g % 10 = 2 THEN 'failed'
                             WHEN g % 50 = 3 THEN 'publishing'
                             ELSE 'published' END AS status) s""")
    await migrated.execute("""
        INSERT INTO distribution_outbox (event_id, topic, partition_key, envelope, status,
                                         published_at)
        SELECT gen_random_uuid(), 'distribution.published', 'bulk-' || g, '{}'::jsonb,
            CASE WHEN g > 4980 THEN 'pending' ELSE 'published' END,
            CASE WHEN g > 4980 THEN NULL ELSE now() END
        FROM generate_series(1, 5000) g""")
    await migrated.execute("ANALYZE distribution_items")
    await migrated.execute("ANALYZE distribution_outbox")
    yield migrated
    await migrated.close()


async def test_the_due_item_claim_uses_the_due_index_not_a_table_scan(populated):
    assert await populated.fetchval(
        "SELECT count(*) FROM distribution_items WHERE status = 'scheduled'") == 50
    assert await populated.fetchval("SELECT count(*) FROM distribution_items"
                                    " WHERE status = 'scheduled' AND scheduled_at <= now()") == 5
    now = datetime.now(timezone.utc)
    batch = Settings.model_fields["scheduler_batch_size"].default  # what the scheduler asks
    nodes = await explain(populated, Q["take_due_items"], now, batch,
                          now - timedelta(minutes=5))

    assert uses_index(nodes, "distribution_items_due_idx"), nodes
    assert seq_scans(nodes, "distribution_items") == [], nodes


async def test_the_pending_outbox_read_uses_the_pending_index_not_a_table_scan(populated):
    nodes = await explain(populated, Q["pending_outbox"],
                          Settings.model_fields["outbox_batch_size"].default)

    assert uses_index(nodes, "distribution_outbox_pending_idx"), nodes
    assert seq_scans(nodes, "distribution_outbox") == [], nodes


async def test_the_outbox_pruning_uses_the_published_index_not_a_table_scan(populated):
    cutoff = datetime.now(timezone.utc) - timedelta(
        hours=Settings.model_fields["outbox_retention_hours"].default)
    nodes = await explain(populated, Q["prune_published_outbox"], cutoff, 5_000)

    assert uses_index(nodes, "distribution_outbox_published_idx"), nodes
    assert seq_scans(nodes, "distribution_outbox") == [], nodes


async def test_the_item_search_finds_failed_items_and_an_influencers_by_index(populated):
    def search(**filters):
        values = {"status": None, "platform": None, "platform_status": None,
                  "influencer_id": None, "campaign_id": None, "due_from": None,
                  "due_before": None, **filters}
        return explain(populated, Q["search_items"], *values.values(), None, None, 51)

    failed = await search(status="failed")
    assert uses_index(failed, "distribution_items_failed_idx"), failed
    assert seq_scans(failed, "distribution_items") == [], failed
    influencer = await search(influencer_id="inf-7")
    assert uses_index(influencer, "distribution_items_claim_key"), influencer
    assert seq_scans(influencer, "distribution_items") == [], influencer


async def test_an_items_timeline_reads_each_table_by_the_items_index(populated):
    nodes = await explain(populated, Q["item_timeline"], "bulk-7")
    for table in ("distribution_processed_commands", "distribution_platform_attempts",
                  "distribution_outbox"):
        assert seq_scans(nodes, table) == [], (table, nodes)
    assert uses_index(nodes, "distribution_outbox_partition_key_idx"), nodes
    assert uses_index(nodes, "distribution_processed_commands_item_idx"), nodes
