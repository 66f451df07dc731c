"""What /metrics tells: the cluster's figures read from a real PostgreSQL (the same on
every worker, since they come from the database), and the process figures the agents
observe."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, generate_latest

from app import metrics
from app.domain import events as e
from app.domain.model import ErrorClass, Platform
from tests.factories import make_item, make_platform_row


def cluster_samples(figures: metrics.ClusterFigures) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(figures)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


async def test_cluster_figures_are_what_the_database_holds(pool):
    now = datetime.now(timezone.utc)
    async with pool.acquire() as conn:
        overdue = await make_item(conn, scheduled_at=now - timedelta(minutes=10))
        await make_item(conn, scheduled_at=now + timedelta(hours=1))  # not due yet
        published = await make_item(conn, status="published")
        late = await make_item(conn, status="published",
                               scheduled_at=now - timedelta(seconds=30))
        await make_platform_row(conn, published, "tiktok", status="published", post_id="p1")
        await make_platform_row(conn, overdue, "youtube", status="pending")
        await conn.execute(
            "INSERT INTO publishing_analytics (item_id, platform, event_type, occurred_at) "
            "VALUES ($1, 'tiktok', 'published', now()), "
            "($1, 'tiktok', 'failed', now() - interval '2 hours'), "
            "($2, 'youtube', 'published', now())", published, late)
        await conn.execute(
            "INSERT INTO distribution_outbox (event_id, topic, partition_key, envelope, "
            "created_at) VALUES (gen_random_uuid(), 'distribution.published', $1, '{}', "
            "now() - interval '30 seconds')", published)
    figures = metrics.ClusterFigures(max_age=0)
    await figures.refresh(pool)
    got = cluster_samples(figures)

    assert got[("distribution_items", (("status", "scheduled"),))] == 2
    assert got[("distribution_items", (("status", "published"),))] == 2
    assert got[("distribution_platform_rows", (("platform", "tiktok"),
                                                ("status", "published")))] == 1
    assert got[("distribution_platform_rows", (("platform", "youtube"),
                                                ("status", "pending")))] == 1
    # the failure two hours ago is outside the last hour
    assert got[("distribution_platform_outcomes_last_hour", (("outcome", "published"),
                                                             ("platform", "tiktok")))] == 1
    assert ("distribution_platform_outcomes_last_hour",
            (("outcome", "failed"), ("platform", "tiktok"))) not in got
    assert got[("distribution_outbox_pending", ())] == 1
    assert 29 <= got[("distribution_outbox_oldest_pending_seconds", ())] < 120
    assert 599 <= got[("distribution_oldest_overdue_seconds", ())] < 700
    assert figures.overview()["oldest_overdue_item"] == overdue
    # only the scheduled one of the two published posts has a lateness
    assert 29 <= got[("distribution_lateness_last_hour_seconds", (("quantile", "0.99"),))] < 120
    assert figures.overview()["lateness_last_hour"]["count"] == 1


async def test_an_empty_cluster_reads_as_zeros(pool):
    figures = metrics.ClusterFigures(max_age=0)
    await figures.refresh(pool)
    got = cluster_samples(figures)
    assert got == {("distribution_cluster_figures_up", ()): 1,
                   ("distribution_outbox_pending", ()): 0,
                   ("distribution_outbox_oldest_pending_seconds", ()): 0,
                   ("distribution_oldest_overdue_seconds", ()): 0,
                   ("distribution_lateness_last_hour_seconds", (("quantile", "0.5"),)): 0,
                   ("distribution_lateness_last_hour_seconds", (("quantile", "0.99"),)): 0}


async def test_the_cluster_is_read_again_only_once_its_figures_are_old_enough(pool):
    figures = metrics.ClusterFigures(max_age=3600)
    await figures.refresh(pool)
    async with pool.acquire() as conn:
        await make_item(conn)
    await figures.refresh(pool)  # still fresh: not read again
    assert ("distribution_items", (("status", "claimed"),)) not in cluster_samples(figures)
    figures.max_age = 0
    await figures.refresh(pool)
    assert cluster_samples(figures)[("distribution_items", (("status", "claimed"),))] == 1


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_commands_attempts_lateness_and_deferrals_are_counted():
    now = datetime.now(timezone.utc)
    before = sample("distribution_commands_total", kind="retry", outcome="refused",
                    error="invalid_state")
    metrics.observe_command("retry", "refused", "invalid_state", now - timedelta(seconds=2), now)
    assert sample("distribution_commands_total", kind="retry", outcome="refused",
                  error="invalid_state") == before + 1
    assert sample("distribution_command_seconds_bucket", kind="retry", le="2.5") >= 1

    deferrals = sample("distribution_quota_deferrals_total", platform="youtube")
    metrics.observe_attempt("youtube", "retry", ErrorClass.QUOTA, "quotaExceeded")
    metrics.observe_attempt("youtube", "published", None, None)
    assert sample("distribution_quota_deferrals_total", platform="youtube") == deferrals + 1
    assert sample("distribution_platform_attempts_total", platform="youtube", outcome="retry",
                  error_class="quota", reason="quotaExceeded") >= 1

    late = sample("distribution_publishing_lateness_seconds_count", platform="tiktok")
    metrics.observe_decision([e.PlatformPublished(Platform.TIKTOK, 1, "p", None),
                              e.PlatformFailed(Platform.YOUTUBE, 1, "no")],
                             now - timedelta(seconds=3), now)
    metrics.observe_decision([e.PlatformPublished(Platform.TIKTOK, 1, "p", None)], None, now)
    assert sample("distribution_publishing_lateness_seconds_count", platform="tiktok") == late + 1
    assert b"distribution_publishing_lateness_seconds_bucket" in generate_latest(
        metrics.REGISTRY)


async def test_a_database_that_does_not_answer_leaves_the_cluster_figures_out(pool):
    figures = metrics.ClusterFigures(max_age=0)
    assert await figures.refresh(pool)
    assert cluster_samples(figures)[("distribution_cluster_figures_up", ())] == 1
    await pool.close()  # the database is away for this pool
    assert not await figures.refresh(pool, timeout=2)
    assert cluster_samples(figures) == {("distribution_cluster_figures_up", ()): 0}
    assert figures.overview()["items_by_status"] == {}
