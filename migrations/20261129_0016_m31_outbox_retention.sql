-- M31: published outbox rows are pruned by age (agents/housekeeping.py); the pruning finds
-- them by this index instead of reading the whole table, pending rows left out.
CREATE INDEX distribution_outbox_published_idx ON distribution_outbox (published_at)
    WHERE status = 'published';
