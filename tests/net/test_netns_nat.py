"""Real network namespaces: veth pairs, an nftables masquerade NAT, peers as real processes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from netns_harness import LineWatcher, NetnsLab, nat_lab, netns_unavailable_reason

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module", autouse=True)
def _needs_netns() -> None:
    reason = netns_unavailable_reason() if sys.platform.startswith("linux") else "namespaces are Linux-only"
    if reason is not None:
        pytest.skip(reason)


# A plain TCP echo server that prepends the source address it sees (shows the NAT's rewrite).
_ECHO_SERVER = """
import socket, sys
srv = socket.create_server((sys.argv[1], 0))
print("LISTEN", srv.getsockname()[1], flush=True)
while True:
    conn, (ip, port) = srv.accept()
    with conn:
        conn.sendall(f"{ip} ".encode() + conn.recv(64))
"""
_ECHO_CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
        s.sendall(b"ping")
        print("REPLY", s.recv(64).decode(), flush=True)
except OSError as exc:
    print("FAIL", type(exc).__name__, exc, flush=True)
"""


def _echo_server(lab: NetnsLab, ns: str, host: str) -> int:
    proc = lab.python(ns, ["-c", _ECHO_SERVER, host], stdout=subprocess.PIPE)
    return int(LineWatcher(proc).wait_for("LISTEN"))


def _echo_client(lab: NetnsLab, ns: str, host: str, port: int) -> str:
    done = lab.exec(ns, [sys.executable, "-c", _ECHO_CLIENT, host, str(port)])
    return done.stdout.strip()


def test_masquerade_lets_the_nat_host_out_and_nothing_in() -> None:
    with nat_lab() as (lab, topo):
        site = topo.sites[0]
        pub_port = _echo_server(lab, topo.pub_ns, topo.pub_ip)
        # Outbound through the NAT works, and the public side sees the router's address.
        assert _echo_client(lab, site.host_ns, topo.pub_ip, pub_port) == f"REPLY {site.public_ip} ping"
        nat_port = _echo_server(lab, site.host_ns, site.host_ip)
        # Inbound to the private address fails: the public side has no route into the NAT.
        assert _echo_client(lab, topo.pub_ns, site.host_ip, nat_port).startswith("FAIL")
        # Nor does the router's public address forward anything in (no port mapping).
        assert _echo_client(lab, topo.pub_ns, site.public_ip, nat_port).startswith("FAIL")


def test_lab_close_removes_every_namespace_and_process() -> None:
    with nat_lab() as (lab, topo):
        names = list(lab.namespaces)
        _echo_server(lab, topo.pub_ns, topo.pub_ip)
        procs = list(lab.processes)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)
    assert all(p.poll() is not None for p in procs)
