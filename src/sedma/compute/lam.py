"""The regularisation weight λ of Eq. 5: fixed (MELISO+'s 1e-12) or adaptive by Eq. 6.

λ_t = α·λ_memory + (1 − α)·λ_recent. λ_recent comes from short-term error statistics: the
calibration probes measure the noise variance σ² of the first-order product p at programming
time (their exact products are known), STM keeps the recent σ² per (workload type, material),
and the λ that minimises Stein's unbiased risk estimate of ‖y*(λ) − A x‖² on the *current*
outputs is observed into STM; λ_recent is the median of that window. SURE needs no ground truth:
on outputs that are not smooth (random A) any smoothing removes signal and the risk rises, so
λ ≈ 0; on smooth outputs (blur operators) it falls until noise and signal balance. Among λ whose
risk is within a small slack of the minimum the smallest is taken (no smoothing unless it pays).
λ_memory is the λ long-term memory kept for the same key; without it λ_t = λ_recent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sedma.compute.correction import sure_risk
from sedma.errors import InputError

MELISO_LAMBDA = 1e-12
LAMBDA_GRID: npt.NDArray[np.float64] = np.concatenate([[0.0], np.logspace(-6, 6, 25)])
# Risk slack, as a fraction of the noise energy m·B·σ², within which the smallest λ wins.
SLACK = 0.01
# With fewer outputs than this the risk estimate is too noisy to justify any smoothing.
MIN_ROWS = 16


class Memory(Protocol):
    def recall(self, layer: str, kind: str, key: str) -> Any: ...
    def remember(self, layer: str, kind: str, key: str, value: Any, *, score: float = ...) -> bool: ...
    def observe(self, stream: str, value: float) -> None: ...
    def recent(self, stream: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class LambdaDecision:
    """λ_t and where it came from (Eq. 6)."""

    value: float
    memory: float | None
    recent: float
    now: float
    alpha: float
    noise_var: float
    source: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_lambda(
    p: npt.NDArray[np.floating],
    noise_var: float,
    *,
    grid: npt.NDArray[np.float64] = LAMBDA_GRID,
    width: int | None = None,
) -> tuple[float, npt.NDArray[np.float64]]:
    """The smallest λ of ``grid`` whose SURE risk is within the slack of the minimum (row-aware L
    of image width ``width`` if given)."""
    if noise_var <= 0.0 or np.asarray(p).shape[0] < MIN_ROWS:
        return 0.0, np.zeros(grid.shape)
    risks = sure_risk(p, noise_var, grid, width)
    energy = np.asarray(p).size * noise_var
    ok = np.flatnonzero(risks <= risks.min() + SLACK * energy)
    return float(grid[ok[0]]), risks


def combine(lam_memory: float | None, lam_recent: float, alpha: float) -> float:
    """Eq. 6: λ_t = α·λ_memory + (1 − α)·λ_recent (λ_recent alone without a memory)."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    if lam_memory is None:
        return lam_recent
    return alpha * lam_memory + (1.0 - alpha) * lam_recent


def recall_lambda(memory: Memory | None, key: str) -> float | None:
    """λ_memory: the λ LTM holds for ("compute", "lambda", key), if any."""
    value = memory.recall("compute", "lambda", key) if memory is not None else None
    if isinstance(value, dict) and isinstance(value.get("lambda"), int | float):
        return float(value["lambda"])
    return None


def _recent(memory: Memory | None, stream: str, value: float, stat: str) -> float:
    """Observe ``value`` into an STM stream and return the window's statistic (value if no STM)."""
    if memory is None:
        return value
    memory.observe(stream, value)
    stats = memory.recent(stream)
    return float(getattr(stats, stat)) if stats is not None else value


def decide_lambda(
    p: npt.NDArray[np.floating],
    noise_var: float,
    *,
    memory: Memory | None,
    key: str,
    alpha: float,
    width: int | None = None,
) -> LambdaDecision:
    """λ_t for outputs p (scaled units) with probe noise variance σ² (Eq. 6)."""
    sigma2 = _recent(memory, f"compute/noise/{key}", noise_var, "mean")
    now, _ = choose_lambda(p, sigma2, width=width)
    recent = _recent(memory, f"compute/lambda/{key}", now, "p50")
    lam_mem = recall_lambda(memory, key)
    value = combine(lam_mem, recent, alpha)
    source = "memory+recent" if lam_mem is not None else "recent"
    return LambdaDecision(value, lam_mem, recent, now, alpha, sigma2, source)


def record_lambda(memory: Memory | None, key: str, decision: LambdaDecision, *, gain: float) -> bool:
    """Keep λ_t in LTM for the key, scored by the fraction of error it removed (SURE estimate)."""
    if memory is None:
        return False
    value = {"lambda": decision.value, "noise_var": decision.noise_var, "gain": gain}
    return bool(memory.remember("compute", "lambda", key, value, score=max(gain, 0.0)))


def risk_gain(p: npt.NDArray[np.floating], noise_var: float, lam: float, width: int | None = None) -> float:
    """Estimated fraction of the error energy λ removes: 1 − risk(λ)/risk(0) by SURE."""
    if noise_var <= 0.0:
        return 0.0
    r = sure_risk(p, noise_var, np.array([0.0, lam]), width)
    return float(1.0 - r[1] / r[0]) if r[0] > 0 else 0.0
