"""The port a test server is given must not be taken by a client's connection before the
server binds it: it comes from outside the range the kernel hands to outgoing connections."""

from __future__ import annotations

import socket
from pathlib import Path

from app import embedded
from app.embedded import free_port


def test_a_free_port_can_be_bound_and_is_never_one_the_kernel_gives_a_client():
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(50)]
    assert not [p for p in ports if low <= p <= high]
    assert len(set(ports)) > 40  # picked at random: parallel tests rarely pick the same
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_something_listens_on_is_not_given_out(monkeypatch):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", free_port()))
        listening.listen()
        taken, free = listening.getsockname()[1], free_port()
        monkeypatch.setattr(embedded, "PORTS_PICKED_FROM", [taken, free])
        assert {free_port() for _ in range(50)} == {free}
