"""Exact branch and bound for Eq. 11 that proves optimality on small instances.

Agents are branched in max-connectivity order (each next agent talks most to those already
placed), so most traffic is priced early. Bounds: cost so far + for every unplaced agent its
cheapest node with room priced against the placed agents, the fractional-knapsack LP of the
memory term, and a Lagrangian relaxation of the capacities in which matched talking pairs are
priced jointly. Identical nodes (same capacity, same links to all others) are interchangeable:
only the first empty one of a class is opened. The incumbent is warm-started from the local
search. The tree is walked depth first over *batches* of same-depth nodes, every child of a
batch bounded by one set of array operations.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sedma.deploy.objective import Floats, Ints, Problem, objective
from sedma.errors import InputError

_EPS = 1e-9


@dataclass(frozen=True)
class ExactResult:
    """Best placement, its objective, the proven lower bound, and whether it is proven optimal."""

    placement: Ints
    value: float
    bound: float
    optimal: bool
    nodes_explored: int


def branch_order(problem: Problem) -> Ints:
    """Max-connectivity order: start at the heaviest talker, then most traffic to those chosen."""
    strength = problem.traffic.sum(axis=1)
    order = [int(np.argmax(strength))]
    link = problem.traffic[order[0]].copy()
    chosen = np.zeros(problem.n, dtype=bool)
    chosen[order[0]] = True
    for _ in range(problem.n - 1):
        key = np.where(chosen, -np.inf, link + 1e-9 * strength)
        nxt = int(np.argmax(key))
        order.append(nxt)
        chosen[nxt] = True
        link += problem.traffic[nxt]
    return np.array(order, dtype=np.int64)


def node_classes(problem: Problem) -> Ints:
    """Class id per node; nodes of one class are interchangeable in every placement."""
    m, cls = problem.m, np.arange(problem.m)
    C = problem.netcost
    for a in range(m):
        if cls[a] != a:
            continue
        for b in range(a + 1, m):
            if (
                cls[b] != b
                or problem.cap_cpu[a] != problem.cap_cpu[b]
                or problem.cap_mem[a] != problem.cap_mem[b]
            ):
                continue
            others = np.ones(m, dtype=bool)
            others[[a, b]] = False
            if np.allclose(C[a, others], C[b, others]):
                cls[b] = a
    return np.asarray(cls, dtype=np.int64)


LAGRANGE_ITERS = 4


@functools.lru_cache(maxsize=512)
def _flat_index(C: int, R: int, m: int) -> tuple[Ints, Ints]:
    """Offsets into a raveled (C, R, m) array and the (child, node) slot base of each row."""
    base = (np.arange(C * R) * m).reshape(C, R)
    owner = np.repeat(np.arange(C) * m, R).reshape(C, R)
    return base, owner


@dataclass(frozen=True)
class Pairing:
    """A matching of unplaced agents that talk (positions in the unplaced list), and the rest.

    Each matched pair is priced jointly, so traffic the capacities force apart counts in the
    bound; all other traffic between unplaced agents is bounded below by 0.
    """

    a: Ints
    b: Ints
    w: Floats
    single: Ints


def pairing(traffic: Floats, rest: Ints) -> Pairing:
    """Greedy maximum-weight matching on the traffic among the unplaced agents ``rest``."""
    sub = np.triu(traffic[np.ix_(rest, rest)], 1)
    used = np.zeros(len(rest), dtype=bool)
    a, b = [], []
    for flat in np.argsort(-sub, axis=None):
        i, j = divmod(int(flat), len(rest))
        if sub[i, j] <= 0:
            break
        if not used[i] and not used[j]:
            used[i] = used[j] = True
            a.append(i)
            b.append(j)
    ia, ib = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
    return Pairing(ia, ib, sub[ia, ib].astype(np.float64), np.flatnonzero(~used).astype(np.int64))


def _choose(pen: Floats, pr: Pairing, netcost: Floats, coloc_bad: NDArray[np.bool_]) -> tuple[Floats, Ints]:
    """Minimum of the relaxed problem per child and the node each unplaced agent takes in it."""
    C, R, m = pen.shape
    choice = np.empty((C, R), dtype=np.int64)
    single = pen[:, pr.single]
    ks = single.argmin(axis=2)
    val = single.min(axis=2).sum(axis=1)  # a second reduction beats take_along_axis here
    choice[:, pr.single] = ks
    if len(pr.a):
        joint = pen[:, pr.a, :, None] + pen[:, pr.b, None, :] + pr.w[None, :, None, None] * netcost
        diag = np.arange(m)
        joint[:, :, diag, diag] = np.where(coloc_bad, np.inf, joint[:, :, diag, diag])
        flat = joint.reshape(C, len(pr.a), m * m)
        idx = flat.argmin(axis=2)
        val = val + flat.min(axis=2).sum(axis=1)
        choice[:, pr.a], choice[:, pr.b] = idx // m, idx % m
    return val, choice


def lagrangian_bound(
    cost: Floats,
    d_cpu: Floats,
    d_mem: Floats,
    f_cpu: Floats,
    f_mem: Floats,
    target: Floats,
    mu0: tuple[Floats, Floats],
    pr: Pairing,
    netcost: Floats,
    *,
    deadline: float = np.inf,
) -> tuple[Floats, Floats, Floats]:
    """Lagrangian relaxation of the capacities for the unplaced agents, per child.

    cost (C, R, m): each unplaced agent's cost per node (inf = does not fit); d (R,): demands;
    f (C, m): free capacity per child. For prices μ >= 0, the relaxed minimum (singles, and
    matched pairs priced jointly with their traffic) − Σ_k μ_k f_k is a lower bound; Polyak
    subgradient steps towards ``target`` (the incumbent's slack) raise it. Prices start from
    the parent's ``mu0`` (m,) and are returned per child for its subtree. Every iteration's
    value is a bound, so past ``deadline`` the steps stop with the best so far.
    """
    C, R, m = cost.shape
    mu_c, mu_m = mu0[0].copy(), mu0[1].copy()
    best = np.full(C, -np.inf)
    _, owner = _flat_index(C, R, m)
    wc, wm = np.broadcast_to(d_cpu, (C, R)).ravel(), np.broadcast_to(d_mem, (C, R)).ravel()
    coloc_bad = ((d_cpu[pr.a] + d_cpu[pr.b])[None, :, None] > f_cpu[:, None, :] + _EPS) | (
        (d_mem[pr.a] + d_mem[pr.b])[None, :, None] > f_mem[:, None, :] + _EPS
    )
    for _ in range(LAGRANGE_ITERS):
        pen = cost + mu_c[:, None, :] * d_cpu[None, :, None] + mu_m[:, None, :] * d_mem[None, :, None]
        val, k = _choose(pen, pr, netcost, coloc_bad)
        val = val - (mu_c * f_cpu).sum(axis=1) - (mu_m * f_mem).sum(axis=1)
        best = np.maximum(best, val)
        with np.errstate(invalid="ignore"):  # inf - inf without an incumbent: no step
            gap = target - best
        if not np.any((gap > _EPS) & np.isfinite(best)) or time.perf_counter() > deadline:
            break
        slot = (owner + k).ravel()
        g_c = np.bincount(slot, weights=wc, minlength=C * m).reshape(C, m) - f_cpu
        g_m = np.bincount(slot, weights=wm, minlength=C * m).reshape(C, m) - f_mem
        # Prices only rise where a node is over-subscribed, or fall back towards 0 elsewhere.
        g_c = np.where((mu_c > 0) | (g_c > 0), g_c, 0.0)
        g_m = np.where((mu_m > 0) | (g_m > 0), g_m, 0.0)
        norm = (g_c**2).sum(axis=1) + (g_m**2).sum(axis=1)
        step = np.where(np.isfinite(gap) & (norm > 0), np.maximum(gap, 0.0) / np.maximum(norm, 1e-12), 0.0)
        mu_c = np.maximum(mu_c + step[:, None] * g_c, 0.0)
        mu_m = np.maximum(mu_m + step[:, None] * g_m, 0.0)
    return best, mu_c, mu_m


@dataclass
class _Batch:
    """Tree nodes at one depth, as arrays (one row per node): they are bounded together."""

    assign: Ints  # (F, n) node per agent, -1 while unplaced
    g: Floats  # (F,) Eq. 11 cost of the placed agents
    rows: Floats  # (F, n, m) traffic cost of each agent on each node towards the placed agents
    free_cpu: Floats  # (F, m)
    free_mem: Floats  # (F, m)
    used: NDArray[np.bool_]  # (F, m) node holds an agent
    mu_c: Floats  # (F, m) Lagrangian prices inherited by the subtree
    mu_m: Floats
    lb: Floats  # (F,) the bound each node was admitted with

    def take(self, idx: Ints) -> _Batch:
        return _Batch(*(getattr(self, f)[idx] for f in _BATCH_FIELDS))

    def __len__(self) -> int:
        return len(self.g)


_BATCH_FIELDS = ("assign", "g", "rows", "free_cpu", "free_mem", "used", "mu_c", "mu_m", "lb")
CHUNK_ELEMENTS = 250_000  # (nodes × children × unplaced × nodes) per vectorised step


class _Search:
    """Depth-first over *batches* of tree nodes: each step bounds every child of up to a chunk
    of same-depth nodes with one set of array operations, so the per-node Python cost vanishes."""

    def __init__(
        self, problem: Problem, incumbent: Ints | None, deadline: float, cutoff: float = np.inf
    ) -> None:
        self.pb, self.deadline = problem, deadline
        self.order = branch_order(problem)
        cls = node_classes(problem)
        # before[j, k]: j is an earlier node of k's class (symmetry breaking on empty nodes).
        self.before = (cls[:, None] == cls[None, :]) & (np.arange(problem.m)[:, None] < np.arange(problem.m))
        self.best_p = None if incumbent is None else incumbent.copy()
        self.best_v = min(cutoff, np.inf if incumbent is None else objective(problem, incumbent))
        self.explored = 0
        self.timed_out = False
        self.unary = problem.unary
        self.by_size = np.argsort(-problem.cap_mem, kind="stable")
        self.inv_size = 1.0 / problem.cap_mem[self.by_size]
        self.s_cpu, self.s_mem = float(problem.cap_cpu.mean()), float(problem.cap_mem.mean())
        # The unplaced set at each depth is fixed by the static order: match it once.
        self.pairings = [pairing(problem.traffic, self.order[d + 1 :]) for d in range(problem.n)]
        self.rest_mem = np.append(np.cumsum(problem.mem[self.order][::-1])[::-1], 0.0)

    def root(self) -> _Batch:
        pb = self.pb
        z = np.zeros((1, pb.m))
        return _Batch(
            np.full((1, pb.n), -1, dtype=np.int64),
            np.zeros(1),
            np.zeros((1, pb.n, pb.m)),
            pb.cap_cpu[None].copy(),
            pb.cap_mem[None].copy(),
            np.zeros((1, pb.m), dtype=bool),
            z.copy(),
            z.copy(),
            np.zeros(1),
        )

    def run(self) -> float:
        """Search; returns the smallest bound of any node left open (the incumbent if none)."""
        stack: list[tuple[int, _Batch]] = [(0, self.root())]
        while stack:
            if time.perf_counter() > self.deadline:
                self.timed_out = True
                return min([self.best_v, *(float(b.lb.min()) for _, b in stack)])
            depth, batch = stack.pop()
            batch = batch.take(np.flatnonzero(batch.lb < self.best_v - _EPS))
            if len(batch) == 0:
                continue
            self.explored += len(batch)
            children = self.expand(depth, batch)
            if children is None or len(children) == 0:
                continue
            per = max(1, CHUNK_ELEMENTS // max(1, self.pb.m * self.pb.m * (self.pb.n - depth)))
            order = np.argsort(-children.lb, kind="stable")  # best bounds popped first
            for start in range(0, len(order), per):
                stack.append((depth + 1, children.take(order[start : start + per])))
        return self.best_v

    def expand(self, depth: int, b: _Batch) -> _Batch | None:
        """Children of every node in ``b`` (agent order[depth] on each node) that beat the incumbent."""
        pb, i = self.pb, int(self.order[depth])
        eye = np.eye(pb.m)
        fc = b.free_cpu[:, None, :] - pb.cpu[i] * eye  # (F, child k, node)
        fm = b.free_mem[:, None, :] - pb.mem[i] * eye
        g2 = b.g[:, None] + b.rows[:, i, :] + self.unary[i][None, :]
        blocked = (~b.used).astype(np.int64) @ self.before.astype(np.int64) > 0
        valid = (np.diagonal(fc, axis1=1, axis2=2) >= -_EPS) & (np.diagonal(fm, axis1=1, axis2=2) >= -_EPS)
        valid &= b.used | ~blocked
        if depth + 1 == pb.n:
            self.leaves(b, i, np.where(valid, g2, np.inf))
            return None
        lb, mu_c, mu_m = self.bounds(depth, b, i, g2, valid, fc, fm)
        f_idx, k_idx = np.nonzero(valid & (lb < self.best_v - _EPS))
        rows = b.rows[f_idx] + pb.traffic[:, i][None, :, None] * pb.netcost[k_idx][:, None, :]
        assign = b.assign[f_idx].copy()
        assign[:, i] = k_idx
        used = b.used[f_idx].copy()
        used[np.arange(len(k_idx)), k_idx] = True
        return _Batch(
            assign,
            g2[f_idx, k_idx],
            rows,
            fc[f_idx, k_idx],
            fm[f_idx, k_idx],
            used,
            mu_c[f_idx, k_idx],
            mu_m[f_idx, k_idx],
            lb[f_idx, k_idx],
        )

    def leaves(self, b: _Batch, i: int, values: Floats) -> None:
        f, k = np.unravel_index(int(np.argmin(values)), values.shape)
        if values[f, k] < self.best_v - _EPS:
            self.best_v = float(values[f, k])
            self.best_p = b.assign[f].copy()
            self.best_p[i] = k

    def bounds(
        self, depth: int, b: _Batch, i: int, g2: Floats, valid: NDArray[np.bool_], fc: Floats, fm: Floats
    ) -> tuple[Floats, Floats, Floats]:
        """(F, m) lower bounds of the children, and their Lagrangian prices."""
        pb, rest = self.pb, self.order[depth + 1 :]
        m = g2.shape[1]
        ok = (pb.cpu[rest][None, None, :, None] <= fc[:, :, None, :] + _EPS) & (
            pb.mem[rest][None, None, :, None] <= fm[:, :, None, :] + _EPS
        )
        comm_rows = (
            b.rows[:, None, rest, :] + pb.traffic[rest, i][None, None, :, None] * pb.netcost[None, :, None, :]
        )
        cost = np.where(ok, comm_rows + self.unary[rest][None, None], np.inf)
        both = cost.min(axis=3).sum(axis=2)
        comm = np.where(ok, comm_rows, np.inf).min(axis=3).sum(axis=2)
        # Fractional knapsack of the memory term: λ·Σ load_k/mem_k is linear in bytes.
        free = np.maximum(fm[:, :, self.by_size], 0.0)
        before = np.cumsum(free, axis=2) - free
        take = np.clip(self.rest_mem[depth + 1] - before, 0.0, free)
        lb = g2 + np.maximum(both, comm + pb.lam * (take * self.inv_size).sum(axis=2))
        mu_c = np.repeat(b.mu_c[:, None, :], m, axis=1)
        mu_m = np.repeat(b.mu_m[:, None, :], m, axis=1)
        f_o, k_o = np.nonzero(valid & (lb < self.best_v - _EPS))
        if len(f_o) and len(rest) > 1:
            lag, mu_c[f_o, k_o], mu_m[f_o, k_o] = lagrangian_bound(
                cost[f_o, k_o],
                pb.cpu[rest] / self.s_cpu,
                pb.mem[rest] / self.s_mem,
                fc[f_o, k_o] / self.s_cpu,
                fm[f_o, k_o] / self.s_mem,
                self.best_v - g2[f_o, k_o],
                (mu_c[f_o, k_o], mu_m[f_o, k_o]),
                self.pairings[depth],
                pb.netcost,
                deadline=self.deadline,
            )
            lb[f_o, k_o] = np.maximum(lb[f_o, k_o], g2[f_o, k_o] + lag)
        return np.where(valid, lb, np.inf), mu_c, mu_m


def branch_and_bound(problem: Problem, incumbent: Ints | None, *, time_limit: float = 10.0) -> ExactResult:
    """Minimise Eq. 11 exactly; on timeout return the incumbent with the best proven bound.

    Without an incumbent the search also decides feasibility: InputError when none exists.
    """
    search = _Search(problem, incumbent, time.perf_counter() + time_limit)
    bound = search.run()
    if search.best_p is None:
        why = "within the time limit" if search.timed_out else "(proven by exhaustive search)"
        raise InputError(f"exact: no feasible placement {why}")
    if search.timed_out:
        return ExactResult(search.best_p, search.best_v, min(bound, search.best_v), False, search.explored)
    return ExactResult(search.best_p, search.best_v, search.best_v, True, search.explored)


@dataclass(frozen=True)
class Below:
    """Outcome of :func:`search_below`: the optimum if it lies below the cutoff, else None."""

    placement: Ints | None
    value: float  # the optimum below the cutoff, else the cutoff
    bound: float  # proven lower bound of the optimum (the cutoff once the search is complete)
    complete: bool  # False: the deadline stopped the search
    nodes_explored: int


def search_below(problem: Problem, cutoff: float, *, deadline: float) -> Below:
    """The optimum of Eq. 11 if it is below ``cutoff`` (None proves there is none), by the
    branch and bound pruning against the cutoff from the start."""
    search = _Search(problem, None, deadline, cutoff)
    bound = search.run()
    return Below(search.best_p, search.best_v, bound, not search.timed_out, search.explored)
