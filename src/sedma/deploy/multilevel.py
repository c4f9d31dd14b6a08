"""Multilevel starts for the local search: coarsen the agent graph, solve small, refine back.

Eq. 11 is dominated by the traffic that crosses expensive links, i.e. by a capacitated graph
partition. As in multilevel partitioners, heavy-edge matching merges agents that talk most into
one super-agent (demands add; the memory term λ·mem/mem(node) is linear in bytes, so it adds
too; traffic inside a pair stays on one node and drops out), the small problem is searched, and
the placement is projected back level by level with a local search at each level.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from sedma.deploy.objective import Ints, Problem


def heavy_edge_matching(problem: Problem, rng: np.random.Generator, keep: Ints | None = None) -> Ints:
    """Cluster id per agent: each agent pairs with its heaviest unmatched neighbour that fits a node.

    With ``keep`` (a placement) only agents on the same node pair up, so the placement survives
    coarsening and the coarse search moves whole groups (an iterated V-cycle).
    """
    n = problem.n
    cluster = np.full(n, -1, dtype=np.int64)
    fit_cpu, fit_mem = problem.cap_cpu.max() * 0.5, problem.cap_mem.max() * 0.5
    nxt = 0
    for i in rng.permutation(n):
        if cluster[i] >= 0:
            continue
        w = np.where(cluster < 0, problem.traffic[i], 0.0)
        w[i] = 0.0
        if keep is not None:
            w = np.where(keep == keep[i], w, 0.0)
        w = np.where(
            (problem.cpu + problem.cpu[i] <= fit_cpu) & (problem.mem + problem.mem[i] <= fit_mem), w, 0.0
        )
        j = int(np.argmax(w))
        cluster[i] = nxt
        if w[j] > 0:
            cluster[j] = nxt
        nxt += 1
    return cluster


def coarsen(problem: Problem, cluster: Ints) -> Problem:
    """The problem over clusters: summed demands, summed unary, traffic between clusters only."""
    k = int(cluster.max()) + 1
    P = np.zeros((problem.n, k))
    P[np.arange(problem.n), cluster] = 1.0
    traffic = P.T @ problem.traffic @ P
    np.fill_diagonal(traffic, 0.0)
    bias = None if problem.bias is None else P.T @ problem.bias
    return Problem(
        agents=tuple(f"c{c}" for c in range(k)),
        nodes=problem.nodes,
        traffic=traffic,
        netcost=problem.netcost,
        cpu=P.T @ problem.cpu,
        mem=P.T @ problem.mem,
        cap_cpu=problem.cap_cpu,
        cap_mem=problem.cap_mem,
        lam=problem.lam,
        bias=bias,
    )


Solver = Callable[[Problem, list[Ints], float], Ints | None]
Start = Callable[[Problem], Ints | None]


def multilevel_start(
    problem: Problem,
    *,
    rng: np.random.Generator,
    budget: float,
    solve: Solver,
    start: Start,
    keep: Ints | None = None,
) -> Ints | None:
    """Coarsen until the graph stops shrinking or is small, solve, project back refining each level."""
    levels: list[tuple[Problem, Ints]] = []
    current = problem
    kept = keep
    while current.n > max(2 * current.m, 16):
        cluster = heavy_edge_matching(current, rng, kept)
        if cluster.max() + 1 > 0.9 * current.n:
            break
        levels.append((current, cluster))
        if kept is not None:
            coarse_keep = np.empty(int(cluster.max()) + 1, dtype=np.int64)
            coarse_keep[cluster] = kept
            kept = coarse_keep
        current = coarsen(current, cluster)
    if not levels:
        return None
    deadline = time.perf_counter() + budget
    init = kept if kept is not None else start(current)
    if init is None:
        return None
    p = solve(current, [init], budget / (len(levels) + 1))
    for fine, cluster in reversed(levels):
        if p is None:
            return None
        left = max(deadline - time.perf_counter(), 1e-3)
        p = solve(fine, [p[cluster]], left / (1 + sum(1 for _ in levels)))
    return p
