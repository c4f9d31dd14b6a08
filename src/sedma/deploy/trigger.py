"""The recompilation trigger of Eq. 14 and the LTM-held expected throughput it compares with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sedma.deploy.memory_api import Memory

EWMA_ALPHA = 0.1  # weight of a new healthy sample in the expected throughput


@dataclass(frozen=True)
class TriggerConfig:
    """θ (performance ratio floor) and ρ (utilisation ceiling) of Eq. 14."""

    theta: float = 0.8
    rho: float = 0.85

    def validate(self) -> None:
        if not 0 < self.theta < 1 or not 0 < self.rho < 1:
            raise ValueError(f"theta and rho must lie in (0, 1), got {self.theta}, {self.rho}")


@dataclass(frozen=True)
class Decision:
    """Eq. 14's verdict with its inputs."""

    recompile: bool
    reason: str
    ratio: float | None
    utilisation: float | None


def should_recompile(
    current: float | None, expected: float | None, utilisation: float | None, config: TriggerConfig
) -> Decision:
    """Eq. 14: current/expected < θ  ∨  utilisation > ρ (a missing input never fires)."""
    ratio = current / expected if current is not None and expected and expected > 0 else None
    slow = ratio is not None and ratio < config.theta
    busy = utilisation is not None and utilisation > config.rho
    reasons = [f"throughput {ratio:.2f} of expected < θ {config.theta}"] if slow and ratio is not None else []
    if busy and utilisation is not None:
        reasons.append(f"utilisation {utilisation:.2f} > ρ {config.rho}")
    return Decision(slow or busy, "; ".join(reasons) or "steady", ratio, utilisation)


def expected_throughput(memory: Memory | None, key: str) -> float | None:
    """Expected throughput of the workflow ``key`` from its LTM placement record."""
    value = memory.recall("deploy", "placement", key) if memory is not None else None
    got = value.get("expected_throughput") if isinstance(value, dict) else None
    return float(got) if isinstance(got, int | float) and math.isfinite(got) and got > 0 else None


def update_expected(memory: Memory | None, key: str, sample: float, *, reset: bool = False) -> float:
    """Fold a healthy throughput sample into LTM's expectation (EWMA); ``reset`` re-baselines."""
    old = expected_throughput(memory, key)
    new = sample if old is None or reset else (1 - EWMA_ALPHA) * old + EWMA_ALPHA * sample
    if memory is not None:
        rec = memory.recall("deploy", "placement", key)
        value: dict[str, Any] = dict(rec) if isinstance(rec, dict) else {}
        value["expected_throughput"] = new
        memory.remember("deploy", "placement", key, value, score=1.0, force=True)
    return new
