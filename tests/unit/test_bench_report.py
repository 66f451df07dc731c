"""The benchmark report carries the hand-written log of the performance work over from the
report it replaces, and only that."""

from benchmarks.report import HISTORY, kept_history

PREVIOUS = f"""# Benchmarks

| run | |

{HISTORY}

| change | figure |
| batches | 306/s |

## Claim ingestion

| figure | value |
"""


def test_the_performance_log_is_carried_over_and_the_old_figures_are_not():
    kept = kept_history(PREVIOUS)
    assert kept.startswith(HISTORY) and "| batches | 306/s |" in kept
    assert "Claim ingestion" not in kept


def test_a_report_without_a_performance_log_carries_nothing():
    assert kept_history("# Benchmarks\n\n## Claim ingestion\n") == ""
