"""The placement objective of Eq. 11–13 on plain numpy arrays, and capacity checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sedma.deploy.model import Cluster, Workflow
from sedma.deploy.quantity import format_cpu, format_memory
from sedma.errors import InputError

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


@dataclass(frozen=True)
class Problem:
    """One placement instance: n agents, m nodes, all of Eq. 11–13 as arrays.

    ``traffic[i, j]`` is data_gb summed over both directions of the (i, j) dependency, so with a
    symmetric ``netcost`` the objective is ½ Σ_ij traffic·netcost[p_i, p_j] + λ Σ_i overhead[i, p_i].
    """

    agents: tuple[str, ...]
    nodes: tuple[str, ...]
    traffic: Floats  # (n, n) symmetric, zero diagonal, GB
    netcost: Floats  # (m, m) symmetric, zero diagonal, latency_ms / bandwidth_gbps (Eq. 13)
    cpu: Floats  # (n,) cores
    mem: Floats  # (n,) bytes
    cap_cpu: Floats  # (m,)
    cap_mem: Floats  # (m,)
    lam: float
    bias: Floats | None = None  # (n, m) extra per-placement cost, e.g. a migration penalty

    @property
    def n(self) -> int:
        return len(self.agents)

    @property
    def m(self) -> int:
        return len(self.nodes)

    @property
    def overhead(self) -> Floats:
        """memory_overhead(i, k) = memory_i / memory(node k): the share of the node it takes."""
        return self.mem[:, None] / self.cap_mem[None, :]

    @property
    def unary(self) -> Floats:
        """λ_mem · memory_overhead, the per-agent term of Eq. 11 (plus any bias)."""
        base = self.lam * self.overhead
        return base if self.bias is None else base + self.bias

    def fits(self) -> NDArray[np.bool_]:
        """(n, m) mask: agent i alone fits node k."""
        return (self.cpu[:, None] <= self.cap_cpu[None, :] + 1e-9) & (
            self.mem[:, None] <= self.cap_mem[None, :] + 1e-9
        )

    def with_lambda(self, lam: float) -> Problem:
        """The same instance with another λ_mem."""
        return Problem(**{**self.__dict__, "lam": float(lam)})

    def with_bias(self, bias: Floats | None) -> Problem:
        """The same instance with an extra (n, m) per-placement cost (None removes it)."""
        return Problem(**{**self.__dict__, "bias": bias})


def build_problem(workflow: Workflow, cluster: Cluster, *, lam: float = 1.0) -> Problem:
    """Arrays of Eq. 11–13 for ``workflow`` on ``cluster``; agents that fit no node are errors."""
    workflow.validate()
    index = {name: i for i, name in enumerate(workflow.names)}
    n, m = len(index), len(cluster.nodes)
    traffic = np.zeros((n, n))
    for i, agent in enumerate(workflow.agents):
        for dep in agent.depends_on:
            j = index[dep.agent]
            traffic[i, j] += dep.data_gb
            traffic[j, i] += dep.data_gb
    names = cluster.names
    netcost = np.zeros((m, m))
    for a in range(m):
        for b in range(a + 1, m):
            netcost[a, b] = netcost[b, a] = cluster.link(names[a], names[b]).cost
    problem = Problem(
        agents=tuple(workflow.names),
        nodes=tuple(names),
        traffic=traffic,
        netcost=netcost,
        cpu=np.array([a.cpu for a in workflow.agents], dtype=np.float64),
        mem=np.array([a.memory for a in workflow.agents], dtype=np.float64),
        cap_cpu=np.array([nd.cpu for nd in cluster.nodes], dtype=np.float64),
        cap_mem=np.array([nd.memory for nd in cluster.nodes], dtype=np.float64),
        lam=float(lam),
    )
    _check_fits(workflow, cluster, problem)
    return problem


def _check_fits(workflow: Workflow, cluster: Cluster, problem: Problem) -> None:
    fits_any = problem.fits().any(axis=1)
    for i in np.flatnonzero(~fits_any):
        agent = workflow.agents[int(i)]
        biggest = max(cluster.nodes, key=lambda nd: (nd.memory, nd.cpu))
        where = f"{agent.source}: " if agent.source else ""
        raise InputError(
            f"{where}agent {agent.name!r} (cpu {format_cpu(agent.cpu)}, memory "
            f"{format_memory(agent.memory)}) fits no node (largest: {biggest.name} with cpu "
            f"{format_cpu(biggest.cpu)}, memory {format_memory(biggest.memory)})"
        )


def objective(problem: Problem, placement: Ints) -> float:
    """Eq. 11: Σ_i comm_cost(p_i) + λ_mem Σ_i memory_overhead(p_i)."""
    return comm_total(problem, placement) + float(problem.unary[np.arange(problem.n), placement].sum())


def comm_total(problem: Problem, placement: Ints) -> float:
    """Σ_i comm_cost(p_i) over every dependency edge once (Eq. 12–13)."""
    c = problem.netcost[np.ix_(placement, placement)]
    return float(0.5 * np.sum(problem.traffic * c))


def comm_per_agent(problem: Problem, placement: Ints) -> Floats:
    """Traffic cost of each agent to all its neighbours (each edge counted at both ends)."""
    c = problem.netcost[np.ix_(placement, placement)]
    return np.asarray((problem.traffic * c).sum(axis=1), dtype=np.float64)


def placement_cost_rows(problem: Problem, placement: Ints) -> Floats:
    """(n, m): cost agent i would have on node k with everyone else fixed (traffic + unary)."""
    return np.asarray(problem.traffic @ problem.netcost[placement, :] + problem.unary, dtype=np.float64)


def loads(problem: Problem, placement: Ints) -> tuple[Floats, Floats]:
    """CPU and memory requested on each node."""
    cpu = np.bincount(placement, weights=problem.cpu, minlength=problem.m)
    mem = np.bincount(placement, weights=problem.mem, minlength=problem.m)
    return cpu.astype(np.float64), mem.astype(np.float64)


def feasible(problem: Problem, placement: Ints) -> bool:
    """True when every node's requests fit its capacity."""
    if (
        placement.shape != (problem.n,)
        or placement.min(initial=0) < 0
        or placement.max(initial=0) >= problem.m
    ):
        return False
    cpu, mem = loads(problem, placement)
    return bool(np.all(cpu <= problem.cap_cpu + 1e-9) and np.all(mem <= problem.cap_mem + 1e-9))
