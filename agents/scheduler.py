"""Timer: due scheduled items -> publish-due commands (app/scheduling.py), batch after batch.

Every worker runs it; the database hands each due item to one of them (SKIP LOCKED)."""

from __future__ import annotations

import logging

from app.channels import send_bundled
from app.domain.errors import Unavailable
from app.faust_app import app
from app.scheduling import enqueue_due_items

log = logging.getLogger("distribution.scheduler")


@app.timer(app.settings.scheduler_interval_seconds)
async def scheduler() -> None:
    s = app.settings
    try:
        while True:
            app.vitals.beat("scheduler", stalled_after=max(20 * s.scheduler_interval_seconds, 60))
            taken = await enqueue_due_items(app.pool, s, send_bundled, app.now())
            if taken < s.scheduler_batch_size:
                break  # less than a full batch: nothing more is due now
    except Unavailable as exc:
        log.warning("scheduler waiting for the database", extra={"error": exc.message})
    except Exception:
        log.exception("scheduler round failed")
