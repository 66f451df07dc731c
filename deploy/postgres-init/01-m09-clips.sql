-- Local stacks only: a stand-in for M09's `clips` table, which M31 reads (clip -> campaign)
-- but never owns or writes. The M31 migrations never create it; in a shared environment the
-- real table belongs to M09. Run once by the postgres image when its data directory is new.
CREATE TABLE IF NOT EXISTS clips (
    id          text PRIMARY KEY,
    campaign_id text NOT NULL
);
