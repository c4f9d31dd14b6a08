"""Memory-aware peer selection (Eq. 7) and the two baselines of the paper's ablations.

``adaptive``: score_i = w1·availability_i + w2/latency_i + w3·mem_free_i, TOPK by score.
``dht-only``: providers in XOR-distance order (what a plain Kademlia client does).
``random``: a uniform random choice (seeded).

Features are normalised per decision so the three weights are comparable: availability is
already in [0, 1]; 1/latency is divided by the best 1/latency among the candidates
(= min_rtt/rtt_i); free memory by the largest free memory. Dividing a feature by a positive
constant only rescales its weight, so the argmax of Eq. 7 keeps its form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sedma.errors import ConfigError
from sedma.net.types import PeerStats

STRATEGIES = ("adaptive", "dht-only", "random")
FEATURES = ("availability", "inv_latency", "mem_free")
_MIN_RTT_MS = 0.01  # below any real RTT; keeps 1/latency finite


@dataclass(frozen=True, slots=True)
class Weights:
    """The Eq. 7 weights (w1 availability, w2 inverse latency, w3 free memory)."""

    w1: float = 1.0
    w2: float = 1.0
    w3: float = 1.0

    def as_array(self) -> np.ndarray:
        return np.array([self.w1, self.w2, self.w3], dtype=np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray | Sequence[float]) -> Weights:
        a = [float(v) for v in values]
        if len(a) != 3 or not all(np.isfinite(a)):
            raise ConfigError(f"weights need 3 finite numbers, got {a}")
        return cls(a[0], a[1], a[2])


@dataclass(frozen=True, slots=True)
class SelectionConfig:
    """How peers are chosen: strategy, TOPK and the seed of the random baseline."""

    strategy: str = "adaptive"
    k: int = 3
    seed: int | None = None

    def validate(self) -> SelectionConfig:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"selection strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.k < 1:
            raise ConfigError(f"selection k must be >= 1, got {self.k}")
        return self


def feature_matrix(stats: Sequence[PeerStats]) -> np.ndarray:
    """(n, 3) normalised Eq. 7 features: availability, min_rtt/rtt, mem_free/max mem_free."""
    if not stats:
        return np.zeros((0, 3))
    raw = np.array([(s.availability, s.rtt_ms, s.mem_free_gb) for s in stats], dtype=np.float64)
    raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    avail = np.clip(raw[:, 0], 0.0, 1.0)
    inv_lat = 1.0 / np.maximum(raw[:, 1], _MIN_RTT_MS)
    mem = np.maximum(raw[:, 2], 0.0)
    return np.column_stack([avail, inv_lat / inv_lat.max(), mem / max(mem.max(), 1e-12)])


def scores(features: np.ndarray, weights: Weights) -> np.ndarray:
    """Eq. 7 scores of every candidate (rows of ``features``)."""
    return np.asarray(features @ weights.as_array(), dtype=np.float64)


def rank(
    stats: Sequence[PeerStats],
    *,
    strategy: str = "adaptive",
    weights: Weights | None = None,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """Indices of ``stats`` in the order the strategy prefers them (all candidates)."""
    n = len(stats)
    if n == 0:
        return []
    xor = np.array([float(s.xor_distance) for s in stats])
    if strategy == "dht-only":
        return [int(i) for i in np.argsort(xor, kind="stable")]
    if strategy == "random":
        return [int(i) for i in (rng or np.random.default_rng()).permutation(n)]
    if strategy != "adaptive":
        raise ConfigError(f"selection strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    s = scores(feature_matrix(stats), weights or Weights())
    # Highest score first; ties broken by XOR distance so the order is deterministic.
    return [int(i) for i in np.lexsort((xor, -s))]


def select(
    stats: Sequence[PeerStats],
    *,
    config: SelectionConfig | None = None,
    weights: Weights | None = None,
    rng: np.random.Generator | None = None,
    exclude: frozenset[bytes] = frozenset(),
) -> list[PeerStats]:
    """TOPK candidates by the configured strategy (Eq. 7 for ``adaptive``), never one in ``exclude``."""
    cfg = (config or SelectionConfig()).validate()
    pool = [s for s in stats if s.peer.peer_id not in exclude]
    if rng is None and cfg.seed is not None:
        rng = np.random.default_rng(cfg.seed)
    order = rank(pool, strategy=cfg.strategy, weights=weights, rng=rng)
    return [pool[i] for i in order[: cfg.k]]
