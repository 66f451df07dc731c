-- Every SQL statement of the service, each under a name.

-- name: create_migrations_table
-- Bookkeeping of applied migration files.
CREATE TABLE IF NOT EXISTS distribution_schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: lock_migrations
-- Serialises migrators (transaction-scoped advisory lock).
SELECT pg_advisory_xact_lock(hashtext('distribution_schema_migrations'))

-- name: applied_migrations
SELECT version FROM distribution_schema_migrations

-- name: record_migration
-- $1 version
INSERT INTO distribution_schema_migrations (version) VALUES ($1)

-- name: ping
SELECT 1

-- name: campaigns_for_clips
-- M09's clip -> campaign projection, read-only (M09 owns the table). $1 clip ids
SELECT id::text AS clip_id, campaign_id::text AS campaign_id FROM clips WHERE id::text = ANY($1::text[])

-- name: insert_claims
-- New items in `claimed`; a repeated claim or a second claim for the same
-- influencer/clip/campaign inserts nothing. $1 ids, $2 influencer ids, $3 clip ids,
-- $4 campaign ids, $5 claimed_at, $6 claim_expires_at
INSERT INTO distribution_items
    (id, influencer_id, clip_id, campaign_id, status, claimed_at, claim_expires_at)
SELECT id, influencer_id, clip_id, campaign_id, 'claimed', claimed_at, claim_expires_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
    AS c(id, influencer_id, clip_id, campaign_id, claimed_at, claim_expires_at)
ON CONFLICT DO NOTHING
RETURNING id

-- name: item_aggregates
-- Items with their caption, overlays and platform rows, and the transaction's time (the
-- `updated_at` of whatever it writes). $1 item ids
SELECT i.*, now() AS transaction_time,
    (SELECT to_jsonb(c) FROM distribution_captions c WHERE c.item_id = i.id) AS caption,
    (SELECT coalesce(jsonb_agg(to_jsonb(o) ORDER BY o.type), '[]'::jsonb)
       FROM distribution_overlays o WHERE o.item_id = i.id) AS overlays,
    (SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.platform), '[]'::jsonb)
       FROM distribution_platform_status p WHERE p.item_id = i.id) AS platform_rows
FROM distribution_items i
WHERE i.id = ANY($1::text[])

-- name: lock_items
-- Locks item rows and their platform rows for the commands' transaction, so that the
-- publisher (which skips locked rows) cannot take an attempt meanwhile; in one order (by
-- id) for every transaction. $1 item ids
WITH items AS (SELECT id FROM distribution_items WHERE id = ANY($1::text[])
               ORDER BY id FOR UPDATE),
     platform_rows AS (SELECT item_id FROM distribution_platform_status
                       WHERE item_id IN (SELECT id FROM items)
                       ORDER BY item_id, platform FOR UPDATE)
SELECT (SELECT count(*) FROM items) AS items, (SELECT count(*) FROM platform_rows) AS rows

-- name: write_batch
-- What a batch of commands wrote, in one statement: each item's final fields, its changed
-- platform rows, the analytics rows, the outbox events (in their order) and the applied
-- commands' replies (a copy of a command for an item that does not exist, with no row lock
-- to queue on, may have recorded its identical refusal meanwhile: kept).
-- Items: $1 id, $2 status, $3 scheduled_at, $4 timezone, $5 platforms (comma-separated),
-- $6 retry_count, $7 failure_reason, $8 version.
-- Platform rows: $9 item id, $10 platform, $11 status, $12 attempts, $13 key_attempt,
-- $14 last_error, $15 next_attempt_at, $16 post_id, $17 post_url, $18 published_at,
-- $19 in_round, $20 error_class, $21 reason_code.
-- Analytics: $22 item id, $23 platform, $24 event_type, $25 attempt, $26 post_id, $27 error,
-- $28 occurred_at, $29 actor. Outbox: $30 event id, $31 topic, $32 partition key,
-- $33 envelope. Commands: $34 command id, $35 item id, $36 kind, $37 reply.
-- Platform answers: $38 item id, $39 platform, $40 attempt, $41 outcome, $42 error class,
-- $43 reason code, $44 error, $45 post id.
WITH items AS (
    UPDATE distribution_items i
    SET status = u.status, scheduled_at = u.scheduled_at, timezone = u.timezone,
        platforms = string_to_array(u.platforms, ','), retry_count = u.retry_count,
        failure_reason = u.failure_reason, version = u.version, updated_at = now(),
        due_enqueued_at = CASE WHEN i.scheduled_at IS DISTINCT FROM u.scheduled_at
                                    OR u.status <> 'scheduled'
                               THEN NULL ELSE i.due_enqueued_at END
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::int[],
                $7::text[], $8::int[])
         AS u (id, status, scheduled_at, timezone, platforms, retry_count, failure_reason,
               version)
    WHERE i.id = u.id),
platform_rows AS (
    INSERT INTO distribution_platform_status
        (item_id, platform, status, attempts, key_attempt, last_error, next_attempt_at,
         post_id, post_url, published_at, in_round, error_class, reason_code)
    SELECT * FROM unnest($9::text[], $10::text[], $11::text[], $12::int[], $13::int[],
                         $14::text[], $15::timestamptz[], $16::text[], $17::text[],
                         $18::timestamptz[], $19::boolean[], $20::text[], $21::text[])
    ON CONFLICT (item_id, platform) DO UPDATE
    SET status = EXCLUDED.status, attempts = EXCLUDED.attempts,
        key_attempt = EXCLUDED.key_attempt, last_error = EXCLUDED.last_error,
        next_attempt_at = EXCLUDED.next_attempt_at, post_id = EXCLUDED.post_id,
        post_url = EXCLUDED.post_url, published_at = EXCLUDED.published_at,
        in_round = EXCLUDED.in_round, error_class = EXCLUDED.error_class,
        reason_code = EXCLUDED.reason_code, updated_at = now()),
analytics AS (
    INSERT INTO publishing_analytics
        (item_id, platform, event_type, attempt, post_id, error, occurred_at, actor)
    SELECT * FROM unnest($22::text[], $23::text[], $24::text[], $25::int[], $26::text[],
                         $27::text[], $28::timestamptz[], $29::text[])),
outbox AS (
    INSERT INTO distribution_outbox (event_id, topic, partition_key, envelope)
    SELECT event_id, topic, partition_key, envelope
    FROM unnest($30::uuid[], $31::text[], $32::text[], $33::jsonb[]) WITH ORDINALITY
         AS u (event_id, topic, partition_key, envelope, n)
    ORDER BY n),
commands AS (
    INSERT INTO distribution_processed_commands (command_id, item_id, kind, reply)
    SELECT * FROM unnest($34::text[], $35::text[], $36::text[], $37::jsonb[])
    ON CONFLICT (command_id) DO NOTHING),
attempts AS (
    INSERT INTO distribution_platform_attempts
        (item_id, platform, attempt, outcome, error_class, reason_code, error, post_id)
    SELECT * FROM unnest($38::text[], $39::text[], $40::int[], $41::text[], $42::text[],
                         $43::text[], $44::text[], $45::text[]))
SELECT 1

-- name: upsert_caption
-- $1 item id, $2 text, $3 hashtags, $4 title, $5 variants
INSERT INTO distribution_captions (item_id, text, hashtags, title, variants)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (item_id) DO UPDATE
SET text = EXCLUDED.text, hashtags = EXCLUDED.hashtags, title = EXCLUDED.title,
    variants = EXCLUDED.variants, updated_at = now()

-- name: upsert_overlay
-- A second overlay of a type replaces the first. $1 item id, $2 type, $3 duration
INSERT INTO distribution_overlays (item_id, type, duration_seconds) VALUES ($1, $2, $3)
ON CONFLICT (item_id, type) DO UPDATE
SET duration_seconds = EXCLUDED.duration_seconds, updated_at = now()

-- name: delete_platform_rows
-- Platform rows no longer requested. $1 item id, $2 platforms to keep
DELETE FROM distribution_platform_status WHERE item_id = $1 AND NOT (platform = ANY($2::text[]))

-- name: processed_commands
-- The replies of commands applied before. $1 command ids
SELECT command_id, reply FROM distribution_processed_commands WHERE command_id = ANY($1::text[])

-- name: take_due_items
-- Marks a batch of due scheduled items as enqueued (skipping rows another scheduler
-- holds) and returns them; an enqueue older than $3 is taken again, in case its
-- command was lost. The ids come from an array (not a join), so the update finds them
-- by primary key: a join let the planner hash-join against a scan of the whole table.
-- $1 now, $2 batch size, $3 requeue cutoff
UPDATE distribution_items
SET due_enqueued_at = $1
WHERE id = ANY(ARRAY(
      SELECT id FROM distribution_items
      WHERE status = 'scheduled' AND scheduled_at <= $1
        AND (due_enqueued_at IS NULL OR due_enqueued_at < $3)
      ORDER BY scheduled_at
      LIMIT $2
      FOR UPDATE SKIP LOCKED))
RETURNING id, scheduled_at

-- name: lease_platform_attempts
-- Leases a batch of platforms waiting for an attempt (or whose lease ran out), recording
-- the attempt before the call (the lease rule: app/db/queue.py); what the call needs.
-- Accounts on hold (needs reconnect) are passed over. $1 now, $2 batch size, $3 lease expiry,
-- $4 the platforms to lease for
WITH due AS (
    SELECT p.item_id, p.platform FROM distribution_platform_status p
    JOIN distribution_items i ON i.id = p.item_id
    WHERE p.status IN ('pending', 'publishing') AND p.next_attempt_at <= $1
      AND p.platform = ANY($4::text[])
      AND NOT EXISTS (SELECT 1 FROM distribution_account_holds h
                      WHERE h.influencer_id = i.influencer_id AND h.platform = p.platform)
    ORDER BY p.next_attempt_at
    LIMIT $2
    FOR UPDATE OF p SKIP LOCKED
), leased AS (
    UPDATE distribution_platform_status p
    SET status = 'publishing', attempts = p.attempts + 1, lease = p.lease + 1,
        next_attempt_at = $3, updated_at = now()
    FROM due WHERE p.item_id = due.item_id AND p.platform = due.platform
    RETURNING p.item_id, p.platform, p.attempts, p.key_attempt, p.lease
)
SELECT leased.*, i.influencer_id, i.clip_id,
    (SELECT to_jsonb(c) FROM distribution_captions c WHERE c.item_id = i.id) AS caption,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('type', o.type,
                                                  'duration_seconds', o.duration_seconds)
                               ORDER BY o.type), '[]'::jsonb)  -- play order: intro, outro
       FROM distribution_overlays o WHERE o.item_id = i.id) AS overlays
FROM leased JOIN distribution_items i ON i.id = leased.item_id

-- name: extend_lease
-- Keeps a lease while its call is under way; false once another lease took the attempt.
-- $1 item id, $2 platform, $3 lease number, $4 new expiry
UPDATE distribution_platform_status SET next_attempt_at = $4
WHERE item_id = $1 AND platform = $2 AND lease = $3 AND status = 'publishing'
RETURNING true

-- name: claim_ledger_entry
-- The attempt's ledger entry for this lease ("started" when new); nothing when a later
-- lease claimed it. $1 item id, $2 platform, $3 key attempt, $4 lease number
INSERT INTO distribution_publish_ledger AS l (item_id, platform, key_attempt, lease, step)
VALUES ($1, $2, $3, $4, 'started')
ON CONFLICT (item_id, platform, key_attempt) DO UPDATE SET lease = EXCLUDED.lease
WHERE l.lease <= EXCLUDED.lease
RETURNING step, handles, started_at, updated_at

-- name: record_ledger_step
-- A step and its handles, by the lease that holds the entry; nothing when it lost it.
-- $1 item id, $2 platform, $3 key attempt, $4 lease number, $5 step, $6 handles to merge
UPDATE distribution_publish_ledger
SET step = $5, handles = handles || $6::jsonb, updated_at = now()
WHERE item_id = $1 AND platform = $2 AND key_attempt = $3 AND lease = $4
RETURNING step, handles, started_at, updated_at

-- name: ledger_entries
-- Every ledger entry of an item, for operators and tests. $1 item id
SELECT platform, key_attempt, lease, step, handles, started_at, updated_at
FROM distribution_publish_ledger WHERE item_id = $1 ORDER BY platform, key_attempt

-- name: try_relay_lock
-- One relay at a time keeps each item's events in order (transaction-scoped).
SELECT pg_try_advisory_xact_lock(hashtext('distribution_outbox_relay'))

-- name: pending_outbox
-- The oldest pending outbox rows, each envelope as JSON text (sent as it is: no parsing
-- and writing it again). $1 batch size
SELECT id, event_id, topic, partition_key, envelope::text AS envelope FROM distribution_outbox
WHERE status = 'pending'
ORDER BY id
LIMIT $1

-- name: mark_outbox_published
-- Only after the broker acknowledged them, at that time (not the transaction's start,
-- which came before the send). $1 ids
UPDATE distribution_outbox SET status = 'published', published_at = clock_timestamp(),
    attempts = attempts + 1
WHERE id = ANY($1::bigint[])

-- name: note_outbox_failure
-- $1 ids, $2 error
UPDATE distribution_outbox SET attempts = attempts + 1, last_error = $2
WHERE id = ANY($1::bigint[])

-- name: item_owner
-- Who owns an item, read before a command is sent (no lock). $1 item id
SELECT influencer_id FROM distribution_items WHERE id = $1

-- name: forget_expired_idempotency_key
-- A key older than its retention counts as never used. $1 caller, $2 route, $3 item id,
-- $4 key, $5 retention cutoff
DELETE FROM distribution_idempotency_keys
WHERE caller = $1 AND route = $2 AND item_id = $3 AND idempotency_key = $4 AND created_at < $5

-- name: insert_idempotency_key
-- The first request with a key takes it, in flight until $7. $1 caller, $2 route,
-- $3 item id, $4 key, $5 request hash, $6 command id, $7 locked until
INSERT INTO distribution_idempotency_keys
    (caller, route, item_id, idempotency_key, request_hash, command_id, locked_until)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
RETURNING command_id

-- name: take_idempotency_key
-- The key's record, locked; a later request decides from it what to answer.
-- $1 caller, $2 route, $3 item id, $4 key
SELECT request_hash, command_id, locked_until, response_status, response_body
FROM distribution_idempotency_keys
WHERE caller = $1 AND route = $2 AND item_id = $3 AND idempotency_key = $4
FOR UPDATE

-- name: relock_idempotency_key
-- A request that found the key free (the first one gave up or crashed) takes it over.
-- $1 caller, $2 route, $3 item id, $4 key, $5 locked until
UPDATE distribution_idempotency_keys SET locked_until = $5
WHERE caller = $1 AND route = $2 AND item_id = $3 AND idempotency_key = $4

-- name: complete_idempotency_key
-- The answer to replay. $1 caller, $2 route, $3 item id, $4 key, $5 status, $6 body
UPDATE distribution_idempotency_keys
SET locked_until = NULL, response_status = $5, response_body = $6
WHERE caller = $1 AND route = $2 AND item_id = $3 AND idempotency_key = $4

-- name: release_idempotency_key
-- No answer to store (503, 504): the next request with the key may send the same command
-- again at once. $1 caller, $2 route, $3 item id, $4 key
UPDATE distribution_idempotency_keys SET locked_until = now() - interval '1 second'
WHERE caller = $1 AND route = $2 AND item_id = $3 AND idempotency_key = $4
  AND response_status IS NULL

-- name: delete_idempotency_key
-- The request was refused before it ran (400, 404): the key stays unused.
-- $1 caller, $2 route, $3 item id, $4 key
DELETE FROM distribution_idempotency_keys
WHERE caller = $1 AND route = $2 AND item_id = $3 AND idempotency_key = $4

-- name: prune_idempotency_keys
-- Keys past their retention, a batch at a time. $1 cutoff, $2 batch size
DELETE FROM distribution_idempotency_keys
WHERE ctid = ANY(ARRAY(SELECT ctid FROM distribution_idempotency_keys
                       WHERE created_at < $1 LIMIT $2))

-- name: prune_processed_commands
-- Applied-command records past their retention, a batch at a time. The retention outlasts
-- the commands topic's, so every command a replay can still read is remembered.
-- $1 cutoff, $2 batch size
DELETE FROM distribution_processed_commands
WHERE command_id = ANY(ARRAY(SELECT command_id FROM distribution_processed_commands
                             WHERE processed_at < $1 LIMIT $2))

-- name: prune_published_outbox
-- Published outbox rows past their retention, a batch at a time: their events are on the
-- topics (consumers dedupe them by event id). Pending rows are never pruned.
-- $1 cutoff, $2 batch size
DELETE FROM distribution_outbox
WHERE id = ANY(ARRAY(SELECT id FROM distribution_outbox
                     WHERE status = 'published' AND published_at < $1 LIMIT $2))

-- name: database_exists
-- Whether the server has a database of that name (the dev broker's). $1 name
SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)

-- name: create_broker_objects
-- The dev broker's objects (app/broker_storage.py), in a database of their own; keys sort
-- bytewise, as S3 lists them.
CREATE TABLE IF NOT EXISTS broker_objects (
    key          text COLLATE "C" PRIMARY KEY,
    body         bytea NOT NULL,
    etag         text NOT NULL,
    content_type text,
    modified_at  timestamptz NOT NULL DEFAULT now()
)

-- name: get_broker_object
-- $1 key
SELECT body, etag, content_type, modified_at FROM broker_objects WHERE key = $1

-- name: list_broker_objects
-- The objects whose key starts with $1, in key order (the range bound lets the primary key
-- find them). $1 prefix
SELECT key, etag, length(body) AS size, modified_at FROM broker_objects
WHERE key >= $1 AND starts_with(key, $1)
ORDER BY key

-- name: create_broker_object
-- Only if absent (If-None-Match: *); NULL when there already. $1 key, $2 body, $3 etag,
-- $4 content type
INSERT INTO broker_objects (key, body, etag, content_type) VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO NOTHING
RETURNING true

-- name: replace_broker_object
-- Only if unchanged since read (If-Match); NULL otherwise. $1 key, $2 body, $3 new etag,
-- $4 content type, $5 etag read
UPDATE broker_objects SET body = $2, etag = $3, content_type = $4, modified_at = now()
WHERE key = $1 AND etag = $5
RETURNING true

-- name: put_broker_object
-- Unconditionally. $1 key, $2 body, $3 etag, $4 content type
INSERT INTO broker_objects (key, body, etag, content_type) VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO UPDATE SET body = EXCLUDED.body, etag = EXCLUDED.etag,
    content_type = EXCLUDED.content_type, modified_at = now()
RETURNING true

-- name: delete_broker_objects
-- $1 keys
DELETE FROM broker_objects WHERE key = ANY($1::text[])

-- name: lock_account_posts
-- Serialises the quota checks of one account on one platform until the transaction ends
-- (two items of one influencer are two item locks). $1 influencer id, $2 platform
SELECT pg_advisory_xact_lock(hashtext('distribution_quota:' || $1 || ':' || $2))

-- name: account_post_times
-- When each of an account's posts to a platform went out or is due, from $3 on: published
-- ones, scheduled ones, and those being published now (counted at $4, now). The item $5,
-- whose plan is being checked, is left out. $1 influencer id, $2 platform, $3 since,
-- $4 now, $5 item id
SELECT p.published_at AS at
FROM distribution_platform_status p JOIN distribution_items i ON i.id = p.item_id
WHERE i.influencer_id = $1 AND p.platform = $2 AND p.status = 'published'
  AND p.published_at >= $3 AND i.id <> $5
UNION ALL
SELECT i.scheduled_at FROM distribution_items i
WHERE i.influencer_id = $1 AND i.status = 'scheduled' AND $2 = ANY(i.platforms)
  AND i.scheduled_at >= $3 AND i.id <> $5
UNION ALL
SELECT $4::timestamptz
FROM distribution_platform_status p JOIN distribution_items i ON i.id = p.item_id
WHERE i.influencer_id = $1 AND p.platform = $2 AND p.status IN ('pending', 'publishing')
  AND i.id <> $5

-- name: hold_account
-- Holds an account's posts on a platform; true when it was not held yet.
-- $1 influencer id, $2 platform, $3 reason code, $4 error
INSERT INTO distribution_account_holds (influencer_id, platform, reason_code, error)
VALUES ($1, $2, $3, $4)
ON CONFLICT (influencer_id, platform) DO NOTHING
RETURNING true

-- name: release_account
-- Lifts an account's hold on a platform; the hold, if there was one. $1 influencer id, $2 platform
DELETE FROM distribution_account_holds WHERE influencer_id = $1 AND platform = $2
RETURNING influencer_id, platform, reason_code, error, held_at

-- name: account_holds
-- An influencer's accounts on hold. $1 influencer id
SELECT influencer_id, platform, reason_code, error, held_at
FROM distribution_account_holds WHERE influencer_id = $1 ORDER BY platform

-- name: record_account_cap
-- The account's live posting cap on a platform, as the platform just said it.
-- $1 influencer id, $2 platform, $3 cap
INSERT INTO distribution_account_caps (influencer_id, platform, cap) VALUES ($1, $2, $3)
ON CONFLICT (influencer_id, platform) DO UPDATE SET cap = EXCLUDED.cap, read_at = now()

-- name: account_caps
-- The live caps known for an account. $1 influencer id, $2 platforms
SELECT platform, cap FROM distribution_account_caps
WHERE influencer_id = $1 AND platform = ANY($2::text[])

-- name: cluster_figures
-- What /metrics and the console tell of the whole cluster, in one statement: items by
-- status, platform rows by platform and state, outcomes recorded in the last hour and the
-- lateness of the scheduled posts among them (seconds), the outbox backlog and the age of
-- its oldest pending row, the most overdue scheduled item.
SELECT
    (SELECT jsonb_object_agg(status, n)
     FROM (SELECT status, count(*) AS n FROM distribution_items GROUP BY status) s)
        AS items_by_status,
    (SELECT jsonb_object_agg(platform, states)
     FROM (SELECT platform, jsonb_object_agg(status, n) AS states
           FROM (SELECT platform, status, count(*) AS n FROM distribution_platform_status
                 GROUP BY platform, status) c
           GROUP BY platform) p)
        AS platform_rows,
    (SELECT jsonb_object_agg(platform, outcomes)
     FROM (SELECT platform, jsonb_object_agg(event_type, n) AS outcomes
           FROM (SELECT platform, event_type, count(*) AS n FROM publishing_analytics
                 WHERE occurred_at > now() - interval '1 hour'
                   AND event_type IN ('published', 'failed')
                 GROUP BY platform, event_type) c
           GROUP BY platform) p)
        AS outcomes_last_hour,
    (SELECT jsonb_build_object(
                'count', count(*),
                'p50', percentile_cont(0.5) WITHIN GROUP (ORDER BY late),
                'p99', percentile_cont(0.99) WITHIN GROUP (ORDER BY late))
     FROM (SELECT extract(epoch FROM a.occurred_at - i.scheduled_at)::float8 AS late
           FROM publishing_analytics a JOIN distribution_items i ON i.id = a.item_id
           WHERE a.occurred_at > now() - interval '1 hour' AND a.event_type = 'published'
             AND i.scheduled_at IS NOT NULL) l)
        AS lateness_last_hour,
    (SELECT count(*) FROM distribution_outbox WHERE status = 'pending') AS outbox_pending,
    (SELECT extract(epoch FROM now() - created_at)::float8 FROM distribution_outbox
     WHERE status = 'pending' ORDER BY id LIMIT 1) AS outbox_oldest_seconds,
    o.id AS oldest_overdue_item,
    extract(epoch FROM now() - o.scheduled_at)::float8 AS oldest_overdue_seconds
FROM (SELECT 1) one
LEFT JOIN LATERAL (SELECT id, scheduled_at FROM distribution_items
                   WHERE status = 'scheduled' AND scheduled_at <= now()
                   ORDER BY scheduled_at LIMIT 1) o ON true

-- name: search_items
-- The operators' item search, newest first, a page after the cursor; a filter that is NULL
-- matches everything. $1 status, $2 platform, $3 platform state, $4 influencer id,
-- $5 campaign id, $6 due from, $7 due before, $8 cursor created_at, $9 cursor id, $10 limit
SELECT i.id, i.created_at FROM distribution_items i
WHERE ($1::text IS NULL OR i.status = $1)
  AND ($4::text IS NULL OR i.influencer_id = $4)
  AND ($5::text IS NULL OR i.campaign_id = $5)
  AND ($6::timestamptz IS NULL OR i.scheduled_at >= $6)
  AND ($7::timestamptz IS NULL OR i.scheduled_at < $7)
  AND (($2::text IS NULL AND $3::text IS NULL) OR EXISTS (
        SELECT 1 FROM distribution_platform_status p
        WHERE p.item_id = i.id AND ($2::text IS NULL OR p.platform = $2)
          AND ($3::text IS NULL OR p.status = $3)))
  AND ($8::timestamptz IS NULL OR (i.created_at, i.id) < ($8, $9::text))
ORDER BY i.created_at DESC, i.id DESC
LIMIT $10

-- name: item_timeline
-- What happened to an item, oldest first: the commands people sent it (`error`: a
-- refusal's code; the service's own due and platform-result commands are the answers
-- below), the platforms' answers, the events it sent. $1 item id
SELECT * FROM (
    SELECT processed_at AS at, 'command' AS entry, kind AS what, NULL::text AS platform,
           NULL::int AS attempt, reply #>> '{error,code}' AS error, NULL::text AS error_class,
           NULL::text AS reason_code, NULL::text AS post_id, NULL::text AS topic,
           NULL::text AS status
    FROM distribution_processed_commands
    WHERE item_id = $1 AND kind NOT IN ('publish-due', 'platform-result')
    UNION ALL
    SELECT answered_at, 'attempt', outcome, platform, attempt, error, error_class,
           reason_code, post_id, NULL, NULL
    FROM distribution_platform_attempts WHERE item_id = $1
    UNION ALL
    SELECT created_at, 'event', envelope ->> 'event_type', NULL, NULL, NULL, NULL, NULL,
           NULL, topic, status
    FROM distribution_outbox WHERE partition_key = $1
) t
ORDER BY at, entry

-- name: record_redrive
-- A dead-lettered record is sent back once: nothing returned when it was before.
-- $1 DLQ topic, $2 partition, $3 offset, $4 source topic, $5 operator
INSERT INTO distribution_redrives (dlq_topic, dlq_partition, dlq_offset, source_topic, operator)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
RETURNING redriven_at

-- name: redrives
-- The re-drives of a DLQ topic's records. $1 DLQ topic
SELECT dlq_partition, dlq_offset, operator, redriven_at FROM distribution_redrives
WHERE dlq_topic = $1
