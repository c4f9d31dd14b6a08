"""The layer's one entry point: ``process(A, x)`` runs Algorithm 1, lines 1–8.

1. classify the workload (:func:`sedma.compute.workload.classify`) → LTM key
   ``<type_key>/<material>``; 2. recall the partition pattern and λ LTM holds for it;
3. partition: static (one tile size, MELISO+) or adaptive (Eq. 4, starting from the pattern);
4–6. program A on the crossbars (write-and-verify) and read x; 7. first-order correction
p = A x̃ + Ã x − Ã x̃; 8. y* = (I + λ_t LᵀL)⁻¹ p with λ_t fixed or adaptive (Eq. 6); then record
the outcome: partition and λ in LTM, error and noise statistics in STM.
Every component has an ablation switch in :class:`ComputeOptions`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sedma.compute import lam as lam_mod
from sedma.compute.correction import MODES
from sedma.compute.crossbar import (
    CrossbarConfig,
    ProgrammedMatrix,
    Readout,
    check_matrix,
    check_vector,
    exact_product,
    program,
)
from sedma.compute.devices import Device, get_device, load_device
from sedma.compute.executor import EXECUTORS, ray_address
from sedma.compute.partition import DEFAULT_LAMBDA_MEM, recall_pattern, record_outcome, search_partition
from sedma.compute.plan import PartitionPlan, static_partition
from sedma.compute.pool import device_models, load_pool, sized_pool
from sedma.compute.workload import WorkloadSignature, classify
from sedma.errors import InputError
from sedma.memory import DualMemory

PARTITIONS = ("static", "adaptive")
# Steady-state throughput is timed over repeated reads for at least this long (or _MAX_REPEATS).
_TIMING_S = 0.2
_MAX_REPEATS = 50


@dataclass(frozen=True, slots=True)
class ComputeOptions:
    """One switch per component (ablations): partition, correction, λ, memory, executor."""

    material: str = "TaOx-HfOy"
    device_file: str | None = None
    tile: int = 512
    partition: str = "static"
    correction: str = "full"
    lam: float | str = "adaptive"
    alpha: float = 0.5
    use_memory: bool = True
    executor: str | None = None
    seed: int = 0
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)
    pool_sizes: tuple[int, ...] = (64, 128, 256, 512)
    pool_file: str | None = None
    lambda_mem: float = DEFAULT_LAMBDA_MEM
    time_reads: bool = True
    progress: bool = False
    # Eq. 5's L respects image rows when the signature found A acting on row-major images.
    image_rows: bool = True

    def validate(self) -> None:
        if self.partition not in PARTITIONS:
            raise InputError(f"partition must be one of {PARTITIONS}, got {self.partition!r}")
        if self.correction not in MODES:
            raise InputError(f"correction must be one of {MODES}, got {self.correction!r}")
        if isinstance(self.lam, str):
            if self.lam != "adaptive":
                raise InputError(f"lambda must be 'adaptive' or a number >= 0, got {self.lam!r}")
        elif not np.isfinite(self.lam) or self.lam < 0:
            raise InputError(f"lambda must be 'adaptive' or a number >= 0, got {self.lam}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.executor is not None and self.executor not in EXECUTORS:
            raise InputError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.tile < 2:
            raise InputError(f"tile size {self.tile} is below 2")
        self.crossbar.validate()

    def device(self) -> Device:
        """The device model: a user file if given, else the named preset (validated)."""
        dev = load_device(self.device_file) if self.device_file else get_device(self.material)
        if self.partition == "static":
            dev.check_tile(self.tile)
        return dev

    def executor_kind(self) -> str:
        """``--executor`` wins; otherwise Ray when SEDMA_RAY_ADDRESS is set, else local threads."""
        return self.executor or ("ray" if ray_address() else "local")


@dataclass(slots=True)
class MatvecReport:
    """Everything one ``process`` call measured; ``as_dict`` is the ``sedma matvec --json`` contract."""

    y: npt.NDArray[np.float64]
    relative_error: dict[str, float | None]
    lam: float | None
    lambda_decision: dict[str, Any] | None
    mvm_per_s: float
    first_read_s: float
    program_s: float
    program_iterations: int
    tiles: int
    cell_utilization: float
    energy_j: float
    latency_s: float
    program_energy_j: float
    program_latency_s: float
    mvm_cost: dict[str, float]
    workload: dict[str, Any]
    partition: dict[str, Any]
    memory: dict[str, Any]
    options: dict[str, Any]
    program: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.__slots__ if f not in ("y", "lam")}
        out["lambda"] = self.lam
        return out


def _plan(
    shape: tuple[int, int], dev: Device, opts: ComputeOptions, pattern: Any
) -> tuple[PartitionPlan, dict[str, Device], dict[str, Any]]:
    """Algorithm 1, line 3: the static grid, or Eq. 4 over a pool of array sizes of this device."""
    if opts.partition == "static":
        plan = static_partition(shape, tile=opts.tile, device=dev.name)
        return plan, {dev.name: dev}, {"strategy": "static", "origin": "static", "tile_sizes": [opts.tile]}
    if opts.pool_file:
        # A heterogeneous pool from a file: each array group names its own material.
        pool = load_pool(opts.pool_file)
        models = device_models(pool, get_device)
    else:
        sizes = [s for s in opts.pool_sizes if 2 <= s <= dev.max_tile]
        if not sizes:
            raise InputError(f"no pool array size fits device {dev.name!r} (max tile {dev.max_tile})")
        pool = sized_pool(dev.name, sizes=sizes, pulse_s=dev.pulse_width_s)
        models = {d.name: dev for d in pool.devices}
    start = pattern if isinstance(pattern, dict) else None
    search = search_partition(shape, pool, lambda_mem=opts.lambda_mem, start=start)
    info = {
        "strategy": "adaptive",
        "origin": search.origin,
        "tile_sizes": sorted({b.tile for b in search.plan.blocks}),
        "objective": search.cost.objective,
        "static_objective": search.static_cost.objective,
    }
    return search.plan, models, info


def _lambda_rule(
    opts: ComputeOptions, memory: DualMemory | None, key: str, width: int | None
) -> tuple[Any, list[Any]]:
    """λ of Eq. 5: a fixed number, or Eq. 6 decided on the first read's p (kept in ``box``)."""
    box: list[Any] = []
    if not isinstance(opts.lam, str):
        return float(opts.lam), box

    def rule(p: npt.NDArray[np.float32], noise_var: float) -> float:
        decision = lam_mod.decide_lambda(p, noise_var, memory=memory, key=key, alpha=opts.alpha, width=width)
        box.extend([decision, lam_mod.risk_gain(p, decision.noise_var, decision.value, width)])
        return float(decision.value)

    return rule, box


def _rel(v: npt.NDArray[np.float64] | None, exact: npt.NDArray[np.float64]) -> float | None:
    if v is None:
        return None
    denom = float(np.linalg.norm(exact))
    return float(np.linalg.norm(v - exact) / denom) if denom > 0 else float(np.linalg.norm(v))


def _throughput(pm: ProgrammedMatrix, x: npt.NDArray[np.float64], mode: str, lam: float | None) -> float:
    """Corrected MVMs per second, steady state: repeated reads of the same batch."""
    reps, t0 = 0, time.perf_counter()
    while reps < _MAX_REPEATS and (reps < 2 or time.perf_counter() - t0 < _TIMING_S):
        pm.read(x, correction=mode, lam=lam)
        reps += 1
    return float(reps * x.shape[1]) / (time.perf_counter() - t0)


@dataclass(slots=True)
class _Reads:
    """What the reads of one programmed matrix produced (lines 6–8 of Algorithm 1)."""

    readout: Readout
    first_read_s: float
    lam: float | None
    mvm_per_s: float
    decision: lam_mod.LambdaDecision | None
    gain: float


def _read(
    pm: ProgrammedMatrix, vec: npt.NDArray[np.float64], opts: ComputeOptions, mem: Any, key: str
) -> _Reads:
    """The first read decides λ_t on its own p; then steady-state reads are timed with it."""
    rule, box = _lambda_rule(opts, mem, key, pm.row_width)
    t0 = time.perf_counter()
    readout = pm.read(vec, correction=opts.correction, lam=rule)
    first_read_s = time.perf_counter() - t0
    lam_used = pm.last_lam if opts.correction == "full" else None
    mvm_per_s = _throughput(pm, vec, opts.correction, lam_used) if opts.time_reads else 0.0
    decision = box[0] if box else None
    return _Reads(readout, first_read_s, lam_used, mvm_per_s, decision, box[1] if box else 0.0)


def process(a: Any, x: Any, *, memory: DualMemory | None, options: ComputeOptions) -> MatvecReport:
    """Algorithm 1, lines 1–8: classify, recall, partition, program, correct, record."""
    options.validate()
    arr = check_matrix(a)
    vec = check_vector(x, arr.shape[1])
    dev = options.device()
    mem = memory if options.use_memory else None
    sig: WorkloadSignature = classify(arr)
    key = sig.key(dev.name)
    pattern = recall_pattern(mem, key) if mem is not None else None
    lam_memory = lam_mod.recall_lambda(mem, key)
    plan, devices, pinfo = _plan(arr.shape, dev, options, pattern)
    pm = program(arr, plan=plan, device=devices, config=options.crossbar, seed=options.seed,
                 executor=options.executor_kind(), progress=options.progress)  # fmt: skip
    pm.row_width = sig.row_width if options.image_rows else None
    try:
        reads = _read(pm, vec, options, mem, key)
        mvm, prog, stats = pm.mvm_cost(vec, correction=options.correction), pm.program_cost(), pm.stats
    finally:
        pm.close()
    errors = _errors(reads.readout, exact_product(arr, vec))
    # A static grid is no partition choice: recording it would steer later adaptive runs to it.
    learned = plan if options.partition == "adaptive" else None
    _record(mem, key, learned, reads.decision, reads.gain, errors, stats.program_s)
    out = reads.readout.output
    return MatvecReport(
        y=out[:, 0] if np.asarray(x).ndim == 1 else out,
        relative_error=errors,
        lam=reads.lam,
        lambda_decision=reads.decision.as_dict() if reads.decision else None,
        mvm_per_s=reads.mvm_per_s,
        first_read_s=reads.first_read_s,
        program_s=stats.program_s,
        program_iterations=stats.iterations,
        tiles=stats.tiles,
        cell_utilization=stats.cell_utilization,
        energy_j=mvm.energy_j,
        latency_s=mvm.latency_s,
        program_energy_j=prog.energy_j,
        program_latency_s=prog.latency_s,
        mvm_cost=mvm.breakdown,
        workload=sig.as_dict() | {"key": key},
        partition=pinfo | {"tiles": plan.tiles},
        memory={"lambda_memory": lam_memory, "partition_memory": _pattern_summary(pattern)},
        options=_options_dict(options, dev),
        program=stats.as_dict() | {"noise_var": pm.noise_var, "raw_noise_var": pm.raw_var},
    )


def _errors(readout: Readout, exact: npt.NDArray[np.float64]) -> dict[str, float | None]:
    return {
        "raw": _rel(readout.raw, exact),
        "first_order": _rel(readout.first_order, exact),
        "full": _rel(readout.full, exact),
    }


def _pattern_summary(pattern: Any) -> dict[str, Any] | None:
    if not isinstance(pattern, dict):
        return None
    return {k: pattern[k] for k in ("strategy", "tiles", "shape", "cell_utilization") if k in pattern}


def _options_dict(opts: ComputeOptions, dev: Device) -> dict[str, Any]:
    out = asdict(opts)
    out["material"] = dev.name
    out["executor"] = opts.executor_kind()
    return out


def _record(
    mem: DualMemory | None,
    key: str,
    plan: PartitionPlan | None,
    decision: lam_mod.LambdaDecision | None,
    gain: float,
    errors: dict[str, float | None],
    program_s: float,
) -> None:
    """Algorithm 1's memory updates: partition outcome and λ in LTM, error statistics in STM."""
    if mem is None:
        return
    if plan is not None:
        record_outcome(mem, key, plan, {"program_s": program_s})
    if decision is not None:
        lam_mod.record_lambda(mem, key, decision, gain=gain)
    for name, value in errors.items():
        if value is not None:
            mem.observe(f"compute/error_{name}/{key}", value)


def open_memory(*, use_memory: bool = True) -> DualMemory | None:
    """The dual memory from the environment (SEDMA_HOME, SEDMA_LTM_URL, SEDMA_STM_URL)."""
    if not use_memory:
        return None
    return DualMemory.open()


__all__ = ["ComputeOptions", "MatvecReport", "open_memory", "process"]
