"""Eq. 8–9 weight adaptation: the surrogate's gradient, AdamW vs static steps, LTM persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sedma.errors import ConfigError
from sedma.memory.dual import DualMemory
from sedma.net.exchange import ProviderOutcome
from sedma.net.selection import Weights, feature_matrix, rank
from sedma.net.types import PeerInfo, PeerStats
from sedma.net.weights import (
    Decision,
    WeightConfig,
    WeightLearner,
    _stack,
    decision_from_outcomes,
    make_decision,
    success_rate_and_grad,
    updates_to_converge,
)


def _swarm(rng: np.random.Generator, n: int = 5) -> tuple[list[PeerStats], np.ndarray]:
    """Random candidates and their true transfer times: latency dominates, busy CPUs slow a bit."""
    stats, times = [], []
    for i in range(n):
        avail, rtt, mem = rng.uniform(0, 1), rng.uniform(0.5, 50), rng.uniform(0.5, 32)
        stats.append(PeerStats(PeerInfo(bytes([i]) * 34, "127.0.0.1", 1 + i), avail, rtt, mem, i))
        times.append(20 * rtt + 30 * (1 - avail) + rng.exponential(5))
    return stats, np.array(times)


def _all_done(stats: list[PeerStats], times: np.ndarray) -> dict[bytes, tuple[bool, float]]:
    return {s.peer.peer_id: (True, float(t)) for s, t in zip(stats, times, strict=True)}


def _decisions(seed: int, count: int) -> list[tuple[list[PeerStats], np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [_swarm(rng) for _ in range(count)]


def _pick_accuracy(weights: Weights, trials: list[tuple[list[PeerStats], np.ndarray]]) -> float:
    hits = [rank(s, strategy="adaptive", weights=weights)[0] == int(np.argmin(t)) for s, t in trials]
    return float(np.mean(hits))


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    decisions = [Decision(rng.uniform(size=(4, 3)), rng.integers(0, 2, 4).astype(float)) for _ in range(6)]
    feats, labels, mask = _stack(decisions)
    w = np.array([0.7, 1.3, 0.4])
    _, grad = success_rate_and_grad(w, feats, labels, mask, temperature=5.0)
    eps = 1e-6
    for j in range(3):
        dw = np.eye(3)[j] * eps
        hi, _ = success_rate_and_grad(w + dw, feats, labels, mask, temperature=5.0)
        lo, _ = success_rate_and_grad(w - dw, feats, labels, mask, temperature=5.0)
        assert grad[j] == pytest.approx((hi - lo) / (2 * eps), rel=1e-4, abs=1e-8)


def test_labels_mark_completed_within_slack_of_fastest() -> None:
    stats, _ = _swarm(np.random.default_rng(0), 4)
    ids = [s.peer.peer_id for s in stats]
    d = make_decision(stats, {ids[0]: (True, 1.0), ids[1]: (True, 1.2), ids[2]: (False, 0.1)}, slack=0.25)
    np.testing.assert_array_equal(d.labels[:3], [1.0, 1.0, 0.0])
    assert np.isnan(d.labels[3])
    np.testing.assert_array_equal(d.features, feature_matrix(stats))


@pytest.mark.parametrize("optimizer", ["adamw", "static"])
def test_learning_raises_success_rate_and_pick_accuracy(optimizer: str) -> None:
    learner = WeightLearner(WeightConfig(optimizer=optimizer, lr=0.05 if optimizer == "adamw" else 0.5))
    for stats, times in _decisions(2, 200):
        learner.observe(make_decision(stats, _all_done(stats, times)))
    held_out = _decisions(3, 300)
    before = _pick_accuracy(learner.weights, held_out)
    result = learner.fit(max_updates=3000, tol=1e-5)
    assert result.success_rates[-1] > result.success_rates[0] + 0.05
    assert result.updates == learner.updates and result.converged
    assert _pick_accuracy(result.weights, held_out) > before + 0.05
    assert result.weights.w2 > result.weights.w3  # latency, not memory, decides these transfers


def test_updates_to_converge_are_reported_for_both_optimizers() -> None:
    decisions = [make_decision(s, _all_done(s, t)) for s, t in _decisions(9, 60)]
    results = updates_to_converge(decisions, max_updates=20_000)
    assert set(results) == {"adamw", "static"}
    for fit in results.values():
        assert fit.converged and 0 < fit.updates < 20_000
        assert fit.success_rates[-1] > fit.success_rates[0]


def test_paper_defaults_are_adamw_1e3_and_static_0_01() -> None:
    assert WeightConfig().optimizer == "adamw" and WeightConfig().step_size == 1e-3
    assert WeightConfig(optimizer="static").step_size == 0.01


def test_static_step_is_eta_times_gradient() -> None:
    learner = WeightLearner(WeightConfig(optimizer="static"))
    stats, times = _swarm(np.random.default_rng(4))
    learner.observe(make_decision(stats, _all_done(stats, times)))
    feats, labels, mask = _stack(list(learner.decisions))
    _, grad = success_rate_and_grad(learner.w, feats, labels, mask, temperature=5.0)
    w0 = learner.w.copy()
    learner.step()
    np.testing.assert_allclose(learner.w, np.maximum(w0 + 0.01 * grad, 0))


def test_parallel_fetch_outcomes_label_by_rate_and_failure() -> None:
    stats, _ = _swarm(np.random.default_rng(8), 4)
    fast, slow, dead, idle = (s.peer for s in stats)
    outcomes = [
        ProviderOutcome(fast, blocks=6, nbytes=6_000_000, seconds=1.0),
        ProviderOutcome(slow, blocks=2, nbytes=2_000_000, seconds=1.0),
        ProviderOutcome(dead, blocks=1, nbytes=1_000_000, seconds=0.2, failed="dead"),
        ProviderOutcome(idle),
    ]
    d = decision_from_outcomes(stats, outcomes)
    np.testing.assert_array_equal(d.labels[:3], [1.0, 0.0, 0.0])
    assert np.isnan(d.labels[3])


def test_single_peer_decisions_are_ignored() -> None:
    learner = WeightLearner()
    stats, _ = _swarm(np.random.default_rng(5))
    learner.observe(make_decision(stats, {stats[0].peer.peer_id: (True, 1.0)}))
    assert len(learner.decisions) == 0 and np.isnan(learner.step())


def test_weights_and_optimizer_state_persist_in_ltm(tmp_path: Path) -> None:
    memory = DualMemory.open(home=tmp_path)
    learner = WeightLearner()
    for stats, times in _decisions(6, 20):
        learner.observe(make_decision(stats, _all_done(stats, times)))
    for _ in range(5):
        learner.step()
    learner.save(memory)
    again = WeightLearner()
    assert again.load(memory)
    np.testing.assert_allclose(again.w, learner.w)
    assert again.updates == 5
    assert not WeightLearner(WeightConfig(optimizer="static")).load(memory)
    memory.close()


def test_bad_weight_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        WeightConfig(optimizer="sgd").validate()
