"""Outbox rows -> distribution.published / distribution.failed (app/relay.py), woken by
the command agent when a command wrote some, backing off while the broker or the database
is away."""

from __future__ import annotations

from app.channels import send
from app.faust_app import app
from app.relay import relay_outbox

from .looping import run_rounds

MAX_BACKOFF_SECONDS = 10.0


@app.task
@app.vitals.watch("outbox relay")
async def outbox_relay() -> None:
    await run_rounds("outbox relay", lambda: relay_outbox(app.pool, app.settings, send),
                     app.relay_wakeup, app.settings.outbox_interval_seconds,
                     max_backoff=MAX_BACKOFF_SECONDS)
