-- M31: publishing through the platforms' own APIs, exactly once although none of them
-- recognises a repeated post.

-- `unknown`: a crash left the outcome impossible to establish; never posted again
-- automatically, settled by an operator. Each lease of a platform is numbered, so that a
-- lease that ran out cannot write over the one that took its attempt over.
ALTER TABLE distribution_platform_status
    DROP CONSTRAINT distribution_platform_status_status_check,
    ADD CONSTRAINT distribution_platform_status_status_check
        CHECK (status IN ('pending', 'publishing', 'published', 'failed', 'unknown')),
    ADD COLUMN lease bigint NOT NULL DEFAULT 0;

-- The attempt ledger: for each (item, platform, key attempt), the flow's step and each
-- handle the platform gave, written before the step that can create a post.
CREATE TABLE distribution_publish_ledger (
    item_id     text NOT NULL REFERENCES distribution_items (id) ON DELETE CASCADE,
    platform    text NOT NULL
        CONSTRAINT distribution_publish_ledger_platform_check
        CHECK (platform IN ('tiktok', 'instagram', 'youtube', 'snapchat')),
    key_attempt integer NOT NULL,
    lease       bigint NOT NULL,  -- the lease that claimed it last; only it may write
    step        text NOT NULL,
    handles     jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, platform, key_attempt)
);

-- Accounts whose token the platform refused even after a refresh through M10: their due
-- posts on that platform are held (neither attempted nor failed) until M10 says the
-- account is usable again.
CREATE TABLE distribution_account_holds (
    influencer_id text NOT NULL,
    platform      text NOT NULL
        CONSTRAINT distribution_account_holds_platform_check
        CHECK (platform IN ('tiktok', 'instagram', 'youtube', 'snapchat')),
    reason_code   text,
    error         text,
    held_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (influencer_id, platform)
);

-- Two more outcome topics go through the outbox: platforms whose outcome is unknown, and
-- accounts that need reconnecting (or were reconnected).
ALTER TABLE distribution_outbox
    DROP CONSTRAINT distribution_outbox_topic_check,
    ADD CONSTRAINT distribution_outbox_topic_check
        CHECK (topic IN ('distribution.published', 'distribution.failed',
                         'distribution.unknown', 'distribution.accounts'));
