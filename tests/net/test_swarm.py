"""A swarm of 32 peers in 4 real processes (8 per event loop) on loopback, driven over TCP."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sedma.net import NodeClient

PROCS, PER_PROC = 4, 8
CLI = [sys.executable, "-m", "sedma.cli"]


def _read_lines(proc: subprocess.Popen[str], n: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < n:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"peer process gave {len(lines)}/{n} addresses: {_logs(proc)[-5:]}")
        line = proc.stdout.readline()
        if line.strip():
            lines.append(line.strip())
    return lines


def _spawn(args: list[str], home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SEDMA_HOME": str(home)}
    # Logs go to a file: an unread stderr pipe would block a chatty peer once it fills up.
    path = home / f"peer-{time.monotonic_ns()}.log"
    with path.open("w") as log:
        proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    _LOG_FILES[proc.pid] = path
    return proc


_LOG_FILES: dict[int, Path] = {}


def _logs(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    lines = _LOG_FILES[proc.pid].read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("swarm-home")
    first = _spawn(["swarm", "--nodes", str(PER_PROC)], home)
    procs = [first]
    try:
        addrs = [_read_lines(first, PER_PROC, 60)]
        procs += [
            _spawn(["swarm", "--nodes", str(PER_PROC), "--bootstrap", addrs[0][i]], home)
            for i in range(PROCS - 1)
        ]
        addrs += [_read_lines(p, PER_PROC, 90) for p in procs[1:]]
        yield {"procs": procs, "addrs": addrs, "home": home}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _client(addr: str) -> NodeClient:
    host, port = addr.rsplit(":", 1)
    return NodeClient(host, int(port), timeout=20)


async def _put(addr: str, arr: np.ndarray[Any, Any], replicas: int) -> str:
    async with _client(addr) as c:
        cid, holders = await c.put(arr, replicas=replicas)
        assert len(holders) == replicas
        return cid


async def _get(addr: str, cid: str) -> np.ndarray[Any, Any]:
    async with _client(addr) as c:
        return await c.get(cid)


async def _locate(addr: str, cid: str) -> dict[str, Any]:
    async with _client(addr) as c:
        return await c.locate(cid)


def test_every_put_is_gettable_from_every_one_of_32_peers(swarm: dict[str, Any]) -> None:
    everyone = [a for group in swarm["addrs"] for a in group]
    assert len(set(everyone)) == PROCS * PER_PROC
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((64, 300)).astype(np.float32), rng.integers(0, 9, (5, 7, 11))]
    publishers = [swarm["addrs"][1][2], swarm["addrs"][3][5]]

    async def main() -> None:
        cids = [await _put(p, a, 1) for p, a in zip(publishers, arrays, strict=True)]
        swarm["cids"], swarm["publishers"] = cids, publishers
        sem = asyncio.Semaphore(8)

        async def check(addr: str, cid: str, arr: np.ndarray[Any, Any]) -> None:
            async with sem:
                got = await _get(addr, cid)
            assert got.dtype == arr.dtype and np.array_equal(got, arr), f"{addr} returned a wrong tensor"

        await asyncio.gather(
            *(check(a, c, arr) for a in everyone for c, arr in zip(cids, arrays, strict=True))
        )

    asyncio.run(main())


def test_provider_lookups_stay_within_log2_n_hops_and_find_every_provider(swarm: dict[str, Any]) -> None:
    everyone = [a for group in swarm["addrs"] for a in group]
    bound = math.ceil(math.log2(len(everyone))) + 1

    async def main() -> list[dict[str, Any]]:
        return [await _locate(a, swarm["cids"][0]) for a in everyone]

    answers = asyncio.run(main())
    for addr, ans in zip(everyone, answers, strict=True):
        assert ans["hops"] <= bound, f"{addr}: {ans['hops']} hops > {bound}"
        # Publisher plus its replica (a reader that fetched is not a provider).
        assert swarm["publishers"][0] in ans["providers"] or addr == swarm["publishers"][0]
        assert len(ans["providers"]) >= (1 if addr == swarm["publishers"][0] else 2)


def test_cli_put_get_peers_against_the_swarm(swarm: dict[str, Any], tmp_path: Path) -> None:
    node, other = swarm["addrs"][0][1], swarm["addrs"][2][6]
    arr = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    np.save(tmp_path / "x.npy", arr)
    env = {**os.environ, "SEDMA_HOME": str(swarm["home"])}
    put = subprocess.run(
        [*CLI, "put", str(tmp_path / "x.npy"), "--node", node, "--replicas", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert put.returncode == 0, put.stderr
    cid = put.stdout.strip()
    assert cid.startswith("b") and len(cid.splitlines()) == 1
    got = subprocess.run(
        [*CLI, "get", cid, "--node", other, "-o", str(tmp_path / "y.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert got.returncode == 0, got.stderr
    assert np.array_equal(np.load(tmp_path / "y.npy"), arr)
    peers = subprocess.run(
        [*CLI, "peers", "--node", other, "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    doc = json.loads(peers.stdout)
    assert doc["self"]["addr"] == other and len(doc["peers"]) >= 8
    assert {"peer_id", "addr", "availability", "rtt_ms", "mem_free_gb", "score"} <= set(doc["peers"][0])
    bad = subprocess.run(
        [*CLI, "get", "bafy-not-a-cid", "--node", other, "-o", str(tmp_path / "z.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_lookups_stay_fast_and_complete_with_a_quarter_of_the_peers_killed(swarm: dict[str, Any]) -> None:
    # Runs last: it kills one of the four processes (8 of 32 peers) for good.
    victim = swarm["procs"][2]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    alive = [a for i, group in enumerate(swarm["addrs"]) if i != 2 for a in group]

    async def main() -> list[dict[str, Any]]:
        return [await _locate(a, swarm["cids"][1]) for a in alive]

    answers = asyncio.run(main())
    worst = max(a["ms"] for a in answers)
    assert worst < 1000.0, f"a look-up took {worst:.0f} ms with 25% of peers dead"
    # The publisher lives in a surviving process: every look-up must still name it.
    assert all(swarm["publishers"][1] in a["providers"] for a in answers)


def test_node_start_serves_metrics_and_shuts_down_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    proc = _spawn(["node", "start", "--listen", "127.0.0.1:0", "--metrics-port", str(metrics_port)], tmp_path)
    try:
        addr = _read_lines(proc, 1, 30)[0]
        assert addr.startswith("127.0.0.1:")
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert (
            f'sedma_net_known_peers{{node="{addr}"}} 0.0' in body
            and "# TYPE sedma_net_gets_total counter" in body
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert any("shutting down" in rec["msg"] for rec in _logs(proc))
        assert (tmp_path / "net" / "identity.ed25519").stat().st_mode & 0o777 == 0o600
    finally:
        proc.kill()
        proc.wait()


def _free_run(n: int) -> int:
    """A base port with n free ports after it, below Linux's ephemeral range (32768+) so that no
    outgoing connection elsewhere in the run can take one between this check and the bind."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(20000, 32000 - n)
        socks = [socket.socket() for _ in range(n)]
        try:
            for i, s in enumerate(socks):
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no run of {n} free ports in 20000..32000")


def test_swarm_port_base_puts_peers_on_consecutive_ports(tmp_path: Path) -> None:
    base = _free_run(2)
    proc = _spawn(["swarm", "--nodes", "2", "--port-base", str(base)], tmp_path)
    try:
        assert _read_lines(proc, 2, 30) == [f"127.0.0.1:{base}", f"127.0.0.1:{base + 1}"]
    finally:
        proc.kill()
        proc.wait()
