"""Capacity-aware iterated local search for Eq. 11: relocate, swap, kicks, strategic oscillation.

Delta evaluation is incremental: ``A[i, k] = Σ_j traffic[i, j]·netcost[p_j, k]`` is kept up to
date with one rank-1 update per move, so every relocate delta (all n×m at once) and every swap
delta (all n×n at once) is a handful of numpy array operations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sedma.deploy.objective import Floats, Ints, Problem, feasible, objective

Bools = np.ndarray[Any, np.dtype[np.bool_]]

_EPS = 1e-9
ML_SECONDS_PER_AGENT = 0.001  # budget of one V-cycle: many short cycles beat few long ones
ML_SHARE = 0.95  # share of the time limit spent in V-cycles before the iterated local search
LNS_SHARE = 0.3  # share of kicks that re-place a related group exactly
ZONE_LNS_SHARE = 0.6  # share of kicks that re-place agents of one zone exactly on its nodes
LNS_SIZE = 12
LNS_SECONDS = 0.05
ML_FREE = 8  # every 8th V-cycle coarsens without keeping the best placement
GROUP_SHARE = 0.3  # share of the time limit for the start found over node groups (zones)
GROUP_STARTS = 4  # short zone-level searches with different seeds; the best one is spread


@dataclass(frozen=True)
class LocalSearchConfig:
    """Options of the search; ``stall_kicks`` stops early after that many kicks without gain."""

    time_limit: float = 2.0
    seed: int = 0
    stall_kicks: int | None = None
    kick_size: int = 0  # agents moved by a random kick; 0 = max(2, n // 25)
    multilevel: bool = True  # add a multilevel (coarsen, solve, refine) start

    def validate(self) -> None:
        if self.time_limit <= 0:
            raise ValueError("time_limit must be > 0")
        if self.stall_kicks is not None and self.stall_kicks < 0:
            raise ValueError("stall_kicks must be >= 0")


class _State:
    """A (possibly over-capacity) placement with its incremental cost matrix and node loads."""

    def __init__(self, problem: Problem, placement: Ints) -> None:
        self.pb = problem
        self.U = problem.unary  # computed once: the property builds a new array per call
        self.p = placement.astype(np.int64).copy()
        self.A = problem.traffic @ problem.netcost[self.p, :]
        self.val = objective(problem, self.p)
        self.cpu = np.bincount(self.p, weights=problem.cpu, minlength=problem.m).astype(np.float64)
        self.mem = np.bincount(self.p, weights=problem.mem, minlength=problem.m).astype(np.float64)

    def move(self, i: int, k: int) -> None:
        old = int(self.p[i])
        if old == k:
            return
        self.val += float(self.A[i, k] + self.U[i, k] - self.A[i, old] - self.U[i, old])
        self.A += np.outer(self.pb.traffic[:, i], self.pb.netcost[k] - self.pb.netcost[old])
        self.cpu[old] -= self.pb.cpu[i]
        self.mem[old] -= self.pb.mem[i]
        self.cpu[k] += self.pb.cpu[i]
        self.mem[k] += self.pb.mem[i]
        self.p[i] = k

    def copy(self) -> _State:
        """An independent copy (cheaper than rebuilding A from scratch)."""
        new = _State.__new__(_State)
        new.pb, new.U, new.p, new.A, new.val = self.pb, self.U, self.p.copy(), self.A.copy(), self.val
        new.cpu, new.mem = self.cpu.copy(), self.mem.copy()
        return new

    def excess(self) -> float:
        """Capacity violation, as fractions of each node's capacity (0 when feasible)."""
        over_c = np.maximum(self.cpu - self.pb.cap_cpu, 0) / self.pb.cap_cpu
        over_m = np.maximum(self.mem - self.pb.cap_mem, 0) / self.pb.cap_mem
        return float(over_c.sum() + over_m.sum())

    def value(self) -> float:
        """Eq. 11 of the current placement, kept up to date move by move."""
        return self.val


def _excess_of(load: Floats, cap: Floats) -> Floats:
    return np.asarray(np.maximum(load - cap, 0.0) / cap, dtype=np.float64)


def _relocate_deltas(s: _State, mu: float | None) -> Floats:
    """(n, m) objective change of moving i to k; infeasible moves are +inf unless penalised by mu."""
    pb, ar = s.pb, np.arange(s.pb.n)
    total = s.A + s.U
    delta = total - total[ar, s.p][:, None]
    new_cpu = s.cpu[None, :] + pb.cpu[:, None]
    new_mem = s.mem[None, :] + pb.mem[:, None]
    if mu is None:
        ok = (new_cpu <= pb.cap_cpu + _EPS) & (new_mem <= pb.cap_mem + _EPS)
        delta = np.where(ok, delta, np.inf)
    else:
        gain_in = (_excess_of(new_cpu, pb.cap_cpu) - _excess_of(s.cpu, pb.cap_cpu)) + (
            _excess_of(new_mem, pb.cap_mem) - _excess_of(s.mem, pb.cap_mem)
        )
        src_cpu, src_mem = s.cpu[s.p] - pb.cpu, s.mem[s.p] - pb.mem
        gain_out = (_excess_of(src_cpu, pb.cap_cpu[s.p]) - _excess_of(s.cpu[s.p], pb.cap_cpu[s.p])) + (
            _excess_of(src_mem, pb.cap_mem[s.p]) - _excess_of(s.mem[s.p], pb.cap_mem[s.p])
        )
        delta = delta + mu * (gain_in + gain_out[:, None])
    delta[ar, s.p] = 0.0
    return np.asarray(delta, dtype=np.float64)


def _swap_deltas(s: _State) -> Floats:
    """(n, n) objective change of exchanging the nodes of i and j; infeasible or same node: +inf."""
    pb, ar = s.pb, np.arange(s.pb.n)
    total = s.A + s.U
    E = total[:, s.p] - total[ar, s.p][:, None]
    D = E + E.T + 2.0 * pb.traffic * pb.netcost[np.ix_(s.p, s.p)]
    cpu_i = (s.cpu[s.p] - pb.cpu)[:, None] + pb.cpu[None, :]  # node of i after the swap
    mem_i = (s.mem[s.p] - pb.mem)[:, None] + pb.mem[None, :]
    ok = (cpu_i <= pb.cap_cpu[s.p][:, None] + _EPS) & (mem_i <= pb.cap_mem[s.p][:, None] + _EPS)
    ok &= ok.T & (s.p[:, None] != s.p[None, :])
    return np.asarray(np.where(ok, D, np.inf), dtype=np.float64)


def _descend(s: _State, mu: float | None, *, swaps: bool, deadline: float) -> None:
    """Steepest descent: best relocation, else best swap, until neither improves."""
    while time.perf_counter() < deadline:
        d = _relocate_deltas(s, mu)
        flat = int(np.argmin(d))
        if d.flat[flat] < -_EPS:
            s.move(*divmod(flat, s.pb.m))
            continue
        if not swaps or s.pb.n < 2:
            return
        sw = _swap_deltas(s)
        flat = int(np.argmin(sw))
        if not sw.flat[flat] < -_EPS:
            return
        i, j = divmod(flat, s.pb.n)
        pi, pj = int(s.p[i]), int(s.p[j])
        s.move(i, pj)
        s.move(j, pi)


def _kick(s: _State, rng: np.random.Generator, size: int) -> None:
    """Perturb: move a co-located group of talking agents together, or scatter a few at random."""
    pb = s.pb
    if pb.m < 2:
        return
    if rng.random() < 0.5:
        i = int(rng.integers(pb.n))
        group = np.flatnonzero((pb.traffic[i] > 0) & (s.p == s.p[i]))
        group = np.concatenate(([i], rng.permutation(group)[: max(0, size - 1)]))
        target = int(rng.integers(pb.m - 1))
        target += target >= s.p[i]
        for j in group:
            s.move(int(j), target)
        return
    for j in rng.choice(pb.n, size=min(size, pb.n), replace=False):
        s.move(int(j), int(rng.integers(pb.m)))


def _related(
    s: _State, rng: np.random.Generator, size: int, *, start: int | None = None, within: Bools | None = None
) -> list[int]:
    """A connected set of agents around a seed agent (breadth-first over traffic, optionally
    only through agents marked ``within``; topped up at random from them if that runs dry)."""
    seen = [int(rng.integers(s.pb.n)) if start is None else start]
    queue = list(seen)
    while queue and len(seen) < size:
        i = queue.pop(0)
        linked = s.pb.traffic[i] > 0
        for j in rng.permutation(np.flatnonzero(linked if within is None else linked & within)):
            if int(j) not in seen and len(seen) < size:
                seen.append(int(j))
                queue.append(int(j))
    if within is not None and len(seen) < size:
        rest = np.setdiff1d(np.flatnonzero(within), seen)
        seen += [int(j) for j in rng.permutation(rest)[: size - len(seen)]]
    return seen


def _exact_lns(s: _State, rng: np.random.Generator, size: int, seconds: float) -> None:
    """Large-neighbourhood move: re-place a related group exactly on the nodes it uses plus two
    others, everything else fixed (a small branch and bound on the induced sub-problem)."""
    group = np.array(_related(s, rng, size), dtype=np.int64)
    extra = rng.choice(s.pb.m, size=min(2, s.pb.m), replace=False)
    _reoptimise(s, group, np.unique(np.concatenate([s.p[group], extra])), seconds)


def _zone_lns(s: _State, rng: np.random.Generator, groups: Ints, size: int, seconds: float) -> None:
    """Large-neighbourhood move inside one node group (zone): up to ``size`` related agents of
    the zone re-placed exactly on its nodes — the packing and rack choices inside a zone."""
    zone_of = groups[s.p]
    z = int(zone_of[int(rng.integers(s.pb.n))])  # zones drawn in proportion to their agents
    members = np.flatnonzero(zone_of == z)
    nodes = np.flatnonzero(groups == z)
    if len(members) < 2 or len(nodes) < 2:
        return
    if len(members) > size:
        inside = np.zeros(s.pb.n, dtype=bool)
        inside[members] = True
        members = np.array(_related(s, rng, size, start=int(rng.choice(members)), within=inside))
    _reoptimise(s, members, nodes, seconds)


def _reoptimise(s: _State, group: Ints, nodes: Ints, seconds: float) -> None:
    """Re-place ``group`` optimally on ``nodes`` (sorted) with every other agent fixed."""
    from sedma.deploy.exact import branch_and_bound

    pb = s.pb
    # Fixed agents' traffic towards the group, per candidate node, plus the memory term.
    fixed_rows = s.A[group] - pb.traffic[np.ix_(group, group)] @ pb.netcost[s.p[group], :]
    bias = (fixed_rows + s.U[group])[:, nodes]
    free_cpu = pb.cap_cpu[nodes] - s.cpu[nodes] + np.bincount(s.p[group], pb.cpu[group], pb.m)[nodes]
    free_mem = pb.cap_mem[nodes] - s.mem[nodes] + np.bincount(s.p[group], pb.mem[group], pb.m)[nodes]
    sub = Problem(
        agents=tuple(str(i) for i in group),
        nodes=tuple(str(k) for k in nodes),
        traffic=pb.traffic[np.ix_(group, group)],
        netcost=pb.netcost[np.ix_(nodes, nodes)],
        cpu=pb.cpu[group],
        mem=pb.mem[group],
        cap_cpu=np.maximum(free_cpu, 0.0),
        cap_mem=np.maximum(free_mem, 0.0),
        lam=0.0,
        bias=bias,
    )
    start = np.searchsorted(nodes, s.p[group])
    res = branch_and_bound(sub, start, time_limit=seconds)
    for j, k in zip(group, nodes[res.placement], strict=True):
        s.move(int(j), int(k))


def _oscillate(s: _State, mu: float, deadline: float) -> float:
    """Strategic oscillation: penalised descent, raising the penalty until the state is feasible."""
    for _ in range(12):
        _descend(s, mu, swaps=False, deadline=deadline)
        if s.excess() <= _EPS:
            return max(mu / 1.5, _EPS)
        mu *= 2.0
    return mu


def local_search(problem: Problem, starts: list[Ints], config: LocalSearchConfig) -> tuple[Ints, float]:
    """Best feasible placement found from ``starts`` (each feasible) within the time limit."""
    config.validate()
    if not starts:
        raise ValueError("local search needs at least one feasible start")
    t_end = time.perf_counter() + config.time_limit
    rng = np.random.default_rng(config.seed)
    if config.multilevel and problem.n > max(2 * problem.m, 16):
        t0 = time.perf_counter()
        grouped = _group_start(problem, config, GROUP_SHARE * config.time_limit)
        ml = _v_cycles(problem, rng, config, grouped, t0 + ML_SHARE * config.time_limit)
        if ml is not None:
            # V-cycles end in a local optimum far below the baselines: descending those as
            # well cost ~1.8 s of a 9 s 500x50 run; the best by objective keeps the guarantee.
            starts = [min([*starts, ml], key=lambda p: objective(problem, p))]
    descended = [_State(problem, start) for start in starts]
    for s in descended:
        _descend(s, None, swaps=True, deadline=t_end)
    cur = min(descended, key=lambda s: s.value())
    best_p = _iterate(problem, cur, rng, config, t_end)
    # The incremental value drifts by rounding only; report the exact Eq. 11 of the best.
    return best_p, objective(problem, best_p)


def _group_start(problem: Problem, config: LocalSearchConfig, seconds: float) -> Ints | None:
    """Solve the agents over node groups (zones: no bin packing inside), then spread each group's
    agents over its nodes and repair capacities by strategic oscillation; None without groups."""
    from sedma.deploy.baselines import first_fit_decreasing, greedy
    from sedma.deploy.multilevel import group_problem, node_groups, spread_in_groups

    groups = node_groups(problem)
    if not 1 < int(groups.max()) + 1 < problem.m:
        return None
    gp = group_problem(problem, groups)
    init = greedy(gp)
    init = init if init is not None else first_fit_decreasing(gp)
    if init is None:
        return None
    # Zone searches fall into a few deep basins: several short ones from different seeds find
    # better zone partitions than one long one (and zone ≈ fine objective, so pick there).
    each = 0.8 * seconds / GROUP_STARTS
    zones = [
        local_search(gp, [init], LocalSearchConfig(time_limit=each, seed=config.seed + 7919 * k))
        for k in range(GROUP_STARTS)
    ]
    zone = min(zones, key=lambda z: z[1])[0]
    deadline = time.perf_counter() + max(0.2 * seconds, 0.05)  # the repair always gets its time
    s = _State(problem, spread_in_groups(problem, groups, zone))
    _oscillate(s, _initial_penalty(problem), deadline)
    if s.excess() > _EPS:
        return None
    _descend(s, None, swaps=True, deadline=deadline)
    return s.p.copy() if feasible(problem, s.p) else None


def _v_cycles(
    problem: Problem, rng: np.random.Generator, config: LocalSearchConfig, keep: Ints | None, ml_end: float
) -> Ints | None:
    """V-cycles until ``ml_end``: every ML_FREE-th coarsens freely (diversity), the others keep
    the best placement so far (first: ``keep``), so the coarse search moves whole groups."""
    c = 0
    while time.perf_counter() < ml_end:
        free = keep is None or c % ML_FREE == 0
        budget = max(ML_SECONDS_PER_AGENT * problem.n, 0.05)
        ml = _multilevel(problem, rng, budget, config.seed + c, None if free else keep)
        c += 1
        if ml is not None and (keep is None or objective(problem, ml) < objective(problem, keep)):
            keep = ml
    return keep


def _iterate(
    problem: Problem, cur: _State, rng: np.random.Generator, config: LocalSearchConfig, t_end: float
) -> Ints:
    """Iterated local search from ``cur``: kick, repair by oscillation, descend, accept if not worse."""
    best_p, best_v = cur.p.copy(), cur.value()
    size = config.kick_size or max(2, problem.n // 25)
    zones = _zones(problem) if config.multilevel else None
    mu = _initial_penalty(problem)
    cur_v, stall = best_v, 0
    while time.perf_counter() < t_end and (config.stall_kicks is None or stall < config.stall_kicks):
        trial = cur.copy()
        u = rng.random()
        if zones is not None and u < ZONE_LNS_SHARE:
            _zone_lns(trial, rng, zones, LNS_SIZE, LNS_SECONDS)
        elif config.multilevel and u < ZONE_LNS_SHARE + LNS_SHARE:
            _exact_lns(trial, rng, LNS_SIZE, LNS_SECONDS)
        else:
            _kick(trial, rng, size)
        if trial.excess() > _EPS:
            mu = _oscillate(trial, mu, t_end)
        if trial.excess() > _EPS:
            stall += 1
            continue
        _descend(trial, None, swaps=True, deadline=t_end)
        v = trial.value()
        stall = 0 if v < best_v - _EPS else stall + 1
        if v < best_v - _EPS and feasible(problem, trial.p):
            best_p, best_v = trial.p.copy(), v
        # Accept sideways moves, and now and then a worse one, to leave plateaus.
        if v < cur_v + _EPS or rng.random() < 0.01:
            cur, cur_v = trial, v
    return best_p


def _multilevel(
    problem: Problem, rng: np.random.Generator, budget: float, seed: int, keep: Ints | None
) -> Ints | None:
    from sedma.deploy.baselines import first_fit_decreasing, greedy
    from sedma.deploy.multilevel import multilevel_start

    def solve(pb: Problem, starts: list[Ints], seconds: float) -> Ints | None:
        cfg = LocalSearchConfig(time_limit=max(seconds, 1e-3), seed=seed, multilevel=False)
        return local_search(pb, starts, cfg)[0]

    def start(pb: Problem) -> Ints | None:
        g = greedy(pb)
        return g if g is not None else first_fit_decreasing(pb)

    p = multilevel_start(problem, rng=rng, budget=budget, solve=solve, start=start, keep=keep)
    return p if p is not None and feasible(problem, p) else None


def _zones(problem: Problem) -> Ints | None:
    """Node groups (zones) when there are several and one has more than one node, else None."""
    from sedma.deploy.multilevel import node_groups

    groups = node_groups(problem)
    sizes = np.bincount(groups)
    return groups if len(sizes) > 1 and sizes.max() > 1 else None


def _initial_penalty(problem: Problem) -> float:
    """Penalty per unit of capacity overflow: an average agent's traffic over the dearest link."""
    scale = float(problem.traffic.sum(axis=1).mean() * problem.netcost.max() + problem.unary.max())
    return max(scale, 1e-6)
