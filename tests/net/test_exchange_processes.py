"""Block exchange between real processes over real sockets: a provider killed mid-transfer, a liar."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netns_harness import LineWatcher

from sedma.net.exchange import BlockExchange, ProviderOutcome
from sedma.net.identity import Identity
from sedma.net.rpc import RpcEndpoint
from sedma.net.store import BlockStore
from sedma.net.tensor import Manifest, assemble_tensor
from sedma.net.transport import TcpTransport
from sedma.net.types import PeerInfo

_KILL_SPEC = ["--nbytes", str(8 << 20), "--chunk", str(256 << 10)]  # 32 blocks
PEER = str(Path(__file__).with_name("block_peer.py"))
SRC = str(Path(__file__).resolve().parents[2] / "src")


def start_peers(
    tmp: Path, specs: list[list[str]]
) -> tuple[list[subprocess.Popen[bytes]], list[dict[str, Any]]]:
    """Start block peers (in parallel) and wait for each READY document."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, PEER, "--store", str(tmp / f"peer{i}"), *extra], stdout=subprocess.PIPE, env=env
        )
        for i, extra in enumerate(specs)
    ]
    docs = [json.loads(LineWatcher(p).wait_for("READY", timeout=30)) for p in procs]
    return procs, docs


def info(doc: dict[str, Any], host: str | None = None, port: int | None = None) -> PeerInfo:
    return PeerInfo(bytes.fromhex(doc["peer_id"]), host or doc["host"], port or doc["port"])


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


async def _get_tensor(exchange: BlockExchange, manifest_cid: str, providers: list[PeerInfo]) -> str:
    manifest = Manifest.from_block((await exchange.fetch([manifest_cid], providers))[manifest_cid])
    blocks = await exchange.fetch(manifest.blocks, providers)
    return hashlib.sha256(assemble_tensor(manifest, blocks).tobytes()).hexdigest()


def test_provider_killed_mid_transfer_get_completes_from_replica(tmp_path: Path, procs: list) -> None:
    started, (a, b) = start_peers(tmp_path, [_KILL_SPEC, _KILL_SPEC])
    procs.extend(started)
    outcomes: list[ProviderOutcome] = []
    served_by_a = 0

    async def scenario() -> str:
        endpoint = RpcEndpoint(Identity.generate(), TcpTransport())

        async def request(peer: PeerInfo, method: str, body: dict[str, Any]) -> dict[str, Any]:
            nonlocal served_by_a
            reply = await endpoint.request(peer, method, body)
            if peer.peer_id.hex() == a["peer_id"] and method == "bs.block":
                served_by_a += 1
                if served_by_a == 1:
                    started[0].send_signal(signal.SIGKILL)  # mid-transfer: the rest are in flight
            return reply

        ex = BlockExchange(BlockStore(tmp_path / "reader"), request=request, on_outcome=outcomes.extend)
        try:
            manifest = Manifest.from_block((await ex.fetch([a["manifest"]], [info(b)]))[a["manifest"]])
            blocks = await ex.fetch(manifest.blocks, [info(a), info(b)])
            return hashlib.sha256(assemble_tensor(manifest, blocks).tobytes()).hexdigest()
        finally:
            await endpoint.close()

    assert asyncio.run(scenario()) == a["sha256"]
    assert started[0].wait(timeout=5) == -signal.SIGKILL
    by_peer = {o.peer.peer_id.hex(): o for o in outcomes}
    assert by_peer[a["peer_id"]].failed == "dead" and 1 <= by_peer[a["peer_id"]].blocks < 32
    assert by_peer[b["peer_id"]].failed is None and by_peer[b["peer_id"]].blocks >= 1


def test_lying_peer_is_detected_and_penalised(tmp_path: Path, procs: list) -> None:
    started, (liar, honest) = start_peers(
        tmp_path, [["--nbytes", str(3 << 20), "--lie"], ["--nbytes", str(3 << 20)]]
    )
    procs.extend(started)
    penalties: list[tuple[PeerInfo, str]] = []

    async def scenario() -> str:
        endpoint = RpcEndpoint(Identity.generate(), TcpTransport())
        store = BlockStore(tmp_path / "reader")
        ex = BlockExchange(
            store, request=endpoint.request, on_penalty=lambda p, why: penalties.append((p, why))
        )
        try:
            return await _get_tensor(ex, honest["manifest"], [info(liar), info(honest)])
        finally:
            await endpoint.close()

    assert asyncio.run(scenario()) == honest["sha256"]
    assert penalties and {p.peer_id.hex() for p, _ in penalties} == {liar["peer_id"]}  # once per get
    assert "not matching" in penalties[0][1]
