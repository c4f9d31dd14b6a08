"""Partitioning a matrix over crossbars: MELISO+'s static grid and the adaptive plan of Eq. 4.

Cost model (per block b of ``r × c`` cells on an ``S × S`` array of device d; all vectorised):

* compute_cost(b) [s] = programming + reading, divided by the device's ``speed``:
  programming is row-parallel write-and-verify, ``iterations × r × (pulse_s + read_s)``;
  reading is one array activation per MVM, ``mvms × read_s``.
  Time-multiplexing: a device holding more blocks than it has arrays must reprogram the
  excess blocks for every further MVM, ``(mvms − 1) × excess × mean program time``.
* memory_overhead(b) [MB] = metadata (``meta_bytes``) + intermediate partial sums
  (``r × batch × partial_bytes``) + unused provisioned cells (``(S² − r·c) × cell_bytes``).
* objective = Σ compute_cost + λ_eff · Σ memory_overhead (Eq. 4), with
  λ_eff = λ_mem / (1 − ρ) and ρ = (bytes of the matrix as cells) ÷ (pool memory), capped at
  0.95: memory weighs more as the pool's memory fills (the paper's adaptive λ_mem).
  A plan whose tiles do not fit a device's ``memory_mb`` is infeasible.

The search is a guillotine dynamic programme over region sizes: a region is either one grid of
a single device's arrays (a static partition of the region, cost in closed form) or is cut at a
multiple of an array size into two regions solved alike. Every static plan is a candidate, so
the adaptive cost is never above the best static one under the model. Array counts are then
enforced by a repair: the least-filled blocks of an over-subscribed device are re-partitioned
(by the same programme) onto devices that still have free arrays; what cannot move is
time-multiplexed at its cost, or makes the plan infeasible when multiplexing is off.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sedma.compute.plan import Block, PartitionPlan, static_partition
from sedma.compute.pool import DevicePool
from sedma.errors import InputError

__all__ = [
    "CostModel",
    "PartitionSearch",
    "PlanCost",
    "adaptive_partition",
    "effective_lambda",
    "grid_cost",
    "outcome_score",
    "pattern_of",
    "plan_cost",
    "plan_from_pattern",
    "recall_pattern",
    "record_outcome",
    "search_partition",
    "static",
]

MB = float(1 << 20)
# Seconds of device time one MB of host memory is worth (Eq. 4); see the module docstring.
DEFAULT_LAMBDA_MEM = 1e-2
_MAX_RHO = 0.95
_INFINITE = float("inf")
IntArray = npt.NDArray[np.int64]

static = static_partition


@dataclass(frozen=True, slots=True)
class CostModel:
    """Workload facts the Eq. 4 cost model needs beyond the pool (see the module docstring)."""

    mvms: int = 100
    batch: int = 1
    cell_bytes: int = 8
    partial_bytes: int = 8
    meta_bytes: int = 256
    allow_multiplex: bool = True
    trust_ltm: bool = True
    repair_moves: int = 256

    def validate(self) -> None:
        for name in ("mvms", "batch", "cell_bytes", "partial_bytes", "repair_moves"):
            if getattr(self, name) < 1:
                raise InputError(f"cost model {name} must be >= 1, got {getattr(self, name)}")
        if self.meta_bytes < 0:
            raise InputError(f"cost model meta_bytes must be >= 0, got {self.meta_bytes}")


@dataclass(frozen=True, slots=True)
class PlanCost:
    """The Eq. 4 terms of one plan, its per-device array use and feasibility."""

    objective: float
    compute_s: float
    program_s: float
    read_s: float
    multiplex_s: float
    memory_mb: float
    lambda_eff: float
    arrays: dict[str, int]
    multiplexed: bool
    feasible: bool
    utilization: float

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


@dataclass(frozen=True, slots=True)
class PartitionSearch:
    """The chosen plan, its cost, the best static cost, and where the plan came from."""

    plan: PartitionPlan
    cost: PlanCost
    static_cost: PlanCost
    origin: str
    evaluated: int
    elapsed_s: float
    states: int = 0


def effective_lambda(shape: tuple[int, int], pool: DevicePool, lambda_mem: float, model: CostModel) -> float:
    """λ_eff = λ_mem / (1 − ρ), ρ = matrix cell bytes ÷ pool memory (λ_mem adapts, Eq. 4)."""
    need_mb = shape[0] * shape[1] * model.cell_bytes / MB
    rho = min(_MAX_RHO, need_mb / pool.total_memory_mb)
    return lambda_mem / (1.0 - rho)


def _block_arrays(plan: PartitionPlan, pool: DevicePool) -> tuple[IntArray, ...]:
    b = plan.blocks
    rows = np.fromiter((x.rows for x in b), np.int64, len(b))
    cols = np.fromiter((x.cols for x in b), np.int64, len(b))
    tile = np.fromiter((x.tile for x in b), np.int64, len(b))
    names = {d.name: i for i, d in enumerate(pool.devices)}
    if any(x.device not in names for x in b):
        missing = next(x.device for x in b if x.device not in names)
        raise InputError(f"plan uses device {missing!r}, which is not in the pool {sorted(names)}")
    dev = np.fromiter((names[x.device] for x in b), np.int64, len(b))
    return rows, cols, tile, dev


def _check_tiles(tile: IntArray, dev: IntArray, pool: DevicePool) -> None:
    sizes = pool.column("array_size").astype(np.int64)[dev]
    bad = np.nonzero(tile != sizes)[0]
    if bad.size:
        d = pool.devices[int(dev[bad[0]])]
        raise InputError(f"block on {d.name!r} uses tile {int(tile[bad[0]])}, its arrays are {d.array_size}")


def plan_cost(plan: PartitionPlan, pool: DevicePool, *, lambda_mem: float, model: CostModel) -> PlanCost:
    """Evaluate Σ compute_cost + λ_eff · Σ memory_overhead of a plan on the pool (Eq. 4)."""
    rows, cols, tile, dev = _block_arrays(plan, pool)
    _check_tiles(tile, dev, pool)
    speed, iters = pool.column("speed")[dev], pool.column("iterations")[dev]
    pulse, read = pool.column("pulse_s")[dev], pool.column("read_s")[dev]
    program = iters * rows * (pulse + read) / speed
    reads = model.mvms * read / speed
    partial = model.meta_bytes + model.partial_bytes * model.batch * rows
    mem = partial + model.cell_bytes * (tile * tile - rows * cols)
    n_dev = len(pool)
    per_dev = np.bincount(dev, minlength=n_dev)
    excess = np.maximum(per_dev - pool.column("count").astype(np.int64), 0)
    mean_prog = np.bincount(dev, weights=program, minlength=n_dev) / np.maximum(per_dev, 1)
    multiplex = float(((model.mvms - 1) * excess * mean_prog).sum())
    host = np.bincount(dev, weights=partial + model.cell_bytes * tile * tile, minlength=n_dev) / MB
    lam = effective_lambda(plan.shape, pool, lambda_mem, model)
    compute = float(program.sum() + reads.sum()) + multiplex
    memory_mb = float(mem.sum()) / MB
    fits = bool((host <= pool.column("memory_mb")).all())
    return PlanCost(
        objective=compute + lam * memory_mb,
        compute_s=compute,
        program_s=float(program.sum()),
        read_s=float(reads.sum()),
        multiplex_s=multiplex,
        memory_mb=memory_mb,
        lambda_eff=lam,
        arrays={d.name: int(per_dev[i]) for i, d in enumerate(pool.devices) if per_dev[i]},
        multiplexed=bool(excess.any()),
        feasible=fits and (model.allow_multiplex or not excess.any()),
        utilization=plan.cell_utilization(),
    )


class _Guillotine:
    """Eq. 4 as a dynamic programme over region sizes; leaves are single-device grids."""

    def __init__(self, pool: DevicePool, model: CostModel, lam: float):
        self.size = pool.column("array_size").astype(np.int64)
        speed = pool.column("speed")
        self.row_s = pool.column("iterations") * (pool.column("pulse_s") + pool.column("read_s")) / speed
        self.act_s = model.mvms * pool.column("read_s") / speed
        self.model, self.lam = model, lam
        self.cuts = sorted({int(s) for s in self.size})
        self.memo: dict[tuple[int, int, bool, bool], tuple[float, tuple[Any, ...]]] = {}

    def leaf(self, h: int, w: int) -> tuple[float, int]:
        """Cheapest single-device grid over an h × w region (a static partition of it)."""
        m, s = self.model, self.size
        nr, nc = -(-h // s), -(-w // s)
        n = nr * nc
        mem = m.meta_bytes * n + m.partial_bytes * m.batch * h * nc + m.cell_bytes * (n * s * s - h * w)
        cost = self.row_s * h * nc + self.act_s * n + self.lam * mem / MB
        d = int(np.argmin(cost))
        return float(cost[d]), d

    def solve(
        self, h: int, w: int, lock: tuple[bool, bool] = (False, False)
    ) -> tuple[float, tuple[Any, ...]]:
        """Best cost and plan tree of an h × w region: ("leaf", d) or (axis, cut, left, right).

        A cut splits an extent x into S·⌊x/S⌋, which is then locked along that axis (any array
        size that divides it tiles it without waste, so cutting it again gains nothing), and the
        remainder x mod S, which is solved further. This keeps the states few for any sizes.
        """
        hit = self.memo.get((h, w, *lock))
        if hit is not None:
            return hit
        cost, d = self.leaf(h, w)
        best: tuple[float, tuple[Any, ...]] = (cost, ("leaf", d))
        for axis, extent in ((0, h), (1, w)):
            if lock[axis]:
                continue
            for s in self.cuts:
                cut = s * (extent // s)
                if 0 < cut < extent:
                    total, tree = self._split(axis, cut, h, w, lock)
                    if total < best[0]:
                        best = (total, tree)
        self.memo[(h, w, *lock)] = best
        return best

    def _split(
        self, axis: int, cut: int, h: int, w: int, lock: tuple[bool, bool]
    ) -> tuple[float, tuple[Any, ...]]:
        if axis == 0:
            a, b = self.solve(cut, w, (True, lock[1])), self.solve(h - cut, w, (False, lock[1]))
        else:
            a, b = self.solve(h, cut, (lock[0], True)), self.solve(h, w - cut, (lock[0], False))
        return a[0] + b[0], ("hw"[axis], cut, a[1], b[1])


def _emit(tree: tuple[Any, ...], r0: int, c0: int, h: int, w: int, pool: DevicePool) -> list[Block]:
    """Blocks of a plan tree laid out from (r0, c0) over an h × w region."""
    if tree[0] == "leaf":
        dev = pool.devices[tree[1]]
        sub = static_partition((h, w), tile=dev.array_size, device=dev.name)
        return [Block(r0 + b.row0, c0 + b.col0, b.rows, b.cols, b.tile, b.device) for b in sub.blocks]
    axis, cut, left, right = tree
    if axis == "h":
        return _emit(left, r0, c0, cut, w, pool) + _emit(right, r0 + cut, c0, h - cut, w, pool)
    return _emit(left, r0, c0, h, cut, pool) + _emit(right, r0, c0 + cut, h, w - cut, pool)


def _better(a: PlanCost, b: PlanCost | None) -> bool:
    """Feasible beats infeasible; then the lower Eq. 4 objective wins."""
    if b is None:
        return True
    return (a.feasible, -a.objective) > (b.feasible, -b.objective)


def grid_cost(
    shape: tuple[int, int], pool: DevicePool, device: int, *, lambda_mem: float, model: CostModel
) -> PlanCost:
    """Eq. 4 terms of the static grid of one device's arrays, in closed form (no blocks built)."""
    h, w = shape
    d = pool.devices[device]
    s = d.array_size
    nc = -(-w // s)
    n = -(-h // s) * nc
    program = d.iterations * h * nc * (d.pulse_s + d.read_s) / d.speed
    reads = model.mvms * n * d.read_s / d.speed
    multiplex = (model.mvms - 1) * max(0, n - d.count) * program / n
    working = model.meta_bytes * n + model.partial_bytes * model.batch * h * nc
    memory_mb = (working + model.cell_bytes * (n * s * s - h * w)) / MB
    lam = effective_lambda(shape, pool, lambda_mem, model)
    fits = (working + model.cell_bytes * n * s * s) / MB <= d.memory_mb
    return PlanCost(
        objective=program + reads + multiplex + lam * memory_mb,
        compute_s=program + reads + multiplex,
        program_s=program,
        read_s=reads,
        multiplex_s=multiplex,
        memory_mb=memory_mb,
        lambda_eff=lam,
        arrays={d.name: n},
        multiplexed=n > d.count,
        feasible=fits and (model.allow_multiplex or n <= d.count),
        utilization=h * w / (n * s * s),
    )


def _static_candidates(
    shape: tuple[int, int], pool: DevicePool, lambda_mem: float, model: CostModel
) -> tuple[int, PlanCost]:
    costs = [grid_cost(shape, pool, i, lambda_mem=lambda_mem, model=model) for i in range(len(pool))]
    best = 0
    for i, cost in enumerate(costs):
        if _better(cost, costs[best]):
            best = i
    return best, costs[best]


def _static_plan(shape: tuple[int, int], pool: DevicePool, device: int) -> PartitionPlan:
    d = pool.devices[device]
    return static_partition(shape, tile=d.array_size, device=d.name)


def _dp_plan(
    shape: tuple[int, int], pool: DevicePool, model: CostModel, lam: float
) -> tuple[PartitionPlan, int]:
    """The guillotine optimum and the number of region states the programme solved."""
    dp = _Guillotine(pool, model, lam)
    _, tree = dp.solve(*shape)
    plan = PartitionPlan(shape=shape, blocks=tuple(_emit(tree, 0, 0, *shape, pool)), strategy="adaptive")
    return plan, len(dp.memo)


def _fit_region(
    victim: Block, pool: DevicePool, spare: dict[str, int], model: CostModel, lam: float
) -> list[Block] | None:
    """Re-partition one block's region over devices with spare arrays, within those spares."""
    devices = [d for d in pool.devices if spare.get(d.name, 0) > 0]
    while devices:
        sub, _ = _dp_plan((victim.rows, victim.cols), DevicePool(tuple(devices)), model, lam)
        need = Counter(b.device for b in sub.blocks)
        over = {name: n - spare[name] for name, n in need.items() if n > spare[name]}
        if not over:
            return [replace(b, row0=b.row0 + victim.row0, col0=b.col0 + victim.col0) for b in sub.blocks]
        worst = max(over, key=lambda name: over[name])
        devices = [d for d in devices if d.name != worst]
    return None


def _repair_capacity(plan: PartitionPlan, pool: DevicePool, model: CostModel, lam: float) -> PartitionPlan:
    """Move the least-filled blocks off over-subscribed devices onto arrays that are still free."""
    counts = {d.name: d.count for d in pool.devices}
    blocks = list(plan.blocks)
    for _ in range(model.repair_moves):
        used = Counter(b.device for b in blocks)
        over = [name for name in counts if used[name] > counts[name]]
        if not over:
            break
        victim = min(
            (b for b in blocks if b.device == over[-1]), key=lambda b: b.rows * b.cols / (b.tile * b.tile)
        )
        spare = {name: counts[name] - used[name] for name in counts if used[name] < counts[name]}
        moved = _fit_region(victim, pool, spare, model, lam)
        if moved is None:
            break
        blocks.remove(victim)
        blocks.extend(moved)
    return PartitionPlan(shape=plan.shape, blocks=tuple(blocks), strategy="adaptive")


def _validate_inputs(shape: tuple[int, int], pool: DevicePool, lambda_mem: float, model: CostModel) -> None:
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise InputError(f"matrix shape {shape} is empty or not 2-D")
    if not np.isfinite(lambda_mem) or lambda_mem < 0:
        raise InputError(f"lambda_mem must be a finite number >= 0, got {lambda_mem}")
    pool.validate()
    model.validate()


def _as_adaptive(plan: PartitionPlan) -> PartitionPlan:
    return PartitionPlan(shape=plan.shape, blocks=plan.blocks, strategy="adaptive")


def _searched(
    shape: tuple[int, int], pool: DevicePool, model: CostModel, lam: float
) -> tuple[list[PartitionPlan], int]:
    """The guillotine optimum, plus its capacity repair when it over-subscribes a device."""
    plan, states = _dp_plan(shape, pool, model, lam)
    used = Counter(b.device for b in plan.blocks)
    if all(used[d.name] <= d.count for d in pool.devices):
        return [plan], states
    return [plan, _repair_capacity(plan, pool, model, lam)], states


def _infeasible(shape: tuple[int, int], pool: DevicePool, model: CostModel, best: PlanCost) -> InputError:
    cells_mb = shape[0] * shape[1] * model.cell_bytes / MB
    return InputError(
        f"no partition of a {shape[0]}x{shape[1]} matrix fits the pool ({pool.total_arrays} arrays, "
        f"{pool.total_memory_mb:.0f} MB host memory for >= {cells_mb:.0f} MB of cells; multiplexing "
        f"{'allowed' if model.allow_multiplex else 'off'}); the best plan found needs {best.arrays}"
    )


def search_partition(
    shape: tuple[int, int],
    pool: DevicePool,
    *,
    lambda_mem: float = DEFAULT_LAMBDA_MEM,
    start: Mapping[str, Any] | None = None,
    model: CostModel | None = None,
) -> PartitionSearch:
    """Eq. 4 over the pool, starting from an LTM pattern; reports cost and origin of the plan."""
    model = model or CostModel()
    _validate_inputs(shape, pool, lambda_mem, model)
    t0 = time.perf_counter()
    st_dev, st_cost = _static_candidates(shape, pool, lambda_mem, model)
    best: tuple[PartitionPlan | None, PlanCost, str] = (None, st_cost, "static")
    evaluated = len(pool)
    for origin, plan in _start_candidates(shape, pool, lambda_mem, model, start):
        cost = plan_cost(plan, pool, lambda_mem=lambda_mem, model=model)
        evaluated += 1
        if model.trust_ltm and cost.feasible and cost.objective <= st_cost.objective:
            # Algorithm 1 reuses the remembered pattern instead of searching again.
            return PartitionSearch(plan, cost, st_cost, origin, evaluated, time.perf_counter() - t0)
        if _better(cost, best[1]):
            best = (plan, cost, origin)
    plans, states = _searched(shape, pool, model, effective_lambda(shape, pool, lambda_mem, model))
    for plan in plans:
        cost = plan_cost(plan, pool, lambda_mem=lambda_mem, model=model)
        evaluated += 1
        if _better(cost, best[1]):
            best = (plan, cost, "search")
    chosen, cost, origin = best
    plan = chosen or _static_plan(shape, pool, st_dev)
    if not cost.feasible:
        raise _infeasible(shape, pool, model, cost)
    elapsed = time.perf_counter() - t0
    return PartitionSearch(_as_adaptive(plan), cost, st_cost, origin, evaluated, elapsed, states)


def adaptive_partition(
    shape: tuple[int, int],
    pool: DevicePool,
    *,
    lambda_mem: float = DEFAULT_LAMBDA_MEM,
    start: Mapping[str, Any] | None = None,
    model: CostModel | None = None,
) -> PartitionPlan:
    """The plan minimising Σ compute_cost + λ_mem·memory_overhead over the pool (Eq. 4)."""
    return search_partition(shape, pool, lambda_mem=lambda_mem, start=start, model=model).plan


def _start_candidates(
    shape: tuple[int, int],
    pool: DevicePool,
    lambda_mem: float,
    model: CostModel,
    start: Mapping[str, Any] | None,
) -> list[tuple[str, PartitionPlan]]:
    """Plans suggested by an LTM pattern: its exact blocks, then a search over its tile sizes."""
    if not start:
        return []
    out: list[tuple[str, PartitionPlan]] = []
    remembered = plan_from_pattern(start, shape, pool)
    if remembered is not None:
        out.append(("ltm", _as_adaptive(remembered)))
    tiles = {int(t) for t in start.get("tiles", []) if isinstance(t, int | float)}
    preferred = tuple(d for d in pool.devices if d.array_size in tiles)
    if preferred:
        sub = DevicePool(preferred)
        lam = effective_lambda(shape, pool, lambda_mem, model)
        out.append(("ltm-tiles", _dp_plan(shape, sub, model, lam)[0]))
    return out


# --- LTM helpers: key ("compute", "partition", f"{type_key}/{material}") ------------------------

# Plans with more blocks are remembered by their tile sizes only, to keep LTM records small.
MAX_REMEMBERED_BLOCKS = 4096


class _Memory(Protocol):
    def recall(self, layer: str, kind: str, key: str) -> Any: ...
    def remember(self, layer: str, kind: str, key: str, value: Any, *, score: float = ...) -> bool: ...
    def used(self, layer: str, kind: str, key: str) -> Any: ...


def pattern_of(plan: PartitionPlan) -> dict[str, Any]:
    """The JSON pattern LTM keeps for a plan: shape, tile sizes and (if small) its blocks."""
    pattern: dict[str, Any] = {
        "shape": list(plan.shape),
        "strategy": plan.strategy,
        "tiles": sorted({b.tile for b in plan.blocks}),
        "cell_utilization": plan.cell_utilization(),
    }
    if plan.tiles <= MAX_REMEMBERED_BLOCKS:
        pattern["blocks"] = [[b.row0, b.col0, b.rows, b.cols, b.tile, b.device] for b in plan.blocks]
    return pattern


def plan_from_pattern(
    pattern: Mapping[str, Any], shape: tuple[int, int], pool: DevicePool
) -> PartitionPlan | None:
    """The remembered plan if it fits this shape and pool; None when the pattern is stale."""
    raw = pattern.get("blocks")
    if list(pattern.get("shape", [])) != list(shape) or not isinstance(raw, list):
        return None
    sizes = {d.name: d.array_size for d in pool.devices}
    try:
        blocks = tuple(Block(int(r), int(c), int(h), int(w), int(t), str(d)) for r, c, h, w, t, d in raw)
        plan = PartitionPlan(shape=shape, blocks=blocks, strategy="adaptive")
        plan.validate()
    except (TypeError, ValueError):
        return None
    if any(sizes.get(b.device) != b.tile for b in blocks):
        return None
    return plan


def outcome_score(plan: PartitionPlan, measured: Mapping[str, float]) -> float:
    """Higher is better: 1/(1+objective) when measured, else utilisation per programming second."""
    if "objective" in measured:
        return 1.0 / (1.0 + float(measured["objective"]))
    return plan.cell_utilization() / (1.0 + float(measured.get("program_s", 0.0)))


def record_outcome(memory: _Memory, key: str, plan: PartitionPlan, measured: Mapping[str, float]) -> bool:
    """Remember a plan and what it measured under ("compute", "partition", key); True if kept."""
    value = pattern_of(plan) | {"measured": {k: float(v) for k, v in measured.items()}}
    return bool(memory.remember("compute", "partition", key, value, score=outcome_score(plan, measured)))


def recall_pattern(memory: _Memory, key: str) -> dict[str, Any] | None:
    """The partition pattern LTM holds for ``key`` (counted as one use), or None."""
    value = memory.recall("compute", "partition", key)
    if not isinstance(value, dict):
        return None
    memory.used("compute", "partition", key)
    return value
