from __future__ import annotations

import numpy as np
import pytest

from sedma.deploy.model import Agent, Cluster, Dependency, Link, Node, Workflow
from sedma.deploy.objective import build_problem, comm_per_agent, feasible, objective, placement_cost_rows

from ._cases import random_problem

GI = 2.0**30


def _pair() -> tuple[Workflow, Cluster]:
    wf = Workflow(
        name="w",
        agents=(
            Agent("a", "img:a", 1.0, 4 * GI, (Dependency("b", 2.0),)),
            Agent("b", "img:b", 1.0, 8 * GI, (Dependency("c", 1.0),)),
            Agent("c", "img:c", 1.0, 2 * GI),
        ),
    )
    cl = Cluster(
        nodes=(Node("n1", 4.0, 16 * GI), Node("n2", 4.0, 32 * GI)),
        default=Link(latency_ms=5.0, bandwidth_gbps=2.0),
    )
    return wf, cl


def test_objective_matches_equations_11_to_13_by_hand() -> None:
    wf, cl = _pair()
    pb = build_problem(wf, cl, lam=2.0)
    p = np.array([0, 1, 1])  # a on n1; b, c on n2
    # comm: a-b crosses nodes: 2 GB · (5 ms / 2 Gbps) = 5; b-c same node: 0.
    # memory overhead: 4/16 + 8/32 + 2/32 = 0.5625, times λ = 2.
    assert objective(pb, p) == pytest.approx(5.0 + 2.0 * 0.5625)
    assert objective(pb, np.array([1, 1, 1])) == pytest.approx(2.0 * (14 / 32))


def test_per_agent_comm_and_rows_agree_with_objective() -> None:
    pb = random_problem(9, 4, seed=3)
    rng = np.random.default_rng(0)
    p = rng.integers(0, pb.m, pb.n)
    assert comm_per_agent(pb, p).sum() / 2 == pytest.approx(
        objective(pb, p) - pb.unary[np.arange(9), p].sum()
    )
    rows = placement_cost_rows(pb, p)
    for i in range(pb.n):
        for k in range(pb.m):
            q = p.copy()
            q[i] = k
            assert objective(pb, q) - objective(pb, p) == pytest.approx(rows[i, k] - rows[i, p[i]])


def test_feasible_checks_cpu_and_memory() -> None:
    wf, cl = _pair()
    pb = build_problem(wf, cl)
    assert feasible(pb, np.array([1, 1, 1]))
    assert feasible(pb, np.array([0, 0, 0]))  # 14 GiB in 16 GiB, 3 of 4 cores
    tight = build_problem(wf, Cluster(nodes=(Node("n1", 2.5, 64 * GI), Node("n2", 4.0, 12 * GI))))
    assert not feasible(tight, np.array([0, 0, 0]))  # cpu 3 > 2.5
    assert not feasible(tight, np.array([1, 1, 1]))  # memory 14 GiB > 12 GiB
    assert feasible(tight, np.array([0, 0, 1]))
    assert not feasible(pb, np.array([0, 0, 5]))  # no such node
