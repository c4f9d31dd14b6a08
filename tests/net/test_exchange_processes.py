"""Block exchange between real Node processes over real sockets: a provider killed mid-transfer,
a peer serving bytes that do not match their CIDs. The reader is a real Node that finds the
providers through the DHT and fetches through the exchange, as ``sedma get`` does."""

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

from sedma.memory.dual import DualMemory
from sedma.net.exchange import ProviderOutcome
from sedma.net.node import Node, NodeConfig
from sedma.net.types import PeerInfo

PEER = str(Path(__file__).with_name("block_peer.py"))
SRC = str(Path(__file__).resolve().parents[2] / "src")
_SPEC = ["--nbytes", str(8 << 20), "--chunk", str(256 << 10)]  # 32 blocks of 256 KiB


def start_peers(
    tmp: Path, specs: list[list[str]]
) -> tuple[list[subprocess.Popen[bytes]], list[dict[str, Any]]]:
    """Start Node processes (in parallel) and wait for each READY document."""
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


@pytest.fixture(scope="module")
def swarm(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[dict[str, Any]]]]:
    """Three provider Nodes of one tensor (started once, in parallel): a liar and two honest ones."""
    tmp = tmp_path_factory.mktemp("providers")
    procs, docs = start_peers(tmp, [[*_SPEC, "--lie"], _SPEC, _SPEC])
    yield procs, docs
    for p in procs:
        p.kill()
        p.wait()


def _reader(tmp: Path, docs: list[dict[str, Any]], memory: DualMemory) -> Node:
    boot = tuple(f"{d['host']}:{d['port']}" for d in docs)
    return Node(NodeConfig(home=tmp / "reader", ephemeral=True, bootstrap=boot), memory=memory)


def test_provider_killed_mid_transfer_get_completes_from_replica(tmp_path: Path, swarm) -> None:
    procs, (_, a, b) = swarm
    outcomes: list[ProviderOutcome] = []
    memory = DualMemory.open(home=tmp_path)

    async def scenario() -> str:
        async with _reader(tmp_path, [a, b], memory) as reader:
            send, record = reader.exchange.request, reader.exchange.on_outcome
            served_by_a = 0

            async def request(peer: PeerInfo, method: str, body: dict[str, Any]) -> dict[str, Any]:
                nonlocal served_by_a
                reply = await send(peer, method, body)
                if peer.peer_id.hex() == a["peer_id"] and method == "bs.block":
                    served_by_a += 1
                    if served_by_a == 2:  # mid-transfer: A has more blocks in flight
                        procs[1].send_signal(signal.SIGKILL)
                return reply

            def capture(outs: list[ProviderOutcome]) -> None:
                outcomes.extend(outs)
                assert record is not None
                record(outs)

            reader.exchange.request, reader.exchange.on_outcome = request, capture
            arr = await reader.get_tensor(a["manifest"])
            return hashlib.sha256(arr.tobytes()).hexdigest()

    assert asyncio.run(scenario()) == a["sha256"]
    assert procs[1].wait(timeout=5) == -signal.SIGKILL
    dead = [o for o in outcomes if o.peer.peer_id.hex() == a["peer_id"] and o.failed == "dead"]
    assert dead and all(o.blocks < 32 for o in dead)
    assert sum(o.blocks for o in outcomes if o.peer.peer_id.hex() == b["peer_id"]) >= 1
    profile = memory.recall("net", "peer", a["peer_id"])
    assert profile["success_rate"] < 1.0  # the failure is on A's long-term record
    memory.close()


def test_lying_peer_is_detected_discarded_and_penalised(tmp_path: Path, swarm) -> None:
    _, docs = swarm
    liar, honest = docs[0], docs[2]
    memory = DualMemory.open(home=tmp_path)

    async def scenario() -> tuple[str, int, list[str]]:
        async with _reader(tmp_path, [liar, honest], memory) as reader:
            arr = await reader.get_tensor(honest["manifest"])
            await reader.exchange.flush()  # get_tensor stores its blocks after returning the tensor
            stored = [c for c in [honest["manifest"], *honest["blocks"]] if reader.store.get(c) is not None]
            return hashlib.sha256(arr.tobytes()).hexdigest(), reader.stats.penalties, stored

    digest, penalties, stored = asyncio.run(scenario())
    assert digest == honest["sha256"] and penalties >= 1
    assert len(stored) == 1 + len(honest["blocks"])  # every stored block is the genuine one
    assert memory.recall("net", "peer", liar["peer_id"])["success_rate"] < 1.0
    honest_profile = memory.recall("net", "peer", honest["peer_id"])
    assert honest_profile is None or honest_profile["success_rate"] == 1.0
    memory.close()
