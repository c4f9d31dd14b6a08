"""Baselines: the default Kubernetes scheduler (k8s-native), traffic-greedy, and static."""

from __future__ import annotations

import numpy as np

from sedma.deploy.objective import Ints, Problem

MAX_NODE_SCORE = 100
# Non-zero request defaults the scheduler scores with when a pod requests nothing.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 2**20


def _k8s_units(problem: Problem) -> tuple[Ints, Ints, Ints, Ints]:
    """Integer millicores and bytes, as the scheduler's framework.Resource holds them."""
    req_cpu = np.ceil(problem.cpu * 1000).astype(np.int64)
    req_mem = np.ceil(problem.mem).astype(np.int64)
    cap_cpu = np.floor(problem.cap_cpu * 1000).astype(np.int64)
    cap_mem = np.floor(problem.cap_mem).astype(np.int64)
    return req_cpu, req_mem, cap_cpu, cap_mem


def k8s_scores(
    used_cpu: Ints, used_mem: Ints, cap_cpu: Ints, cap_mem: Ints, pod_cpu: int, pod_mem: int
) -> Ints:
    """Default-profile score per node: LeastAllocated (weight 1) + BalancedAllocation (weight 1).

    LeastAllocated: per resource (alloc − requested)·100 // alloc, averaged (integer) over cpu and
    memory with equal weights. BalancedAllocation: f = min(requested/alloc, 1) per resource,
    score = int((1 − std(f))·100). ``requested`` includes the incoming pod with non-zero defaults.
    """
    cpu = used_cpu + (pod_cpu or DEFAULT_MILLI_CPU)
    mem = used_mem + (pod_mem or DEFAULT_MEMORY)
    la_cpu = np.where(cpu > cap_cpu, 0, (cap_cpu - cpu) * MAX_NODE_SCORE // np.maximum(cap_cpu, 1))
    la_mem = np.where(mem > cap_mem, 0, (cap_mem - mem) * MAX_NODE_SCORE // np.maximum(cap_mem, 1))
    least = (la_cpu + la_mem) // 2
    f_cpu = np.minimum(cpu / np.maximum(cap_cpu, 1), 1.0)
    f_mem = np.minimum(mem / np.maximum(cap_mem, 1), 1.0)
    std = np.abs(f_cpu - f_mem) / 2.0  # population std of two values
    balanced = ((1.0 - std) * MAX_NODE_SCORE).astype(np.int64)
    return np.asarray(least + balanced, dtype=np.int64)


def k8s_native(problem: Problem, *, seed: int = 0, fixed: Ints | None = None) -> Ints | None:
    """Place pods one at a time in workflow order as the default scheduler does; None if stuck.

    ``fixed`` (node index or -1 per agent) keeps running pods where they are and schedules only
    the -1 ones, as after an eviction.
    """
    rng = np.random.default_rng(seed)
    req_cpu, req_mem, cap_cpu, cap_mem = _k8s_units(problem)
    placement = np.full(problem.n, -1, dtype=np.int64) if fixed is None else fixed.astype(np.int64).copy()
    run = placement >= 0
    used_cpu = np.bincount(placement[run], weights=req_cpu[run], minlength=problem.m).astype(np.int64)
    used_mem = np.bincount(placement[run], weights=req_mem[run], minlength=problem.m).astype(np.int64)
    for i in np.flatnonzero(~run):
        # Filter (NodeResourcesFit): the pod's requests fit what is left allocatable.
        ok = (used_cpu + req_cpu[i] <= cap_cpu) & (used_mem + req_mem[i] <= cap_mem)
        if not ok.any():
            return None
        scores = np.where(ok, k8s_scores(used_cpu, used_mem, cap_cpu, cap_mem, req_cpu[i], req_mem[i]), -1)
        best = np.flatnonzero(scores == scores.max())
        node = int(best[rng.integers(len(best))])  # ties: uniform random choice, seeded
        placement[i] = node
        used_cpu[node] += req_cpu[i]
        used_mem[node] += req_mem[i]
    return placement


def greedy(problem: Problem) -> Ints | None:
    """Traffic-greedy: heaviest-talking agents first, each on the node cheapest given those placed."""
    order = np.argsort(-problem.traffic.sum(axis=1), kind="stable")
    free_cpu, free_mem = problem.cap_cpu.copy(), problem.cap_mem.copy()
    placement = np.full(problem.n, -1, dtype=np.int64)
    # rows[i, k]: cost of agent i on node k given the agents placed so far (Eq. 12 + unary).
    rows = problem.unary.copy()
    for i in order:
        ok = (problem.cpu[i] <= free_cpu + 1e-9) & (problem.mem[i] <= free_mem + 1e-9)
        if not ok.any():
            return None
        # Ties go to the emptiest node so later agents keep room next to their neighbours.
        key = np.where(ok, rows[i], np.inf) - 1e-12 * free_mem / problem.cap_mem
        node = int(np.argmin(key))
        placement[i] = node
        free_cpu[node] -= problem.cpu[i]
        free_mem[node] -= problem.mem[i]
        rows += np.outer(problem.traffic[:, i], problem.netcost[node])
    return placement


def first_fit_decreasing(problem: Problem) -> Ints | None:
    """Feasibility fallback: largest memory share first, onto the node with most room left."""
    order = np.argsort(-(problem.mem / problem.cap_mem.max() + problem.cpu / problem.cap_cpu.max()))
    free_cpu, free_mem = problem.cap_cpu.copy(), problem.cap_mem.copy()
    placement = np.full(problem.n, -1, dtype=np.int64)
    for i in order:
        ok = (problem.cpu[i] <= free_cpu + 1e-9) & (problem.mem[i] <= free_mem + 1e-9)
        if not ok.any():
            return None
        node = int(np.argmax(np.where(ok, free_mem / problem.cap_mem + free_cpu / problem.cap_cpu, -np.inf)))
        placement[i] = node
        free_cpu[node] -= problem.cpu[i]
        free_mem[node] -= problem.mem[i]
    return placement


def static(first: Ints) -> Ints:
    """The static baseline: the first placement, kept whatever happens."""
    return first.copy()
