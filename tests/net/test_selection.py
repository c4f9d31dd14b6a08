"""Eq. 7 peer selection and the dht-only / random baselines."""

from __future__ import annotations

import numpy as np
import pytest

from sedma.errors import ConfigError
from sedma.net.selection import SelectionConfig, Weights, feature_matrix, rank, scores, select
from sedma.net.types import PeerInfo, PeerStats


def _peer(i: int, *, avail: float, rtt: float, mem: float, xor: int) -> PeerStats:
    return PeerStats(PeerInfo(bytes([i]) * 34, "127.0.0.1", 9000 + i), avail, rtt, mem, xor)


@pytest.fixture
def peers() -> list[PeerStats]:
    return [
        _peer(0, avail=0.1, rtt=50.0, mem=1.0, xor=1),  # closest in XOR, slow and busy
        _peer(1, avail=0.9, rtt=1.0, mem=8.0, xor=3),  # the best on every feature
        _peer(2, avail=0.5, rtt=5.0, mem=4.0, xor=2),
        _peer(3, avail=1.0, rtt=200.0, mem=64.0, xor=4),  # idle and roomy but far away
    ]


def test_features_are_normalised_per_decision(peers: list[PeerStats]) -> None:
    f = feature_matrix(peers)
    np.testing.assert_allclose(f[:, 1], [1 / 50, 1.0, 1 / 5, 1 / 200])  # min_rtt / rtt
    np.testing.assert_allclose(f[:, 2], [1 / 64, 8 / 64, 4 / 64, 1.0])
    assert f.min() >= 0 and f.max() <= 1


def test_scores_are_the_weighted_sum_of_eq7(peers: list[PeerStats]) -> None:
    f = feature_matrix(peers)
    np.testing.assert_allclose(scores(f, Weights(2, 3, 0.5)), f @ np.array([2, 3, 0.5]))


def test_adaptive_topk_orders_by_score(peers: list[PeerStats]) -> None:
    chosen = select(peers, config=SelectionConfig(k=2), weights=Weights(0.1, 1, 0))
    assert [s.peer.port for s in chosen] == [9001, 9002]


def test_weights_change_the_choice(peers: list[PeerStats]) -> None:
    memory_first = select(peers, config=SelectionConfig(k=1), weights=Weights(0, 0, 1))
    assert memory_first[0].peer.port == 9003


def test_dht_only_is_xor_order_regardless_of_load(peers: list[PeerStats]) -> None:
    assert rank(peers, strategy="dht-only") == [0, 2, 1, 3]


def test_random_is_seeded_and_covers_everyone(peers: list[PeerStats]) -> None:
    a = rank(peers, strategy="random", rng=np.random.default_rng(7))
    b = rank(peers, strategy="random", rng=np.random.default_rng(7))
    assert a == b and sorted(a) == [0, 1, 2, 3]
    firsts = {rank(peers, strategy="random", rng=np.random.default_rng(s))[0] for s in range(40)}
    assert firsts == {0, 1, 2, 3}


def test_exclude_removes_self(peers: list[PeerStats]) -> None:
    chosen = select(peers, config=SelectionConfig(k=4), exclude=frozenset({peers[1].peer.peer_id}))
    assert peers[1] not in chosen and len(chosen) == 3


def test_garbage_features_do_not_break_scoring() -> None:
    odd = [
        _peer(0, avail=float("nan"), rtt=0.0, mem=-3.0, xor=0),
        _peer(1, avail=2.0, rtt=1e9, mem=0.0, xor=1),
    ]
    f = feature_matrix(odd)
    assert np.isfinite(f).all() and f.min() >= 0 and f.max() <= 1


@pytest.mark.parametrize("cfg", [SelectionConfig(strategy="best"), SelectionConfig(k=0)])
def test_bad_config_is_a_config_error(cfg: SelectionConfig) -> None:
    with pytest.raises(ConfigError):
        cfg.validate()
