"""Exact branch and bound for Eq. 11 that proves optimality on small instances.

Agents are branched in max-connectivity order (each next agent talks most to those already
placed), so most traffic is priced early. Bound: cost so far + for every unplaced agent its
cheapest node that still has room, priced against the placed agents (its traffic to other
unplaced agents is bounded below by 0). Identical nodes (same capacity, same links to all
others) are interchangeable: only the first empty one of a class is tried. The incumbent is
warm-started from the local search.
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
_Children = tuple[Floats, Floats, Floats, Floats]


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
) -> tuple[Floats, Floats, Floats]:
    """Lagrangian relaxation of the capacities for the unplaced agents, per child.

    cost (C, R, m): each unplaced agent's cost per node (inf = does not fit); d (R,): demands;
    f (C, m): free capacity per child. For prices μ >= 0, the relaxed minimum (singles, and
    matched pairs priced jointly with their traffic) − Σ_k μ_k f_k is a lower bound; Polyak
    subgradient steps towards ``target`` (the incumbent's slack) raise it. Prices start from
    the parent's ``mu0`` (m,) and are returned per child for its subtree.
    """
    C, R, m = cost.shape
    mu_c, mu_m = np.repeat(mu0[0][None, :], C, axis=0), np.repeat(mu0[1][None, :], C, axis=0)
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
        if not np.any((gap > _EPS) & np.isfinite(best)):
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


class _Search:
    def __init__(self, problem: Problem, incumbent: Ints | None, deadline: float) -> None:
        self.pb, self.deadline = problem, deadline
        self.order = branch_order(problem)
        self.cls = node_classes(problem)
        self.best_p = None if incumbent is None else incumbent.copy()
        self.best_v = np.inf if incumbent is None else objective(problem, incumbent)
        self.p = np.full(problem.n, -1, dtype=np.int64)
        self.free_cpu, self.free_mem = problem.cap_cpu.copy(), problem.cap_mem.copy()
        self.count = np.zeros(problem.m, dtype=np.int64)
        self.explored = 0
        self.timed_out = False
        self.open_bounds: list[float] = []  # bounds of subtrees abandoned at the deadline
        self.unary = problem.unary
        self.by_size = np.argsort(-problem.cap_mem, kind="stable")
        self.inv_size = 1.0 / problem.cap_mem[self.by_size]
        self.s_cpu, self.s_mem = float(problem.cap_cpu.mean()), float(problem.cap_mem.mean())
        # The unplaced set at each depth is fixed by the static order: match it once.
        self.pairings = [pairing(problem.traffic, self.order[d + 1 :]) for d in range(problem.n)]
        self.rest_mem = np.append(np.cumsum(problem.mem[self.order][::-1])[::-1], 0.0)

    def rest_bound(self, rows: Floats, depth: int) -> float:
        """Lower bound on the unplaced agents' share of Eq. 11.

        max of (a) Σ_i min over nodes with room of (traffic to placed + λ·overhead) and
        (b) Σ_i min traffic to placed + the fractional-knapsack bound of the memory term:
        λ·Σ_i mem_i/mem(p_i) = λ·Σ_k load_k/mem_k is linear in bytes, so pouring the unplaced
        bytes into the free memory of the largest nodes first is its exact LP relaxation.
        """
        rest = self.order[depth:]
        if len(rest) == 0:
            return 0.0
        ok = (self.pb.cpu[rest, None] <= self.free_cpu + _EPS) & (
            self.pb.mem[rest, None] <= self.free_mem + _EPS
        )
        both = float(np.where(ok, rows[rest] + self.unary[rest], np.inf).min(axis=1).sum())
        comm = float(np.where(ok, rows[rest], np.inf).min(axis=1).sum())
        free = np.maximum(self.free_mem[self.by_size], 0.0)
        before = np.cumsum(free) - free
        take = np.clip(self.rest_mem[depth] - before, 0.0, free)
        return max(both, comm + self.pb.lam * float((take * self.inv_size).sum()))

    def child_bounds(self, depth: int, g: float, rows: Floats, mu: tuple[Floats, Floats]) -> _Children:
        """Cost so far, lower bound and capacity prices of placing agent order[depth] on each node."""
        pb, i = self.pb, int(self.order[depth])
        eye = np.eye(pb.m)
        fc = self.free_cpu[None, :] - pb.cpu[i] * eye  # (child k, node k')
        fm = self.free_mem[None, :] - pb.mem[i] * eye
        g2 = g + rows[i] + self.unary[i]
        valid = (fc.diagonal() >= -_EPS) & (fm.diagonal() >= -_EPS) & self.first_of_class()
        rest = self.order[depth + 1 :]
        mu_c, mu_m = np.repeat(mu[0][None, :], pb.m, axis=0), np.repeat(mu[1][None, :], pb.m, axis=0)
        if len(rest) == 0:
            return g2, np.where(valid, g2, np.inf), mu_c, mu_m
        ok = (pb.cpu[rest][None, :, None] <= fc[:, None, :] + _EPS) & (
            pb.mem[rest][None, :, None] <= fm[:, None, :] + _EPS
        )
        comm_rows = rows[rest][None, :, :] + pb.traffic[rest, i][None, :, None] * pb.netcost[:, None, :]
        cost = np.where(ok, comm_rows + self.unary[rest][None], np.inf)
        both = cost.min(axis=2).sum(axis=1)
        comm = np.where(ok, comm_rows, np.inf).min(axis=2).sum(axis=1)
        # Fractional knapsack of the memory term (see rest_bound), one row per child.
        free = np.maximum(fm[:, self.by_size], 0.0)
        before = np.cumsum(free, axis=1) - free
        take = np.clip(self.rest_mem[depth + 1] - before, 0.0, free)
        frac = pb.lam * (take * self.inv_size).sum(axis=1)
        cheap = g2 + np.maximum(both, comm + frac)
        # Only children the cheap bound cannot prune pay for the Lagrangian one.
        open_ = np.flatnonzero(valid & (cheap < self.best_v - _EPS))
        if len(open_) and len(rest) > 1:
            lag, mu_c[open_], mu_m[open_] = lagrangian_bound(
                cost[open_],
                pb.cpu[rest] / self.s_cpu,
                pb.mem[rest] / self.s_mem,
                fc[open_] / self.s_cpu,
                fm[open_] / self.s_mem,
                self.best_v - g2[open_],
                mu,
                self.pairings[depth],
                pb.netcost,
            )
            cheap[open_] = np.maximum(cheap[open_], g2[open_] + lag)
        return g2, np.where(valid, cheap, np.inf), mu_c, mu_m

    def first_of_class(self) -> NDArray[np.bool_]:
        """Symmetry breaking: of identical empty nodes only the first may be opened."""
        empty = self.count == 0
        keep: NDArray[np.bool_] = ~empty
        seen: set[int] = set()
        for k in np.flatnonzero(empty):
            c = int(self.cls[k])
            if c not in seen:
                seen.add(c)
                keep[k] = True
        return keep

    def dfs(self, depth: int, g: float, rows: Floats, mu: tuple[Floats, Floats]) -> None:
        self.explored += 1
        i = int(self.order[depth])
        g2, bounds, mu_c, mu_m = self.child_bounds(depth, g, rows, mu)
        for k in np.argsort(bounds, kind="stable"):
            k = int(k)
            if not bounds[k] < self.best_v - _EPS:
                break
            if depth + 1 == self.pb.n:
                self.best_v, self.best_p = float(g2[k]), self.p.copy()
                self.best_p[i] = k
                continue
            if time.perf_counter() > self.deadline:
                self.timed_out = True
                self.open_bounds.append(float(bounds[k]))
                continue
            self._assign(i, k, +1)
            new_rows = rows + np.outer(self.pb.traffic[:, i], self.pb.netcost[k])
            self.dfs(depth + 1, float(g2[k]), new_rows, (mu_c[k], mu_m[k]))
            self._assign(i, k, -1)

    def _assign(self, i: int, k: int, sign: int) -> None:
        self.p[i] = k if sign > 0 else -1
        self.count[k] += sign
        self.free_cpu[k] -= sign * self.pb.cpu[i]
        self.free_mem[k] -= sign * self.pb.mem[i]


def branch_and_bound(problem: Problem, incumbent: Ints | None, *, time_limit: float = 10.0) -> ExactResult:
    """Minimise Eq. 11 exactly; on timeout return the incumbent with the best proven bound.

    Without an incumbent the search also decides feasibility: InputError when none exists.
    """
    search = _Search(problem, incumbent, time.perf_counter() + time_limit)
    root_rows = np.zeros((problem.n, problem.m))
    root = search.rest_bound(root_rows, 0)
    search.dfs(0, 0.0, root_rows, (np.zeros(problem.m), np.zeros(problem.m)))
    if search.best_p is None:
        why = "within the time limit" if search.timed_out else "(proven by exhaustive search)"
        raise InputError(f"exact: no feasible placement {why}")
    if search.timed_out:
        bound = min([search.best_v, *search.open_bounds])
        return ExactResult(search.best_p, search.best_v, max(bound, root), False, search.explored)
    return ExactResult(search.best_p, search.best_v, search.best_v, True, search.explored)
