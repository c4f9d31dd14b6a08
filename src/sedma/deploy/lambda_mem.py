"""λ_mem of Eq. 11, adapted to the cluster's memory pressure.

Rule: pressure P = max(requested memory ÷ cluster memory, mean observed memory utilisation of
the nodes in STM when the controller has sampled it). λ_mem = 1 while P ≤ 0.5, then rises
linearly to 4 at P = 1: λ = 1 + 6·(P − 0.5). Under pressure each byte placed on a small node
costs more, so agents spread by memory share before nodes run out, leaving headroom that keeps
re-plans after a failure feasible.
"""

from __future__ import annotations

from sedma.deploy.memory_api import Memory
from sedma.deploy.objective import Problem

DEFAULT_LAMBDA = 1.0
KNEE = 0.5
SLOPE = 6.0
UTIL_STREAM = "deploy/node_mem_util/"  # + node name: observed memory use ÷ capacity, per sample


def memory_pressure(problem: Problem, *, memory: Memory | None = None) -> float:
    """Requested share of cluster memory, or the observed mean utilisation if higher."""
    requested = float(problem.mem.sum() / problem.cap_mem.sum())
    observed = 0.0
    if memory is not None:
        means = [s.mean for s in (memory.recent(UTIL_STREAM + nd) for nd in problem.nodes) if s is not None]
        observed = sum(means) / len(means) if means else 0.0
    return max(requested, observed)


def adaptive_lambda(pressure: float) -> float:
    """λ_mem = 1 for pressure ≤ 0.5, else 1 + 6·(pressure − 0.5), capped at pressure 1."""
    p = min(max(pressure, 0.0), 1.0)
    return DEFAULT_LAMBDA + SLOPE * max(0.0, p - KNEE)
