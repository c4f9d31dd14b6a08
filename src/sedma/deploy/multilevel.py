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
    """Cluster id per agent: pairs along locally heaviest edges whose pair fits half a node.

    Handshake rounds (every free agent proposes to its heaviest free neighbour; mutual proposals
    pair up) are array operations and converge to the greedy heavy-edge matching; a small
    symmetric random factor on the weights varies the matching between calls. With ``keep`` (a
    placement) only agents on the same node pair up, so the placement survives coarsening.
    """
    n, ar = problem.n, np.arange(problem.n)
    fit = (problem.cpu[:, None] + problem.cpu[None, :] <= problem.cap_cpu.max() * 0.5) & (
        problem.mem[:, None] + problem.mem[None, :] <= problem.cap_mem.max() * 0.5
    )
    if keep is not None:
        fit &= keep[:, None] == keep[None, :]
    noise = rng.random((n, n))
    w = np.where(fit, problem.traffic * (1.0 + 0.25 * (noise + noise.T)), 0.0)
    np.fill_diagonal(w, 0.0)
    mate = ar.copy()
    while True:
        j = np.argmax(w, axis=1)
        mutual = (w[ar, j] > 0) & (j[j] == ar)
        if not mutual.any():
            break
        mate[mutual] = j[mutual]
        w[mutual, :] = 0.0
        w[:, mutual] = 0.0
    _, cluster = np.unique(np.minimum(ar, mate), return_inverse=True)
    return np.asarray(cluster, dtype=np.int64)


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


# Coarsening stops at 2 clusters per node but never below this many: on a zone-level problem
# (5 zones) 16 clusters of ~6 agents were too coarse to pack zones tightly; at 24 the median
# zone objective over seeds 0-4 fell from 125.6 to 123.9 (docs/deploy.md).
MIN_CLUSTERS = 24

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
    while current.n > max(2 * current.m, MIN_CLUSTERS):
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


GROUP_RATIO = 0.1  # nodes whose link costs at most this share of the dearest link form a group
GROUP_FILL = 0.97  # share of a group's summed capacity the group search may fill: room to bin-pack


def node_groups(problem: Problem) -> Ints:
    """Group id per node: components of the links costing <= GROUP_RATIO of the dearest (zones)."""
    close = problem.netcost <= GROUP_RATIO * max(float(problem.netcost.max()), 1e-12)
    reach = close | close.T | np.eye(problem.m, dtype=bool)
    # Transitive closure by repeated squaring (log2 m boolean products); no scipy import, which
    # cost ~1 s of a 2 s plan on a cold process.
    while True:
        wider = (reach.astype(np.int64) @ reach.astype(np.int64)) > 0
        if np.array_equal(wider, reach):
            break
        reach = wider
    _, labels = np.unique(np.argmax(reach, axis=1), return_inverse=True)
    return np.asarray(labels, dtype=np.int64)


def group_problem(problem: Problem, groups: Ints) -> Problem:
    """The agents over node groups: summed capacities, mean link cost between groups, and the
    memory term as if each group's load were spread in proportion to its nodes' memory."""
    g = int(groups.max()) + 1
    G = np.zeros((problem.m, g))
    G[np.arange(problem.m), groups] = 1.0
    size = G.sum(axis=0)
    netcost = G.T @ problem.netcost @ G / np.outer(size, size)
    np.fill_diagonal(netcost, 0.0)
    cap_mem = G.T @ problem.cap_mem
    bias = problem.lam * problem.mem[:, None] * (size / cap_mem)[None, :]
    if problem.bias is not None:
        bias = bias + problem.bias @ G / size
    return Problem(
        agents=problem.agents,
        nodes=tuple(f"g{k}" for k in range(g)),
        traffic=problem.traffic,
        netcost=netcost,
        cpu=problem.cpu,
        mem=problem.mem,
        cap_cpu=GROUP_FILL * (G.T @ problem.cap_cpu),
        cap_mem=GROUP_FILL * cap_mem,
        lam=0.0,
        bias=bias,
    )


def spread_in_groups(problem: Problem, groups: Ints, group_of: Ints) -> Ints:
    """A node per agent inside its group: agents fill the group's nodes in proportion to memory
    (nearly feasible; the caller repairs what overflows)."""
    p = np.empty(problem.n, dtype=np.int64)
    for g in np.unique(group_of):
        agents = np.flatnonzero(group_of == g)
        nodes = np.flatnonzero(groups == g)
        order = agents[np.argsort(-problem.mem[agents], kind="stable")]
        share = np.cumsum(problem.mem[order]) / problem.mem[order].sum()
        bounds = np.cumsum(problem.cap_mem[nodes]) / problem.cap_mem[nodes].sum()
        p[order] = nodes[np.minimum(np.searchsorted(bounds, share - 1e-12), len(nodes) - 1)]
    return p
