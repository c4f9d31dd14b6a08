"""Real network namespaces: veth pairs, an nftables masquerade NAT, peers as real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nat_procs import addr_arg, dial_in, start_in
from netns_harness import LineWatcher, NatTopology, NetnsLab, nat_lab, netns_unavailable_reason

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
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
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


_LAB_THEN_SLEEP = """
import sys, time
sys.path.insert(0, sys.argv[1])
from netns_harness import nat_lab
with nat_lab() as (lab, topo):
    lab.python(topo.pub_ns, ["-c", "import time; time.sleep(60)"])
    print("UP", " ".join(lab.namespaces), flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_namespaces_are_removed_when_the_test_process_is_terminated_or_killed(sig: int) -> None:
    here = str(Path(__file__).parent)
    proc = subprocess.Popen([sys.executable, "-c", _LAB_THEN_SLEEP, here], stdout=subprocess.PIPE)
    names = LineWatcher(proc).wait_for("UP").split()
    proc.send_signal(sig)
    proc.wait(timeout=10)
    if sig == signal.SIGKILL:  # nothing ran in the dead process: the next lab sweeps its leftovers
        NetnsLab().close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert names and not any(name in listed for name in names)


# -- peers as real processes: relay and public dialer in "pub", targets behind NAT routers -----------
@pytest.fixture(scope="module")
def cone_nat() -> Iterator[tuple[NetnsLab, NatTopology, dict[str, Any], dict[str, Any]]]:
    """Two port-preserving masquerade NATs; the target sits behind the first."""
    yield from _swarm(random_ports=False)


@pytest.fixture(scope="module")
def symmetric_nat() -> Iterator[tuple[NetnsLab, NatTopology, dict[str, Any], dict[str, Any]]]:
    """Two NATs that pick a random port per destination (``masquerade random``)."""
    yield from _swarm(random_ports=True)


def _swarm(*, random_ports: bool) -> Iterator[tuple[NetnsLab, NatTopology, dict[str, Any], dict[str, Any]]]:
    with nat_lab(sites=2, random_ports=random_ports) as (lab, topo):
        relay = start_in(lab, topo.pub_ns, ["relay", "--host", topo.pub_ip])
        site = topo.sites[0]
        # A full node (DHT, block store, exchange) behind the NAT, holding a 2.3 MiB tensor. It
        # is told only the relay node's RPC address: the dial-back fails through the NAT, so it
        # discovers the relay there and reserves a slot by itself.
        bootstrap = f"{relay['peer_id']}:{relay['host']}:{relay['rpc_port']}"
        target = start_in(
            lab, site.host_ns, ["target", "--node", "--host", site.host_ip, "--bootstrap", bootstrap]
        )
        yield lab, topo, relay, target


def test_direct_dial_into_the_nat_fails_and_the_relay_carries_rpc_and_a_tensor(
    cone_nat: tuple[NetnsLab, NatTopology, dict[str, Any], dict[str, Any]],
) -> None:
    lab, topo, relay, target = cone_nat
    assert target["host"] == topo.sites[0].host_ip
    assert target["observed"][0] == topo.sites[0].public_ip  # the relay saw the NAT's address
    direct = dial_in(lab, topo.pub_ns, ["--direct-only", "--target", addr_arg(target)])
    assert direct["ok"] is False and "unreachable" in direct["error"]
    args = ["--relay", addr_arg(relay), "--target", addr_arg(target), "--manifest", target["manifest"]]
    via = dial_in(lab, topo.pub_ns, [*args, "--no-punch"])
    assert via["ok"] is True, via
    assert via["proven_peer_id"] == target["peer_id"]  # end-to-end handshake through the relay
    assert via["echo"] == "ping" and via["path"] == "relay" and via["target_paths"][-1] == "relay"
    assert via["sha256"] == target["sha256"]
    # A full node fetches the tensor with the block exchange over the same kind of circuit.
    node = dial_in(lab, topo.pub_ns, [*args, "--no-punch", "--node", "--host", topo.pub_ip])
    assert node["ok"] is True, node
    assert node["path"] == "relay" and node["proven_peer_id"] == target["peer_id"]
    assert node["sha256"] == target["sha256"] and node["bytes_in"] >= 3 * 200_000 * 4


def test_public_peer_upgrades_to_a_direct_connection_the_nated_peer_opens(
    cone_nat: tuple[NetnsLab, NatTopology, dict[str, Any], dict[str, Any]],
) -> None:
    lab, topo, relay, target = cone_nat
    args = ["--relay", addr_arg(relay), "--target", addr_arg(target), "--manifest", target["manifest"]]
    result = dial_in(lab, topo.pub_ns, args)
    assert result["ok"] is True, result
    assert result["path"] == "holepunch" and result["target_paths"][-1] == "holepunch"
    assert result["sha256"] == target["sha256"]


def test_hole_punching_through_two_port_preserving_nats(
    cone_nat: tuple[NetnsLab, NatTopology, dict[str, Any], dict[str, Any]],
) -> None:
    lab, topo, relay, target = cone_nat
    args = ["--relay", addr_arg(relay), "--target", addr_arg(target), "--manifest", target["manifest"]]
    result = dial_in(lab, topo.sites[1].host_ns, args)
    assert result["ok"] is True, result
    assert result["path"] == "holepunch" and result["target_paths"][-1] == "holepunch"
    assert result["proven_peer_id"] == target["peer_id"]
    assert result["sha256"] == target["sha256"]


def test_symmetric_nats_defeat_hole_punching_and_the_relay_is_kept(
    symmetric_nat: tuple[NetnsLab, NatTopology, dict[str, Any], dict[str, Any]],
) -> None:
    lab, topo, relay, target = symmetric_nat
    args = ["--relay", addr_arg(relay), "--target", addr_arg(target), "--manifest", target["manifest"]]
    result = dial_in(lab, topo.sites[1].host_ns, args)
    assert result["ok"] is True, result
    assert result["path"] == "relay" and result["target_paths"][-1] == "relay"
    assert result["proven_peer_id"] == target["peer_id"]
    assert result["sha256"] == target["sha256"]
