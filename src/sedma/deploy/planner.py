"""The layer's one entry point: ``plan(workflow, cluster, *, memory, ...) -> Plan`` (Eq. 11–13)."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sedma.deploy import baselines
from sedma.deploy.exact_groups import exact_search, group_first_applies
from sedma.deploy.lambda_mem import adaptive_lambda, memory_pressure
from sedma.deploy.local_search import LocalSearchConfig, local_search
from sedma.deploy.memory_api import Memory
from sedma.deploy.model import Cluster, Workflow
from sedma.deploy.objective import Ints, Problem, build_problem, comm_total, feasible, loads, objective
from sedma.errors import InputError

SOLVERS = ("auto", "exact", "local", "k8s-native", "greedy", "static")
EXACT_MAX_AGENTS = 24
EXACT_MAX_NODES = 8


@dataclass(frozen=True)
class Plan:
    """A placement with how it was found: objective, bound (None = no bound), solver, seconds."""

    workflow: Workflow
    cluster: Cluster
    problem: Problem
    placement: dict[str, str]
    objective: float
    bound: float | None
    solver: str
    seconds: float
    lambda_mem: float
    lambda_source: str
    optimal: bool = False
    warm_start: str = "none"
    migrations: int = 0
    nodes_explored: int = 0

    @property
    def array(self) -> Ints:
        """Node index per agent."""
        idx = {n: k for k, n in enumerate(self.problem.nodes)}
        return np.array([idx[self.placement[a]] for a in self.problem.agents], dtype=np.int64)

    @property
    def comm_cost(self) -> float:
        return comm_total(self.problem, self.array)

    @property
    def memory_overhead(self) -> float:
        return float(self.problem.overhead[np.arange(self.problem.n), self.array].sum())

    @property
    def gap(self) -> float | None:
        if self.bound is None:
            return None
        return max(0.0, self.objective - self.bound) / max(abs(self.objective), 1e-12)

    @property
    def digest(self) -> str:
        """Plan hash: workflow hash + placement; labels on every compiled object carry it."""
        body = self.workflow.digest() + repr(sorted(self.placement.items()))
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    @property
    def bound_status(self) -> str:
        if self.bound is None:
            return "no bound"
        return "proven optimal" if self.optimal else "lower bound"

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON (public keys: objective, bound, solver, seconds, placement)."""
        return {
            "objective": self.objective,
            "bound": self.bound,
            "bound_status": self.bound_status,
            "gap": self.gap,
            "solver": self.solver,
            "seconds": self.seconds,
            "placement": dict(self.placement),
            "optimal": self.optimal,
            "comm_cost": self.comm_cost,
            "memory_overhead": self.memory_overhead,
            "lambda_mem": self.lambda_mem,
            "lambda_source": self.lambda_source,
            "workflow": self.workflow.name,
            "workflow_hash": self.workflow.digest(),
            "plan_hash": self.digest,
            "warm_start": self.warm_start,
            "migrations": self.migrations,
            "nodes_explored": self.nodes_explored,
            "nodes": list(self.problem.nodes),
        }


def default_time_limit(solver: str, n: int) -> float:
    """Seconds a solver may spend when the caller gives no limit."""
    return 10.0 if solver == "exact" else min(10.0, max(1.0, n / 50.0))


def plan(
    workflow: Workflow,
    cluster: Cluster,
    *,
    memory: Memory | None,
    solver: str = "auto",
    lambda_mem: float | None = None,
    time_limit: float | None = None,
    seed: int = 0,
    previous: Mapping[str, str] | None = None,
    migration_cost: float | None = None,
) -> Plan:
    """Place ``workflow`` on ``cluster`` minimising Eq. 11; ``previous`` makes it min-migration."""
    _check_options(solver, lambda_mem, time_limit)
    t0 = time.perf_counter()
    base = build_problem(workflow, cluster)
    lam, source = (lambda_mem, "fixed") if lambda_mem is not None else (None, "adaptive")
    if lam is None:
        lam = adaptive_lambda(memory_pressure(base, memory=memory))
    problem = base.with_lambda(lam)
    if solver == "auto":
        solver = "exact" if problem.n <= EXACT_MAX_AGENTS and problem.m <= EXACT_MAX_NODES else "local"
    limit = time_limit if time_limit is not None else default_time_limit(solver, problem.n)
    prev = _previous_array(problem, previous)
    warm, warm_name = _ltm_start(problem, workflow, memory)
    if prev is not None:
        cost = migration_cost if migration_cost is not None else _default_migration_cost(problem, prev)
        problem = problem.with_bias(_migration_bias(problem, prev, cost))
    placement, bound, optimal, explored = _solve(problem, solver, limit, seed, prev, warm)
    true_problem = problem.with_bias(None)
    if prev is not None:
        placement = undo_needless_moves(true_problem, placement, prev)
    value = objective(true_problem, placement)
    if bound is not None and problem.bias is not None:
        bound = None  # a bound on the penalised objective is no bound on Eq. 11 itself
    out = Plan(
        workflow=workflow,
        cluster=cluster,
        problem=true_problem,
        placement={a: problem.nodes[int(k)] for a, k in zip(problem.agents, placement, strict=True)},
        objective=value,
        bound=bound,
        solver=solver,
        seconds=time.perf_counter() - t0,
        lambda_mem=lam,
        lambda_source=source,
        optimal=optimal and bound is not None,
        warm_start=warm_name,
        migrations=count_migrations(previous, problem.agents, problem.nodes, placement),
        nodes_explored=explored,
    )
    _remember(out, memory)
    return out


def _check_options(solver: str, lambda_mem: float | None, time_limit: float | None) -> None:
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r} (choose from {', '.join(SOLVERS)})")
    if lambda_mem is not None and (not math.isfinite(lambda_mem) or lambda_mem < 0):
        raise InputError(f"--lambda-mem must be a finite number >= 0, got {lambda_mem}")
    if time_limit is not None and not time_limit > 0:
        raise InputError(f"--time-limit must be > 0 seconds, got {time_limit}")


_Result = tuple[Ints, float | None, bool, int]


def _solve(
    problem: Problem, solver: str, limit: float, seed: int, prev: Ints | None, warm: Ints | None
) -> _Result:
    if solver == "k8s-native":
        return _must(baselines.k8s_native(problem, seed=seed), "k8s-native"), None, False, 0
    if solver == "greedy":
        return _must(baselines.greedy(problem), "greedy"), None, False, 0
    if solver == "static":
        if prev is None or (prev < 0).any():
            raise InputError("static keeps the first placement: it needs a previous plan on live nodes")
        return baselines.static(prev), None, False, 0
    starts = _starts(problem, seed, prev, warm)
    if solver == "local":
        stall = max(100, 10 * problem.n)  # kicks without gain before stopping early
        p, _ = local_search(
            problem, starts, LocalSearchConfig(time_limit=limit, seed=seed, stall_kicks=stall)
        )
        return p, None, False, 0
    if group_first_applies(problem):
        return _exact_first(problem, starts, limit, min(0.5, 0.1 * limit), seed)
    reserve = min(0.5, 0.2 * limit)
    p, _ = local_search(problem, starts, LocalSearchConfig(time_limit=reserve, seed=seed, stall_kicks=50))
    res = exact_search(problem, p, time_limit=max(limit - reserve, 1e-3))
    return res.placement, res.bound, res.optimal, res.nodes_explored


def _exact_first(problem: Problem, starts: list[Ints], limit: float, reserve: float, seed: int) -> _Result:
    """Group-first search from the best start (it needs no good incumbent: on seeds 0-29 of the
    20x6 benchmark instance it proved optimality in 0.11 s on average from the best baseline,
    0.23 s after a 0.1 s local search); a local search gets the reserve (10% of the limit) only
    if no proof came."""
    best = min(starts, key=lambda s: objective(problem, s))
    res = exact_search(problem, best, time_limit=max(limit - reserve, 1e-3))
    if res.optimal:
        return res.placement, res.bound, True, res.nodes_explored
    config = LocalSearchConfig(time_limit=reserve, seed=seed, stall_kicks=50)
    p, v = local_search(problem, [res.placement, *starts], config)
    if v >= res.value:
        p, v = res.placement, res.value
    return p, res.bound, v <= res.bound + 1e-9, res.nodes_explored


def _must(p: Ints | None, name: str) -> Ints:
    if p is None:
        raise InputError(f"{name}: no feasible placement (the agents' requests do not fit the nodes)")
    return p


def _starts(problem: Problem, seed: int, prev: Ints | None, warm: Ints | None) -> list[Ints]:
    """Feasible starting placements: repaired previous, LTM's, greedy, k8s-native, first-fit."""
    cands = [
        _repair(problem, prev) if prev is not None else None,
        warm,
        baselines.greedy(problem),
        baselines.k8s_native(problem, seed=seed),
        baselines.first_fit_decreasing(problem),
    ]
    starts = [c for c in cands if c is not None and feasible(problem, c)]
    if not starts:
        raise InputError(
            "no feasible placement found: total requests "
            f"cpu {problem.cpu.sum():.4g}/{problem.cap_cpu.sum():.4g} cores, memory "
            f"{problem.mem.sum() / 2**30:.4g}/{problem.cap_mem.sum() / 2**30:.4g} GiB do not pack"
        )
    return starts


def _repair(problem: Problem, prev: Ints) -> Ints | None:
    """Keep every agent whose node is alive; place the displaced ones greedily where they fit."""
    p = prev.copy()
    keep = p >= 0
    free_cpu = problem.cap_cpu - np.bincount(p[keep], weights=problem.cpu[keep], minlength=problem.m)
    free_mem = problem.cap_mem - np.bincount(p[keep], weights=problem.mem[keep], minlength=problem.m)
    if (free_cpu < -1e-9).any() or (free_mem < -1e-9).any():
        return None
    for i in np.flatnonzero(~keep)[np.argsort(-problem.mem[~keep])]:
        placed = p >= 0
        rows = problem.traffic[i, placed] @ problem.netcost[p[placed], :] + problem.unary[i]
        ok = (problem.cpu[i] <= free_cpu + 1e-9) & (problem.mem[i] <= free_mem + 1e-9)
        if not ok.any():
            return None
        k = int(np.argmin(np.where(ok, rows, np.inf)))
        p[i] = k
        free_cpu[k] -= problem.cpu[i]
        free_mem[k] -= problem.mem[i]
    return p


def _previous_array(problem: Problem, previous: Mapping[str, str] | None) -> Ints | None:
    """Previous node index per agent; -1 for agents that were not placed or whose node is gone."""
    if previous is None:
        return None
    idx = {n: k for k, n in enumerate(problem.nodes)}
    return np.array([idx.get(previous.get(a, ""), -1) for a in problem.agents], dtype=np.int64)


def _migration_bias(problem: Problem, prev: Ints, cost: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Penalty ``cost`` for placing a surviving agent anywhere but where it runs now."""
    bias = np.full((problem.n, problem.m), cost)
    alive = prev >= 0
    bias[alive, prev[alive]] = 0.0
    bias[~alive] = 0.0
    return bias


def _default_migration_cost(problem: Problem, prev: Ints) -> float:
    """1% of the mean per-agent objective of the repaired previous placement (ties stay put)."""
    start = _repair(problem, prev)
    p = start if start is not None else baselines.greedy(problem)
    if p is None:
        return 1e-6
    return max(0.01 * objective(problem, p) / problem.n, 1e-9)


def undo_needless_moves(problem: Problem, p: Ints, prev: Ints) -> Ints:
    """Send a moved surviving agent back home whenever that fits and does not raise Eq. 11."""
    p = p.copy()
    cpu, mem = loads(problem, p)
    for i in np.flatnonzero((prev >= 0) & (p != prev)):
        home, here = int(prev[i]), int(p[i])
        if cpu[home] + problem.cpu[i] > problem.cap_cpu[home] + 1e-9:
            continue
        if mem[home] + problem.mem[i] > problem.cap_mem[home] + 1e-9:
            continue
        q = p.copy()
        q[i] = home
        if objective(problem, q) <= objective(problem, p) + 1e-12:
            p = q
            cpu[here] -= problem.cpu[i]
            mem[here] -= problem.mem[i]
            cpu[home] += problem.cpu[i]
            mem[home] += problem.mem[i]
    return p


def count_migrations(
    previous: Mapping[str, str] | None, agents: tuple[str, ...], nodes: tuple[str, ...], p: Ints
) -> int:
    """Agents whose node changed against ``previous`` (agents new to the plan do not count)."""
    if previous is None:
        return 0
    return sum(1 for a, k in zip(agents, p, strict=True) if a in previous and previous[a] != nodes[int(k)])


def _ltm_start(problem: Problem, workflow: Workflow, memory: Memory | None) -> tuple[Ints | None, str]:
    """LTM's placement for this workflow hash, when every node it names still exists and it fits."""
    if memory is None:
        return None, "none"
    value = memory.recall("deploy", "placement", workflow.digest())
    stored = value.get("placement") if isinstance(value, dict) else None
    if not isinstance(stored, dict):
        return None, "none"
    arr = _previous_array(problem, {str(k): str(v) for k, v in stored.items()})
    if arr is None or (arr < 0).any() or not feasible(problem, arr):
        return None, "none"
    return arr, "ltm"


def _remember(result: Plan, memory: Memory | None) -> None:
    """Record the placement under ("deploy", "placement", workflow hash), keeping its history."""
    if memory is None:
        return
    key = result.workflow.digest()
    old = memory.recall("deploy", "placement", key)
    value: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
    value.update(
        placement=dict(result.placement),
        objective=result.objective,
        plan_hash=result.digest,
        solver=result.solver,
        nodes=list(result.problem.nodes),
    )
    memory.remember("deploy", "placement", key, value, score=1.0 / (1.0 + result.objective), force=True)
