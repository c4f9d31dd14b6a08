"""Adapting the Eq. 7 weights from recorded transfer outcomes (Eq. 8–9).

Eq. 9's success rate is not differentiable in w as it stands, so we use a smooth surrogate: the
expected success rate of a softmax choice over each recorded decision's candidates,

    SR(w) = mean_d Σ_i π_i(w) · y_{d,i},   π(w) = softmax(β · F_d w) over the peers tried in d,

where F_d are the candidates' normalised features and y_{d,i} = 1 when peer i completed its
transfer within ``(1 + slack)`` of the fastest peer in that decision (a "completed" transfer
in Eq. 9's sense, with a deadline), else 0. Its gradient is exact:
∂SR/∂w = β · mean_d Σ_i π_i y_i (f_i − Σ_j π_j f_j).  Eq. 8 ascends it, either with the paper's
training optimiser (AdamW, lr 1e-3, weight decay 1e-4; the default) or with the plain static
step η = 0.01 (Table 5's ablation). Weights are kept non-negative.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sedma.errors import ConfigError
from sedma.net.exchange import ProviderOutcome
from sedma.net.selection import Weights, feature_matrix
from sedma.net.types import PeerStats

OPTIMIZERS = ("adamw", "static")
_KEY = ("net", "weights", "eq7")


class _LTM(Protocol):
    def recall(self, layer: str, kind: str, key: str) -> Any: ...
    def remember(
        self, layer: str, kind: str, key: str, value: Any, *, score: float = ..., force: bool = ...
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class WeightConfig:
    """Eq. 8 optimiser settings; ``lr=None`` means 1e-3 for AdamW and η = 0.01 for static."""

    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    temperature: float = 5.0  # β of the softmax surrogate
    slack: float = 0.25  # a transfer "completes" within (1 + slack) × the fastest one
    history: int = 512  # decisions kept for the gradient estimate

    def validate(self) -> WeightConfig:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"weight optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"weight lr must be > 0, got {self.lr}")
        if self.temperature <= 0 or self.slack < 0 or self.history < 1 or self.weight_decay < 0:
            raise ConfigError("weight temperature > 0, slack >= 0, history >= 1, weight_decay >= 0 required")
        return self

    @property
    def step_size(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.optimizer == "adamw" else 0.01)


@dataclass(frozen=True, slots=True)
class Decision:
    """One recorded choice: candidates' features (n, 3) and labels y (NaN where untried)."""

    features: np.ndarray
    labels: np.ndarray


def make_decision(
    stats: Sequence[PeerStats], outcomes: Mapping[bytes, tuple[bool, float]], *, slack: float = 0.25
) -> Decision:
    """Label a decision from per-peer (completed, seconds) outcomes (Eq. 9 with a deadline)."""
    feats = feature_matrix(stats)
    labels = np.full(len(stats), np.nan)
    done = [t for ok, t in outcomes.values() if ok]
    best = min(done) if done else np.inf
    for i, s in enumerate(stats):
        if s.peer.peer_id in outcomes:
            ok, seconds = outcomes[s.peer.peer_id]
            labels[i] = float(ok and seconds <= (1.0 + slack) * best)
    return Decision(feats, labels)


def decision_from_outcomes(
    stats: Sequence[PeerStats], outcomes: Sequence[ProviderOutcome], *, slack: float = 0.25
) -> Decision:
    """Label a parallel fetch: each provider's seconds per MB served, failures as not completed.

    Providers pull from one shared queue, so the blocks each serves in the same wall time
    measure its relative speed; one that got no work and did not fail stays unlabelled.
    """
    timed = {
        o.peer.peer_id: (o.failed is None and o.blocks > 0, o.seconds / max(o.nbytes, 1) * 1e6)
        for o in outcomes
        if o.blocks or o.failed
    }
    return make_decision(stats, timed, slack=slack)


def _stack(decisions: Sequence[Decision]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad decisions into (D, N, 3) features, (D, N) labels and (D, N) tried-mask arrays."""
    n = max(len(d.labels) for d in decisions)
    feats = np.zeros((len(decisions), n, 3))
    labels = np.zeros((len(decisions), n))
    mask = np.zeros((len(decisions), n), dtype=bool)
    for k, d in enumerate(decisions):
        m = len(d.labels)
        feats[k, :m], mask[k, :m] = d.features, ~np.isnan(d.labels)
        labels[k, :m] = np.nan_to_num(d.labels)
    return feats, labels, mask


def success_rate_and_grad(
    w: np.ndarray, feats: np.ndarray, labels: np.ndarray, mask: np.ndarray, *, temperature: float
) -> tuple[float, np.ndarray]:
    """Surrogate success rate SR(w) (Eq. 9) and its exact gradient ∂SR/∂w (Eq. 8)."""
    logits = np.where(mask, temperature * (feats @ w), -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    per_decision = (p * labels).sum(axis=1)
    fbar = np.einsum("dn,dnf->df", p, feats)
    grad = temperature * np.einsum("dn,dnf->f", p * labels, feats) - temperature * np.einsum(
        "d,df->f", per_decision, fbar
    )
    return float(per_decision.mean()), grad / len(feats)


@dataclass(frozen=True, slots=True)
class FitResult:
    """Outcome of fitting: final weights, updates taken, whether SR plateaued, SR per update."""

    weights: Weights
    updates: int
    converged: bool
    success_rates: list[float] = field(default_factory=list)


class WeightLearner:
    """Holds the Eq. 7 weights, the recent decisions and the optimiser state (Eq. 8)."""

    def __init__(self, config: WeightConfig | None = None, *, weights: Weights | None = None) -> None:
        self.config = (config or WeightConfig()).validate()
        self.w = (weights or Weights()).as_array()
        self.decisions: deque[Decision] = deque(maxlen=self.config.history)
        self._m = np.zeros(3)
        self._v = np.zeros(3)
        self._stacked: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.updates = 0

    @property
    def weights(self) -> Weights:
        return Weights.from_array(self.w)

    def observe(self, decision: Decision) -> None:
        # A decision with fewer than two tried peers says nothing about relative weights.
        if int((~np.isnan(decision.labels)).sum()) >= 2:
            self.decisions.append(decision)
            self._stacked = None

    def step(self) -> float:
        """One Eq. 8 update on the recorded decisions; returns SR before the update."""
        if not self.decisions:
            return float("nan")
        if self._stacked is None:
            self._stacked = _stack(list(self.decisions))
        feats, labels, mask = self._stacked
        sr, grad = success_rate_and_grad(self.w, feats, labels, mask, temperature=self.config.temperature)
        self.w = np.maximum(self.w + self._delta(grad), 0.0)
        self.updates += 1
        return sr

    def _delta(self, grad: np.ndarray) -> np.ndarray:
        lr = self.config.step_size
        if self.config.optimizer == "static":
            return lr * grad
        b1, b2 = self.config.adam_betas
        t = self.updates + 1
        self._m = b1 * self._m + (1 - b1) * grad
        self._v = b2 * self._v + (1 - b2) * grad * grad
        m_hat, v_hat = self._m / (1 - b1**t), self._v / (1 - b2**t)
        # AdamW: decoupled weight decay, applied to the weights, not folded into the gradient.
        return lr * m_hat / (np.sqrt(v_hat) + 1e-8) - lr * self.config.weight_decay * self.w

    def fit(self, *, max_updates: int = 5000, tol: float = 1e-4, window: int = 50) -> FitResult:
        """Update until SR gains less than ``tol`` over ``window`` updates; reports updates taken."""
        history: list[float] = []
        for _ in range(max_updates):
            history.append(self.step())
            if len(history) > window and history[-1] - history[-1 - window] < tol:
                return FitResult(self.weights, len(history), True, history)
        return FitResult(self.weights, len(history), False, history)

    # -- persistence in long-term memory -----------------------------------------------------------
    def save(self, memory: _LTM | None) -> None:
        """Store weights and optimiser state as the LTM record ("net", "weights", "eq7")."""
        if memory is None:
            return
        value = {
            "w": self.w.tolist(),
            "m": self._m.tolist(),
            "v": self._v.tolist(),
            "updates": self.updates,
            "optimizer": self.config.optimizer,
        }
        memory.remember(*_KEY, value, score=float(self.updates), force=True)

    def load(self, memory: _LTM | None) -> bool:
        """Resume from LTM when a record of the same optimiser exists; returns True if loaded."""
        value = memory.recall(*_KEY) if memory is not None else None
        if not isinstance(value, dict) or value.get("optimizer") != self.config.optimizer:
            return False
        try:
            self.w = Weights.from_array(value["w"]).as_array()
            self._m, self._v = np.asarray(value["m"], float), np.asarray(value["v"], float)
            self.updates = int(value["updates"])
        except (KeyError, TypeError, ValueError, ConfigError):
            return False
        return True


def updates_to_converge(
    decisions: Sequence[Decision],
    *,
    optimizers: Sequence[str] = OPTIMIZERS,
    max_updates: int = 20_000,
    tol: float = 1e-4,
) -> dict[str, FitResult]:
    """Fit fresh weights on the same recorded decisions with each optimiser (Table 5's ablation)."""
    results = {}
    for name in optimizers:
        learner = WeightLearner(WeightConfig(optimizer=name))
        for d in decisions:
            learner.observe(d)
        results[name] = learner.fit(max_updates=max_updates, tol=tol)
    return results
