"""A real aiohttp server on a free loopback port, run in the caller's event loop (`async
with`) or in a thread of its own (`with`, or `start_in_thread`): the development broker's
object store (app/broker_storage.py) and every fake neighbour (fakes/) are one."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

#: The largest request body a fake takes (a Snapchat part is up to 32 MiB, encrypted).
MAX_BODY_BYTES = 64 * 1024 * 1024


class LoopbackServer:
    """Subclasses add their routes in `add_routes`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None  # set when stopping: hanging handlers end
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} is not started")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        if self._runner is not None:
            raise RuntimeError(f"{self.name} is already started")
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        self.add_routes(app)
        runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True,
                               shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        return self.url

    async def stop(self) -> None:
        if self._runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()  # hanging handlers return at once
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def hang(self, seconds: float) -> None:
        """Say nothing for `seconds`, or until the server stops."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> str:
        """Run the server in its own event loop on a daemon thread; returns its URL."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running in a thread")
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            return asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout)
        except BaseException:
            self.stop_thread(timeout)
            raise

    def stop_thread(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if not loop.is_closed():
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout)
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._loop = self._thread = None

    def __enter__(self):
        self.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()
