-- M31 HTTP hardening: Idempotency-Key records, and who asked for each analytics row.

-- One row per Idempotency-Key, scoped by caller, route and item (each its own column).
-- While `locked_until` lies ahead the first request is in flight; once answered, the stored
-- status and body are replayed to a request with the same key and body. `command_id` is
-- fixed at the first request, so a retry after a timeout or a crash sends the same command
-- and the command agent's own deduplication answers it.
CREATE TABLE distribution_idempotency_keys (
    caller          text NOT NULL,
    route           text NOT NULL,
    item_id         text NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    text NOT NULL,
    command_id      text NOT NULL,
    locked_until    timestamptz,
    response_status integer,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, route, item_id, idempotency_key)
);

-- The pruning job's scan (keys are kept 24 h).
CREATE INDEX distribution_idempotency_keys_created_at_idx
    ON distribution_idempotency_keys (created_at);

-- The token subject of the command behind the row; NULL for the service's own commands.
ALTER TABLE publishing_analytics ADD COLUMN actor text;
