-- M31 distribution service: items, captions, overlays, per-platform status, analytics.
-- `clips` belongs to M09 and is only read; this migration never creates it.

CREATE TABLE distribution_items (
    id               text PRIMARY KEY,  -- the M09 claim_id
    influencer_id    text NOT NULL,
    clip_id          text NOT NULL,
    campaign_id      text NOT NULL,
    status           text NOT NULL
        CONSTRAINT distribution_items_status_check
        CHECK (status IN ('claimed', 'scheduled', 'publishing', 'published', 'failed')),
    claimed_at       timestamptz NOT NULL,
    claim_expires_at timestamptz NOT NULL,
    scheduled_at     timestamptz,
    timezone         text,
    platforms        text[] NOT NULL DEFAULT '{}'
        CONSTRAINT distribution_items_platforms_check
        CHECK (platforms <@ ARRAY['tiktok', 'instagram', 'youtube', 'snapchat']::text[]),
    retry_count      integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    failure_reason   text,
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT distribution_items_claim_key UNIQUE (influencer_id, clip_id, campaign_id),
    CONSTRAINT distribution_items_schedule_check
        CHECK (status <> 'scheduled' OR (scheduled_at IS NOT NULL AND timezone IS NOT NULL))
);

-- The scheduler's due-item query: scheduled rows in time order.
CREATE INDEX distribution_items_due_idx
    ON distribution_items (scheduled_at) WHERE status = 'scheduled';

CREATE TABLE distribution_captions (
    item_id    text PRIMARY KEY REFERENCES distribution_items (id) ON DELETE CASCADE,
    text       text NOT NULL,
    hashtags   text[] NOT NULL DEFAULT '{}',
    title      text,
    variants   jsonb NOT NULL DEFAULT '{}'::jsonb,  -- platform -> {text, hashtags, title}
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE distribution_overlays (
    item_id          text NOT NULL REFERENCES distribution_items (id) ON DELETE CASCADE,
    type             text NOT NULL
        CONSTRAINT distribution_overlays_type_check CHECK (type IN ('intro', 'outro')),
    duration_seconds double precision NOT NULL
        CONSTRAINT distribution_overlays_duration_check
        CHECK (duration_seconds > 0 AND duration_seconds <= 3),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, type)
);

CREATE TABLE distribution_platform_status (
    item_id         text NOT NULL REFERENCES distribution_items (id) ON DELETE CASCADE,
    platform        text NOT NULL
        CONSTRAINT distribution_platform_status_platform_check
        CHECK (platform IN ('tiktok', 'instagram', 'youtube', 'snapchat')),
    status          text NOT NULL
        CONSTRAINT distribution_platform_status_status_check
        CHECK (status IN ('pending', 'publishing', 'published', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    next_attempt_at timestamptz,
    post_id         text,
    post_url        text,
    published_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, platform),
    -- a platform counts as published only with its post id in hand
    CONSTRAINT distribution_platform_status_post_check
        CHECK (status <> 'published' OR post_id IS NOT NULL)
);

CREATE TABLE publishing_analytics (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id     text NOT NULL REFERENCES distribution_items (id) ON DELETE CASCADE,
    platform    text
        CONSTRAINT publishing_analytics_platform_check
        CHECK (platform IN ('tiktok', 'instagram', 'youtube', 'snapchat')),
    event_type  text NOT NULL
        CONSTRAINT publishing_analytics_event_type_check
        CHECK (event_type IN ('published', 'failed', 'download')),
    attempt     integer NOT NULL DEFAULT 0,
    post_id     text,
    error       text,
    occurred_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX publishing_analytics_item_idx ON publishing_analytics (item_id);
