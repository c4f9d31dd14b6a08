from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sedma.deploy.controller import CPU_STREAM, Controller, ControllerConfig, with_volumes
from sedma.deploy.generator import random_cluster, random_workflow
from sedma.deploy.lambda_mem import UTIL_STREAM
from sedma.deploy.metrics import Observation
from sedma.deploy.objective import Problem, build_problem, feasible, objective
from sedma.deploy.planner import Plan
from sedma.memory import DualMemory


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[DualMemory]:
    mem = DualMemory.open(home=tmp_path)
    yield mem
    mem.close()


def _busiest(plan: Plan) -> str:
    counts: dict[str, float] = {}
    for agent, node in plan.placement.items():
        i = plan.problem.agents.index(agent)
        counts[node] = counts.get(node, 0.0) + plan.problem.mem[i]
    return max(counts, key=lambda n: counts[n])


def _best_without_moving_survivors(pb: Problem, prev: dict[str, str], dead: str) -> float:
    """Brute force: best objective that re-places only the dead node's agents."""
    idx = {n: k for k, n in enumerate(pb.nodes)}
    base = np.array([idx.get(prev[a], -1) for a in pb.agents])
    moved = np.flatnonzero(base < 0)
    best = np.inf
    for combo in itertools.product(range(pb.m), repeat=len(moved)):
        p = base.copy()
        p[moved] = combo
        if feasible(pb, p):
            best = min(best, objective(pb, p))
    return float(best)


@pytest.mark.parametrize("seed", range(5))
def test_node_failure_replan_uses_live_nodes_fits_and_moves_survivors_only_if_it_pays(
    seed: int, memory: DualMemory
) -> None:
    cl = random_cluster(5, seed=seed)
    wf = random_workflow(9, cl, seed=seed, load=0.4)
    applied: list[tuple[Plan, str]] = []
    ctl = Controller(
        wf,
        cl,
        memory=memory,
        config=ControllerConfig(lambda_mem=1.0),
        sink=lambda p, r: applied.append((p, r)),
    )
    before = ctl.current
    dead = _busiest(before)
    obs = Observation(up={n: n != dead for n in cl.names})
    rep = ctl.step(obs, t=10.0)
    assert rep.action == "failover" and rep.plan is not None and applied[-1][0] is rep.plan
    new = rep.plan
    assert dead not in new.placement.values() and rep.dead == (dead,)
    live = cl.without({dead})
    pb = build_problem(wf, live, lam=1.0)
    arr = np.array([pb.nodes.index(new.placement[a]) for a in pb.agents])
    assert feasible(pb, arr)
    survivors_moved = [a for a, n in before.placement.items() if n != dead and new.placement[a] != n]
    displaced = [a for a, n in before.placement.items() if n == dead]
    assert rep.migrations == len(survivors_moved) + len(displaced)
    if survivors_moved:
        assert objective(pb, arr) < _best_without_moving_survivors(pb, before.placement, dead) - 1e-9
    outcomes = memory.recall("deploy", "placement", wf.digest())["outcomes"]
    assert outcomes[-1]["action"] == "failover" and outcomes[-1]["dead"] == [dead]


def test_steady_state_learns_expectation_then_degradation_triggers_replan(memory: DualMemory) -> None:
    cl = random_cluster(4, seed=7)
    wf = random_workflow(8, cl, seed=7)
    ctl = Controller(wf, cl, memory=memory, config=ControllerConfig(), sink=lambda p, r: None)
    for t in range(3):
        rep = ctl.step(Observation(throughput=100.0, cpu={"node-00": 0.4}, mem={"node-00": 0.5}), t=float(t))
        assert rep.action == "none"
    assert memory.recall("deploy", "placement", wf.digest())["expected_throughput"] == pytest.approx(100.0)
    assert memory.recent(UTIL_STREAM + "node-00").count == 3
    assert memory.recent(CPU_STREAM + "node-00").mean == pytest.approx(0.4)
    # Volumes change so that today's placement is no longer best; throughput falls below θ.
    current = ctl.current
    cross = [
        (a.name, d.agent)
        for a in wf.agents
        for d in a.depends_on
        if current.placement[a.name] != current.placement[d.agent]
    ]
    edges = {e: 500.0 for e in cross[:1]} if cross else {}
    rep = ctl.step(Observation(throughput=50.0, edges=edges), t=5.0)
    assert rep.decision.recompile and "θ" in rep.decision.reason
    assert rep.action in ("replanned", "kept")
    if rep.action == "replanned":
        assert rep.plan is not None and rep.plan.objective < objective(
            rep.plan.problem, _arr(rep.plan, current)
        )
    else:  # nothing better: the expectation is re-based at today's throughput
        assert memory.recall("deploy", "placement", wf.digest())["expected_throughput"] == pytest.approx(50.0)


def _arr(plan: Plan, old: Plan) -> np.ndarray:
    return np.array([plan.problem.nodes.index(old.placement[a]) for a in plan.problem.agents])


def test_unplaceable_failover_keeps_running(memory: DualMemory) -> None:
    cl = random_cluster(2, seed=3)
    wf = random_workflow(6, cl, seed=3, load=0.7)
    ctl = Controller(wf, cl, memory=memory, config=ControllerConfig(), sink=lambda p, r: None)
    rep = ctl.step(Observation(up={"node-00": False}), t=1.0)
    assert rep.action == "unplaceable"
    assert "fits no node" in rep.decision.reason or "no feasible placement" in rep.decision.reason


def test_with_volumes_rounds_and_ignores_bad_values() -> None:
    cl = random_cluster(2, seed=1)
    wf = random_workflow(4, cl, seed=1)
    a = next(x for x in wf.agents if x.depends_on)
    d = a.depends_on[0]
    got = with_volumes(wf, {(d.agent, a.name): 1.23456, ("x", "y"): 5.0})
    assert next(x for x in got.agents if x.name == a.name).depends_on[0].data_gb == 1.2
    same = with_volumes(wf, {(a.name, d.agent): float("nan")})
    assert same == wf
