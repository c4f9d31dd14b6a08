"""Replication places r verified, pinned copies on Eq. 7's best peers; readers survive a lost holder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from memtransport import MemNetwork

from sedma.errors import ConfigError
from sedma.net.exchange import BlockExchange
from sedma.net.replication import ReplicationConfig, order_candidates, replicate
from sedma.net.selection import Weights
from sedma.net.store import BlockStore
from sedma.net.tensor import chunk_tensor
from sedma.net.types import PeerInfo, PeerStats


class _Peer:
    def __init__(self, net: MemNetwork, root: Path, n: int) -> None:
        self.info = PeerInfo(bytes([0x12, 0x20]) + bytes([n]) * 32, "127.0.0.1", 7100 + n)
        self.store = BlockStore(root / f"p{n}")
        self.ex = BlockExchange(self.store, request=net.request_fn(self.info))
        net.add(self.info, lambda caller, m, body: self.ex.handle(m, body, peer_id=caller))


@pytest.fixture
def swarm(tmp_path: Path) -> tuple[MemNetwork, list[_Peer], list[PeerStats]]:
    net = MemNetwork()
    peers = [_Peer(net, tmp_path, i) for i in range(6)]
    # Peer 0 publishes. Eq. 7 should prefer 3 (idle, close) then 5, then 1; 2 and 4 are loaded and far.
    loads = {
        1: (0.5, 5.0, 8.0),
        2: (0.1, 80.0, 2.0),
        3: (0.9, 1.0, 16.0),
        4: (0.2, 60.0, 1.0),
        5: (0.8, 2.0, 8.0),
    }
    stats = [PeerStats(peers[i].info, *loads[i], xor_distance=10 - i) for i in loads]
    stats.append(PeerStats(peers[0].info, 1.0, 0.1, 64.0, 0))  # self: must never be chosen
    return net, peers, stats


def _publish(peer: _Peer) -> list[str]:
    tb = chunk_tensor(np.arange(30_000, dtype=np.float64), chunk_size=32_768)
    peer.store.put_many(tb.blocks, pin=True)
    return list(tb.blocks)


def _replicate_from_first(swarm: Any, cids: list[str], *, replicas: int) -> Any:
    """Peer 0 places ``replicas`` copies of ``cids`` on Eq. 7's best candidates."""
    net, peers, stats = swarm
    request = net.request_fn(peers[0].info)
    config = ReplicationConfig(replicas=replicas)
    return asyncio.run(
        replicate(cids, source=peers[0].info, candidates=stats, request=request, config=config)
    )


def test_holders_are_eq7_top_r_excluding_self(swarm) -> None:
    _net, peers, _stats = swarm
    cids = _publish(peers[0])
    res = _replicate_from_first(swarm, cids, replicas=2)
    assert [h.port for h in res.holders] == [7103, 7105] and not res.failed
    for i in (3, 5):
        assert peers[i].store.pinned() == set(cids)
    assert len(peers[1].store) == 0


def test_dead_candidate_is_replaced_by_the_next(swarm) -> None:
    net, peers, _stats = swarm
    cids = _publish(peers[0])
    net.kill(peers[3].info.peer_id)
    res = _replicate_from_first(swarm, cids, replicas=2)
    assert sorted(h.port for h in res.holders) == [7101, 7105]
    assert peers[3].info.peer_id in res.failed


def test_reader_survives_loss_of_publisher_and_a_holder(swarm) -> None:
    net, peers, _stats = swarm
    cids = _publish(peers[0])
    res = _replicate_from_first(swarm, cids, replicas=2)
    net.kill(peers[0].info.peer_id)
    net.kill(res.holders[0].peer_id)
    reader = peers[2]
    got = asyncio.run(reader.ex.fetch(cids, [peers[0].info, *res.holders]))
    assert set(got) == set(cids)


def test_strategies_order_candidates_differently(swarm) -> None:
    _, peers, stats = swarm
    me = frozenset({peers[0].info.peer_id})
    adaptive = order_candidates(stats, exclude=me, weights=Weights())
    dht = order_candidates(stats, exclude=me, strategy="dht-only")
    assert adaptive[0].port == 7103 and [p.port for p in dht] == [7105, 7104, 7103, 7102, 7101]
    rnd = order_candidates(stats, exclude=me, strategy="random", rng=np.random.default_rng(0))
    assert sorted(p.port for p in rnd) == [7101, 7102, 7103, 7104, 7105]


def test_more_replicas_than_peers_places_what_it_can(swarm) -> None:
    _net, peers, _stats = swarm
    cids = _publish(peers[0])
    res = _replicate_from_first(swarm, cids, replicas=9)
    assert len(res.holders) == 5


def test_bad_replication_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ReplicationConfig(replicas=-1).validate()
