-- M31 reliability: the outbox, command idempotency, publishing leases and due bookkeeping.

CREATE TABLE distribution_outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    topic         text NOT NULL
        CONSTRAINT distribution_outbox_topic_check
        CHECK (topic IN ('distribution.published', 'distribution.failed')),
    partition_key text NOT NULL,
    envelope      jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
        CONSTRAINT distribution_outbox_status_check CHECK (status IN ('pending', 'published')),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

-- The relay's pending-row query, in commit order.
CREATE INDEX distribution_outbox_pending_idx ON distribution_outbox (id) WHERE status = 'pending';

-- Every applied command once: a command delivered twice returns the first reply.
CREATE TABLE distribution_processed_commands (
    command_id   text PRIMARY KEY,
    item_id      text NOT NULL,
    kind         text NOT NULL,
    reply        jsonb NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX distribution_processed_commands_processed_at_idx
    ON distribution_processed_commands (processed_at);

-- The attempt number in the platform call's idempotency key; advances only on a definite answer.
ALTER TABLE distribution_platform_status
    ADD COLUMN key_attempt integer NOT NULL DEFAULT 1 CHECK (key_attempt >= 1);

-- Whether the current publishing round (first publish, or a retry) includes the platform.
ALTER TABLE distribution_platform_status
    ADD COLUMN in_round boolean NOT NULL DEFAULT true;

-- The publisher's claim query: platforms waiting for an attempt, or whose lease ran out.
CREATE INDEX distribution_platform_status_due_idx
    ON distribution_platform_status (next_attempt_at)
    WHERE status IN ('pending', 'publishing');

-- When a scheduler sent the item's publish-due command; cleared by a reschedule.
ALTER TABLE distribution_items ADD COLUMN due_enqueued_at timestamptz;
