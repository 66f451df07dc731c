"""Leader timer: forget Idempotency-Keys, applied-command records and published outbox rows
past their retention.

Keys are kept `DISTRIBUTION_IDEMPOTENCY_KEY_TTL_HOURS` (24 h). Applied commands are kept
`DISTRIBUTION_PROCESSED_COMMANDS_RETENTION_HOURS`, which the settings check makes longer
than the topics' retention: a replay reads only what the commands topic still holds, and
every such command is still remembered, so a replay applies nothing twice. Outbox rows go
`DISTRIBUTION_OUTBOX_RETENTION_HOURS` after they were published, never before: until then
their event may not be on the topic.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from app.db.idempotency import prune
from app.db.outbox import prune_published
from app.domain.errors import Unavailable
from app.faust_app import app

log = logging.getLogger("distribution.housekeeping")


@app.timer(app.settings.housekeeping_interval_seconds, on_leader=True)
async def housekeeping() -> None:
    s, now = app.settings, app.now()
    try:
        keys, commands = await prune(
            app.pool, now, timedelta(hours=s.idempotency_key_ttl_hours),
            timedelta(hours=s.processed_commands_retention_hours))
        outbox = await prune_published(app.pool, now - timedelta(hours=s.outbox_retention_hours))
    except Unavailable as exc:
        log.warning("housekeeping waiting for the database", extra={"error": exc.message})
        return
    if keys or commands or outbox:
        log.info("retention applied", extra={"idempotency_keys_deleted": keys,
                                             "processed_commands_deleted": commands,
                                             "outbox_rows_deleted": outbox})
