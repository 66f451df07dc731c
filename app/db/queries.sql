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
    ON CONFLICT (command_id) DO NOTHING)
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
-- Accounts on hold (needs reconnect) are passed over. $1 now, $2 batch size, $3 lease expiry
WITH due AS (
    SELECT p.item_id, p.platform FROM distribution_platform_status p
    JOIN distribution_items i ON i.id = p.item_id
    WHERE p.status IN ('pending', 'publishing') AND p.next_attempt_at <= $1
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
-- The oldest pending outbox rows. $1 batch size
SELECT id, event_id, topic, partition_key, envelope FROM distribution_outbox
WHERE status = 'pending'
ORDER BY id
LIMIT $1

-- name: mark_outbox_published
-- Only after the broker acknowledged them. $1 ids
UPDATE distribution_outbox SET status = 'published', published_at = now(), attempts = attempts + 1
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
