"""`sedma node start` behind a real NAT: the node reserves on a relay and is reachable by itself.

Three node processes started exactly as a user would (`python -m sedma.cli node start`): a relay
node and a public node in the "internet" namespace, and a node behind an nftables masquerade
NAT that is given nothing but the relay node's address. No test code wires a route, a relay or
a reservation: the NATed node finds out it cannot be dialled (AutoNAT dial-back), reserves a
slot, advertises its relay in the DHT, and tensors move both ways through the ordinary
`sedma put` / `sedma get` commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from netns_harness import LineWatcher, NatTopology, NetnsLab, nat_lab, netns_unavailable_reason

pytestmark = pytest.mark.netns
SRC = str(Path(__file__).resolve().parents[2] / "src")
CLI = [sys.executable, "-m", "sedma.cli"]
METRICS_PORT = 9464  # namespaces are private: the port is free in each of them


@pytest.fixture(scope="module", autouse=True)
def _needs_netns() -> None:
    reason = netns_unavailable_reason() if sys.platform.startswith("linux") else "namespaces are Linux-only"
    if reason is not None:
        pytest.skip(reason)


@dataclass(frozen=True)
class Running:
    """The lab and the three started nodes' addresses (``HOST:PORT``)."""

    lab: NetnsLab
    topo: NatTopology
    relay: str
    public: str
    nated: str
    nated2: str  # behind a second NAT: both ends of its transfers are NATed
    work: Path
    symmetric: bool


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH", "")) if p)
    env["SEDMA_HOME"] = str(home)
    return env


def _start(lab: NetnsLab, ns: str, home: Path, args: list[str]) -> str:
    """`sedma node start ARGS` inside ``ns`` with its own home; returns the address it prints."""
    home.mkdir(parents=True)
    with (home / "node.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = lab.spawn(
            ns, [*CLI, "node", "start", *args], env=_env(home), stdout=subprocess.PIPE, stderr=log
        )
    try:
        return "10.200." + LineWatcher(proc).wait_for("10.200.", timeout=40)
    except RuntimeError as exc:
        raise AssertionError(f"{exc}\n{(home / 'node.log').read_text()[-3000:]}") from None


def _cli(lab: NetnsLab, ns: str, work: Path, args: list[str]) -> str:
    """One `sedma ...` client command inside ``ns``; its stdout (fails the test on exit != 0)."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *CLI, *args],
        capture_output=True,
        text=True,
        env=_env(work / "client"),
        timeout=60,
    )
    assert done.returncode == 0, f"sedma {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def _metrics(lab: NetnsLab, ns: str, host: str) -> dict[str, float]:
    url = f"http://{host}:{METRICS_PORT}/metrics"
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    text = lab.exec(ns, [sys.executable, "-c", code]).stdout
    return {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


@pytest.fixture(scope="module", params=["cone", "symmetric"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Port-preserving NATs (hole punching works) or symmetric ones (the relay stays)."""
    work = tmp_path_factory.mktemp("netns-node")
    with nat_lab(sites=2, random_ports=request.param == "symmetric") as (lab, topo):
        pub, site, site2 = topo.pub_ns, topo.sites[0], topo.sites[1]
        relay = _start(lab, pub, work / "relay", ["--listen", f"{topo.pub_ip}:0", "--relay"])
        nated = _start(
            lab,
            site.host_ns,
            work / "nated",
            ["--listen", f"{site.host_ip}:0", "--bootstrap", relay, "--metrics-port", str(METRICS_PORT)],
        )
        public = _start(
            lab,
            pub,
            work / "public",
            ["--listen", f"{topo.pub_ip}:0", "--bootstrap", relay, "--metrics-port", str(METRICS_PORT)],
        )
        nated2 = _start(
            lab,
            site2.host_ns,
            work / "nated2",
            ["--listen", f"{site2.host_ip}:0", "--bootstrap", relay, "--metrics-port", str(METRICS_PORT)],
        )
        yield Running(lab, topo, relay, public, nated, nated2, work, request.param == "symmetric")


def _by_path(metrics: dict[str, float], path: str) -> float:
    """Connections that took ``path``: outbound (last per peer) and inbound circuits."""
    return metrics[f"sedma_net_nat_out_{path}"] + metrics[f"sedma_net_nat_in_{path}_total"]


def _peers(r: Running, ns: str, node: str) -> dict[str, Any]:
    return dict(json.loads(_cli(r.lab, ns, r.work, ["peers", "--json", "--node", node])))


def _put(r: Running, ns: str, node: str, arr: np.ndarray[Any, Any], name: str) -> str:
    path = r.work / f"{name}.npy"
    np.save(path, arr, allow_pickle=False)
    return _cli(r.lab, ns, r.work, ["put", str(path), "--node", node, "--replicas", "0"]).strip()


def _get(r: Running, ns: str, node: str, cid: str, name: str) -> np.ndarray[Any, Any]:
    out = r.work / f"{name}.npy"
    _cli(r.lab, ns, r.work, ["get", cid, "--node", node, "-o", str(out)])
    return np.asarray(np.load(out, allow_pickle=False))


def test_nated_node_reserves_on_the_relay_and_the_dht_carries_its_relayed_address(running: Running) -> None:
    r = running
    relay_self = _peers(r, r.topo.pub_ns, r.relay)["self"]
    nated_self = _peers(r, r.topo.sites[0].host_ns, r.nated)["self"]
    assert relay_self["relay"] is not None and relay_self["reservation"] is None
    # The NATed node found the relay by itself and holds a slot there.
    assert nated_self["addr"] == r.nated and nated_self["reservation"] == relay_self["relay"]
    assert (
        _metrics(r.lab, r.topo.sites[0].host_ns, r.topo.sites[0].host_ip)["sedma_net_nat_reservations"] == 1
    )
    # The public node (which only ever talked to the relay node when it joined) knows the
    # NATed peer with its relay, from the DHT.
    rows = {p["addr"]: p for p in _peers(r, r.topo.pub_ns, r.public)["peers"]}
    assert rows[r.nated]["relay"] == relay_self["relay"]
    assert rows[r.relay]["relay"] is None


def test_public_node_gets_a_tensor_the_nated_node_published(running: Running) -> None:
    r = running
    arr = np.random.default_rng(5).standard_normal((3, 150_000)).astype(np.float32)  # 1.7 MiB
    cid = _put(r, r.topo.sites[0].host_ns, r.nated, arr, "from-nated")
    got = _get(r, r.topo.pub_ns, r.public, cid, "at-public")
    assert got.dtype == arr.dtype and np.array_equal(got, arr)
    paths = _metrics(r.lab, r.topo.pub_ns, r.topo.pub_ip)
    # The direct dial into the NAT cannot work: the public node went through the relay (and
    # may have upgraded by hole punching: the NATed side's own SYN reaches a public peer).
    assert _by_path(paths, "relay") + _by_path(paths, "holepunch") >= 1


def test_nated_node_gets_a_tensor_a_public_node_published(running: Running) -> None:
    r = running
    arr = np.arange(300_000, dtype=np.int32).reshape(600, 500)
    cid = _put(r, r.topo.pub_ns, r.public, arr, "from-public")
    got = _get(r, r.topo.sites[0].host_ns, r.nated, cid, "at-nated")
    assert got.dtype == arr.dtype and np.array_equal(got, arr)


def test_a_node_behind_another_nat_gets_a_tensor_the_first_nated_node_published(running: Running) -> None:
    r = running
    site, site2 = r.topo.sites
    arr = np.random.default_rng(9).integers(0, 255, size=(1200, 1000), dtype=np.uint8)
    cid = _put(r, site.host_ns, r.nated, arr, "nated-to-nated")
    got = _get(r, site2.host_ns, r.nated2, cid, "at-nated2")
    assert np.array_equal(got, arr)
    paths = _metrics(r.lab, site2.host_ns, site2.host_ip)
    assert paths["sedma_net_nat_reservations"] == 1
    if r.symmetric:  # a fresh port per destination: the punch cannot work, the relay stays
        assert _by_path(paths, "relay") >= 1 and _by_path(paths, "holepunch") == 0
    else:  # port-preserving NATs on both sides: the relayed circuit was upgraded
        assert _by_path(paths, "holepunch") >= 1
