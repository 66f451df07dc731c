-- M31: a platform's live posting cap per account, as the platform last said it (Instagram's
-- content_publishing_limit `quota_total`); it replaces the configured cap when posts are
-- planned.
CREATE TABLE distribution_account_caps (
    influencer_id text NOT NULL,
    platform      text NOT NULL
        CONSTRAINT distribution_account_caps_platform_check
        CHECK (platform IN ('tiktok', 'instagram', 'youtube', 'snapchat')),
    cap           integer NOT NULL CHECK (cap >= 0),
    read_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (influencer_id, platform)
);
