"""Group-first exact search: settle which node group (zone) each agent uses, then the nodes.

When links between node groups cost far more than links inside them (the benchmark's zones:
2 ms at 1 Gbps against 0.5 ms at 10 Gbps), Eq. 11 is dominated by a capacitated graph
partition at group level, which per-agent bounds cannot see. Relax each group to one bin with
its summed CPU and memory; price a pair of agents in groups g ≠ h at the cheapest link between
them (0 inside a group: they may share a node); floor the memory term of a group by the
fractional knapsack of its bytes over its nodes (largest first); floor any extra per-placement
cost by its minimum over the group. For a fixed assignment S of agents to groups that is a
lower bound LB(S) of every placement inducing S, so the optimum is min over S of the optimum
restricted to S, and S can be visited in increasing LB(S) order until LB(S) reaches the
incumbent. LB(S) is computed for all G^n assignments at once by meet in the middle: the
agents split into two halves, each half enumerated, their cross traffic one matrix product
per pair of groups.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

from sedma.deploy.exact import ExactResult, branch_and_bound, search_below
from sedma.deploy.multilevel import node_groups
from sedma.deploy.objective import Floats, Ints, Problem, feasible, objective

ENUM_LIMIT = 1 << 24  # group assignments (G^n) enumerated at most (2^24: ~0.35 s)
CANDIDATE_LIMIT = 200_000  # assignments kept below the incumbent, smallest bounds first
ROW_BLOCK = 1 << 20  # elements of one (first half × second half) block
_EPS = 1e-9


@dataclass(frozen=True)
class GroupCandidates:
    """Group assignments below a cutoff, by increasing bound, and a floor for all others."""

    assign: Ints  # (K, n) group per agent
    lb: Floats  # (K,) LB(S), ascending
    rest: float  # every feasible assignment not listed has LB(S) >= rest (inf when none)


@dataclass(frozen=True)
class _Half:
    """One half of the agents, every assignment of it to groups enumerated."""

    digits: Ints  # (N, h) group per agent of the half
    onehot: Floats  # (G, N, h)
    cost: Floats  # (N,) pair costs inside the half + unary floors
    cpu: Floats  # (N, G)
    mem: Floats  # (N, G)


def group_link_floor(problem: Problem, groups: Ints) -> Floats:
    """(G, G) cheapest link between two groups' nodes; 0 inside a group (one node may hold both)."""
    g = int(groups.max()) + 1
    out = np.full((g, g), np.inf)
    for a in range(g):
        for b in range(g):
            if a != b:
                out[a, b] = problem.netcost[np.ix_(groups == a, groups == b)].min()
    np.fill_diagonal(out, 0.0)
    return out


def _unary_floor(problem: Problem, groups: Ints) -> Floats:
    """(n, G) least extra cost (bias) of each agent in each group; inf where it fits no node there."""
    g = int(groups.max()) + 1
    extra = problem.bias if problem.bias is not None else np.zeros((problem.n, problem.m))
    extra = np.where(problem.fits(), extra, np.inf)
    return np.stack([extra[:, groups == k].min(axis=1) for k in range(g)], axis=1)


@functools.lru_cache(maxsize=64)
def _digits(G: int, h: int) -> tuple[Ints, Floats]:
    """Every assignment of h agents to G groups (code = Σ d_j·G^j) and its one-hot (G, N, h)."""
    digits = (np.arange(G**h)[:, None] // G ** np.arange(h)[None, :]) % G
    onehot = np.stack([(digits == k).astype(np.float64) for k in range(G)])
    digits.setflags(write=False)
    onehot.setflags(write=False)
    return digits, onehot


def _half(problem: Problem, idx: Ints, link: Floats, unary: Floats) -> _Half:
    digits, onehot = _digits(len(link), len(idx))
    T = problem.traffic[np.ix_(idx, idx)]
    # Σ_{i<j} T_ij·link[d_i, d_j] = ½ Σ_b Σ_j onehot[b]_j · (Σ_a link[a, b]·(onehot[a] @ T))_j
    toward = np.tensordot(link, onehot @ T, axes=(0, 0))
    cost = unary[idx[None, :], digits].sum(axis=1) + 0.5 * (toward * onehot).sum(axis=(0, 2))
    return _Half(
        digits=digits,
        onehot=onehot,
        cost=cost,
        cpu=(onehot @ problem.cpu[idx]).T,
        mem=(onehot @ problem.mem[idx]).T,
    )


def _memory_floor(problem: Problem, nodes: Ints, x: Floats) -> Floats:
    """λ times the fractional knapsack of ``x`` bytes over ``nodes`` (largest first)."""
    caps = np.sort(problem.cap_mem[nodes])[::-1]
    before = np.cumsum(caps) - caps
    return np.asarray(problem.lam * (np.clip(x[..., None] - before, 0.0, caps) / caps).sum(axis=-1))


def _block(problem: Problem, groups: Ints, one: _Half, two: _Half, w: Floats, limits: _Limits) -> _Found:
    """(row of ``one``, row of ``two``, LB(S)) of the pairs with LB(S) < cutoff whose groups'
    totals fit. Traffic and capacity filter first (the traffic against the cutoff less the least
    memory floor); the memory floor is added to the survivors only."""
    lb = one.cost[:, None]
    for j in range(w.shape[1]):  # sums over all digit strings, one digit at a time (code = Σ d·G^j)
        lb = (lb[:, None, :] + w[:, j, :, None]).reshape(len(lb), -1)
    lb += two.cost[None, :]
    ok = lb < limits.room - _EPS
    for k in range(len(limits.cpu)):
        ok &= two.cpu[None, :, k] <= (limits.cpu[k] - one.cpu[:, k])[:, None]
        ok &= two.mem[None, :, k] <= (limits.mem[k] - one.mem[:, k])[:, None]
    ia, ib = np.nonzero(ok)
    out = lb[ia, ib]
    for k in range(len(limits.cpu)):
        out += _memory_floor(problem, np.flatnonzero(groups == k), one.mem[ia, k] + two.mem[ib, k])
    keep = out < limits.cutoff - _EPS
    return ia[keep], ib[keep], out[keep]


@dataclass(frozen=True)
class _Limits:
    """What a group assignment must stay below: the cutoff, the cutoff less the least memory
    floor (for the traffic part alone), and each group's summed capacities (with the per-node
    tolerance of :func:`feasible` summed too, so no feasible placement is lost)."""

    cutoff: float
    room: float
    cpu: Floats
    mem: Floats


_Found = tuple[Ints, Ints, Floats]


def group_candidates(
    problem: Problem, groups: Ints, cutoff: float, *, link: Floats | None = None
) -> GroupCandidates:
    """Every group assignment with LB(S) < cutoff (at most CANDIDATE_LIMIT), by increasing LB;
    ``link`` is :func:`group_link_floor` when the caller has it."""
    link = group_link_floor(problem, groups) if link is None else link
    unary = _unary_floor(problem, groups)
    idx1, idx2 = np.array_split(np.arange(problem.n), 2)
    one, two = _half(problem, idx1, link, unary), _half(problem, idx2, link, unary)
    # w[a, j, d]: what agent j of the second half pays towards row a of the first half in group d.
    w = np.einsum("gah,gd->ahd", one.onehot @ problem.traffic[np.ix_(idx1, idx2)], link)
    # The memory floor of any split is at least the knapsack over all nodes at once, so traffic
    # is filtered against cutoff - that; rows whose cheapest completion already reaches it, or
    # whose own load overflows a group, are skipped whole.
    limits = _limits(problem, groups, cutoff)
    fits = np.all((one.cpu <= limits.cpu) & (one.mem <= limits.mem), axis=1)
    live = np.flatnonzero(fits & (one.cost + w.min(axis=2).sum(axis=1) + two.cost.min() < limits.room - _EPS))
    rows = max(1, ROW_BLOCK // max(1, len(two.cost)))
    ia, ib, lbs = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
    for start in range(0, len(live), rows):
        sel = live[start : start + rows]
        a, b, lb = _block(problem, groups, _take(one, sel), two, w[sel], limits)
        ia.append(sel[a])
        ib.append(b)
        lbs.append(lb)
    a, b, lb = np.concatenate(ia), np.concatenate(ib), np.concatenate(lbs)
    rest = np.inf
    if len(lb) > CANDIDATE_LIMIT:
        keep = np.argpartition(lb, CANDIDATE_LIMIT)
        rest = float(lb[keep[CANDIDATE_LIMIT]])
        a, b, lb = a[keep[:CANDIDATE_LIMIT]], b[keep[:CANDIDATE_LIMIT]], lb[keep[:CANDIDATE_LIMIT]]
    by = np.argsort(lb, kind="stable")
    assign = np.empty((len(by), problem.n), dtype=np.int64)
    assign[:, idx1] = one.digits[a[by]]
    assign[:, idx2] = two.digits[b[by]]
    return GroupCandidates(assign=assign, lb=lb[by], rest=rest)


def _limits(problem: Problem, groups: Ints, cutoff: float) -> _Limits:
    count = np.bincount(groups).astype(np.float64)
    tol = _EPS * count
    floor = float(_memory_floor(problem, np.arange(problem.m), np.array(problem.mem.sum())))
    return _Limits(
        cutoff=cutoff,
        room=cutoff - floor,
        cpu=np.bincount(groups, weights=problem.cap_cpu) + tol,
        mem=np.bincount(groups, weights=problem.cap_mem) + tol,
    )


def _take(half: _Half, rows: Ints) -> _Half:
    return _Half(half.digits[rows], half.onehot[:, rows], half.cost[rows], half.cpu[rows], half.mem[rows])


def uniform_links(problem: Problem, groups: Ints) -> bool:
    """True when every link between two groups costs the same, so that for a fixed assignment
    to groups the cross-group traffic is a constant and the groups are independent problems."""
    for a in range(int(groups.max()) + 1):
        for b in range(a + 1, int(groups.max()) + 1):
            block = problem.netcost[np.ix_(groups == a, groups == b)]
            if np.ptp(block) > 1e-12 * max(1.0, float(block.max())):
                return False
    return True


def subproblem(problem: Problem, agents: Ints, nodes: Ints) -> Problem:
    """``agents`` on ``nodes`` only; traffic to other agents dropped (the caller prices it)."""
    return Problem(
        agents=tuple(problem.agents[i] for i in agents),
        nodes=tuple(problem.nodes[k] for k in nodes),
        traffic=problem.traffic[np.ix_(agents, agents)],
        netcost=problem.netcost[np.ix_(nodes, nodes)],
        cpu=problem.cpu[agents],
        mem=problem.mem[agents],
        cap_cpu=problem.cap_cpu[nodes],
        cap_mem=problem.cap_mem[nodes],
        lam=problem.lam,
        bias=None if problem.bias is None else problem.bias[np.ix_(agents, nodes)],
    )


class _Timeout(Exception):
    """The deadline passed inside a group-first search."""


_Solution = tuple[Ints, float]


@dataclass(frozen=True)
class _Layout:
    """The node groups of one node set, what the group-first search needs of them."""

    groups: Ints
    count: int
    uniform: bool
    link: Floats
    members: tuple[Ints, ...]

    @staticmethod
    def of(pb: Problem) -> _Layout:
        groups = node_groups(pb)
        count = int(groups.max()) + 1
        return _Layout(
            groups=groups,
            count=count,
            uniform=uniform_links(pb, groups),
            link=group_link_floor(pb, groups),
            members=tuple(np.flatnonzero(groups == g) for g in range(count)),
        )


class _GroupFirst:
    """Recursive group-first search: groups (zones), then groups inside each group (racks), down
    to single nodes, where LB(S) is the exact objective. A group whose cross links are not all
    alike, or whose G^n is too large, is solved by the plain branch and bound."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.explored = 0
        self.front = 0.0  # LB(S) of the top-level assignment being solved: a proven bound
        self.cache: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[_Solution | None, float]] = {}
        self.layouts: dict[tuple[str, ...], _Layout] = {}

    def layout(self, pb: Problem) -> _Layout:
        if pb.nodes not in self.layouts:
            self.layouts[pb.nodes] = _Layout.of(pb)
        return self.layouts[pb.nodes]

    def solve(self, pb: Problem, cutoff: float, *, top: bool = False) -> _Solution | None:
        """The optimum of ``pb`` if it is below ``cutoff``, else None (proven)."""
        if not top and time.perf_counter() > self.deadline:
            raise _Timeout
        key = (pb.agents, pb.nodes)
        if key in self.cache:
            sol, tried = self.cache[key]
            if sol is not None or cutoff <= tried:
                return sol if sol is not None and sol[1] < cutoff - _EPS else None
        sol = self._solve(pb, cutoff, top)
        self.cache[key] = (sol, cutoff)
        return sol

    def _solve(self, pb: Problem, cutoff: float, top: bool) -> _Solution | None:
        if pb.n == 0:
            return (np.zeros(0, dtype=np.int64), 0.0) if cutoff > _EPS else None
        if pb.m == 1:
            return _one_node(pb, cutoff)
        lay = self.layout(pb)
        if lay.count < 2 or lay.count**pb.n > ENUM_LIMIT or not lay.uniform:
            return self._plain(pb, cutoff)
        cand = group_candidates(pb, lay.groups, cutoff, link=lay.link)
        if lay.count == pb.m and len(cand.lb):  # single-node groups: LB(S) is Eq. 11 itself
            return np.concatenate(lay.members)[cand.assign[0]], float(cand.lb[0])
        best: _Solution | None = None
        for k in range(len(cand.lb)):
            if cand.lb[k] >= (best[1] if best else cutoff) - _EPS:
                return best
            if top:
                self.front = float(cand.lb[k])
            sol = self._split(pb, lay, cand.assign[k], best[1] if best else cutoff)
            best = sol if sol is not None else best
        if cand.rest < (best[1] if best else cutoff) - _EPS:  # candidates cut at the limit
            return self._plain(pb, best[1] if best else cutoff) or best
        return best

    def _plain(self, pb: Problem, cutoff: float) -> _Solution | None:
        res = search_below(pb, cutoff, deadline=self.deadline)
        self.explored += res.nodes_explored
        if not res.complete:
            raise _Timeout
        return None if res.placement is None else (res.placement, res.value)

    def _split(self, pb: Problem, lay: _Layout, assign: Ints, cutoff: float) -> _Solution | None:
        """The optimum among placements that put agent i in group assign[i], if below cutoff:
        the cross-group traffic is a constant, each group an independent problem."""
        self.explored += 1
        cross = float(0.5 * (pb.traffic * lay.link[np.ix_(assign, assign)]).sum())
        parts = [(np.flatnonzero(assign == g), lay.members[g]) for g in np.unique(assign)]
        subs = [subproblem(pb, agents, nodes) for agents, nodes in parts]
        if any(sub.m**sub.n <= PACK_LIMIT and not packs(sub) for sub in subs):
            return None  # a group whose agents fit its nodes in no placement (tight zones: most)
        values = [_floor(sub) for sub in subs]
        placement = np.empty(pb.n, dtype=np.int64)
        for j, ((agents, nodes), sub) in enumerate(zip(parts, subs, strict=True)):
            room = cutoff - cross - sum(values) + values[j]
            sol = self.solve(sub, room)
            if sol is None:
                return None
            values[j] = sol[1]
            placement[agents] = nodes[sol[0]]
        return placement, cross + sum(values)


PACK_LIMIT = 1 << 12  # placements (m^n) enumerated to check that a group's agents pack at all


def packs(pb: Problem) -> bool:
    """True when the agents fit the nodes' capacities in some placement (all m^n enumerated)."""
    _, onehot = _digits(pb.m, pb.n)
    cpu = onehot @ pb.cpu
    mem = onehot @ pb.mem
    fit = (cpu <= pb.cap_cpu[:, None] + 1e-9) & (mem <= pb.cap_mem[:, None] + 1e-9)
    return bool(fit.all(axis=0).any())


def _floor(pb: Problem) -> float:
    """A quick lower bound of a group's own optimum: memory knapsack plus least extra costs."""
    extra = 0.0 if pb.bias is None else float(np.where(pb.fits(), pb.bias, np.inf).min(axis=1).sum())
    return float(_memory_floor(pb, np.arange(pb.m), np.array(pb.mem.sum()))) + extra


def _one_node(pb: Problem, cutoff: float) -> _Solution | None:
    """Every agent on the single node: exact, if it fits and beats the cutoff."""
    p = np.zeros(pb.n, dtype=np.int64)
    value = objective(pb, p) if feasible(pb, p) else np.inf
    return (p, value) if value < cutoff - _EPS else None


def group_first_applies(problem: Problem) -> bool:
    """True when the nodes form 2+ groups with alike links between them and G^n is enumerable."""
    groups = node_groups(problem)
    count = int(groups.max()) + 1
    return count >= 2 and count**problem.n <= ENUM_LIMIT and uniform_links(problem, groups)


def exact_search(problem: Problem, incumbent: Ints | None, *, time_limit: float = 10.0) -> ExactResult:
    """Minimise Eq. 11 exactly: group-first where the nodes form groups with alike cross links
    and G^n is small enough, else the plain branch and bound. On timeout: the incumbent and the
    best proven bound (the bound of the group assignment being solved)."""
    if incumbent is None or not group_first_applies(problem):
        return branch_and_bound(problem, incumbent, time_limit=time_limit)
    search = _GroupFirst(time.perf_counter() + time_limit)
    best_v = objective(problem, incumbent)
    try:
        sol = search.solve(problem, best_v, top=True)
    except _Timeout:
        return ExactResult(incumbent, best_v, min(best_v, search.front), False, search.explored)
    if sol is None or objective(problem, sol[0]) >= best_v:
        return ExactResult(incumbent, best_v, best_v, True, search.explored)
    value = objective(problem, sol[0])  # the sum of the parts, recomputed without their rounding
    return ExactResult(sol[0], value, value, True, search.explored)
