-- Local stacks and tests only: a stand-in for M09's `clips` table, which M31 reads
-- (clip -> campaign) but never owns or writes. The M31 migrations never create it; in a
-- shared environment the real table belongs to M09. Applied by `distribution dev` and the
-- tests (app.cli.migrate_database(stand_in_clips=True)), and by docker-compose's postgres
-- image when its data directory is new (mounted into /docker-entrypoint-initdb.d).
CREATE TABLE IF NOT EXISTS clips (
    id          text PRIMARY KEY,
    campaign_id text NOT NULL
);
