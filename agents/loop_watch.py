"""The event loop's ticker and watchdog (app/liveness.py), for /healthz and /metrics."""

from __future__ import annotations

from app.faust_app import app


@app.task
async def watch_event_loop() -> None:
    await app.loop_watch.run()
