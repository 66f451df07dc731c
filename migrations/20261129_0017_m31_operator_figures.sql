-- M31: what operators see and steer (/metrics, the operator API and console).

-- /metrics reads the last hour's platform outcomes from the analytics rows on every scrape.
CREATE INDEX publishing_analytics_occurred_at_idx ON publishing_analytics (occurred_at);

-- The item search lists failed items newest first from this small index (a failed item is
-- rare, and a partial index costs an update nothing unless it fails the item). Other
-- searches read the table: a full index on items would cost every status change one more
-- index entry (measured: due publishing 10-25 % slower with three).
CREATE INDEX distribution_items_failed_idx ON distribution_items (created_at, id)
    WHERE status = 'failed';

-- An item's timeline: the commands people sent it, and the events it sent. The service's own
-- commands (due, platform results: three an item) are left out of the index, which would
-- cost each of them an entry (measured: due publishing ~10 % slower); the timeline shows
-- the platforms' answers from distribution_platform_attempts instead.
CREATE INDEX distribution_processed_commands_item_idx
    ON distribution_processed_commands (item_id)
    WHERE kind NOT IN ('publish-due', 'platform-result');
CREATE INDEX distribution_outbox_partition_key_idx ON distribution_outbox (partition_key);

-- Every platform answer applied to an item, as the timeline shows it (analytics keeps only
-- the outcomes its readers count).
CREATE TABLE distribution_platform_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id     text NOT NULL REFERENCES distribution_items (id) ON DELETE CASCADE,
    platform    text NOT NULL
        CONSTRAINT distribution_platform_attempts_platform_check
        CHECK (platform IN ('tiktok', 'instagram', 'youtube', 'snapchat')),
    attempt     integer NOT NULL,
    outcome     text NOT NULL
        CONSTRAINT distribution_platform_attempts_outcome_check
        CHECK (outcome IN ('published', 'failed', 'retry', 'unknown')),
    error_class text,
    reason_code text,
    error       text,
    post_id     text,
    answered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX distribution_platform_attempts_item_idx
    ON distribution_platform_attempts (item_id);

-- Dead-lettered records sent back to their topic: each at most once.
CREATE TABLE distribution_redrives (
    dlq_topic     text NOT NULL,
    dlq_partition integer NOT NULL,
    dlq_offset    bigint NOT NULL,
    source_topic  text NOT NULL,
    operator      text NOT NULL,
    redriven_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);
