"""Programming a matrix onto crossbar tiles (program once) and reading it (read many).

``program(A, plan=..., device=...)`` scales A (MELISO+ min-max), cuts it along the partition
plan, groups blocks by (tile size, device) into stacked arrays, programs every cell of a group by
closed-loop write-and-verify (:mod:`sedma.compute.writeverify`, in row-aligned chunks on a thread
pool so host memory stays bounded), and hands the groups to an executor (local threads or Ray
actors). ``pm @ x`` and ``pm.read(x)`` then run the MELISO+ pipeline for vectors (n,) or batches
(n, B): DAC → tiles → per-read noise → ADC → raw; with correction, p = A x̃ + Ã x − Ã x̃
(Algorithm 1, line 7) and y* = (I + λLᵀL)⁻¹ p (Eq. 5), then digital un-scaling.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from sedma.compute import correction as corr
from sedma.compute import digital, kernels
from sedma.compute.backend import ArrayBackend, get_backend
from sedma.compute.converters import Scale, scale
from sedma.compute.devices import Device, get_device
from sedma.compute.energy import Cost, mvm_cost, programming_cost
from sedma.compute.executor import Executor, make_executor
from sedma.compute.plan import PartitionPlan, static_partition
from sedma.compute.programming import (
    XTILDE_MODES,
    CrossbarConfig,
    GroupSummary,
    XtildeTable,
    build_group,
    shard_groups,
    xtilde_calls,
)
from sedma.compute.sampling import NormalSource
from sedma.compute.tiles import Shard, ShardOut
from sedma.compute.writeverify import ProgramStats
from sedma.errors import InputError

__all__ = ["XTILDE_MODES", "CrossbarConfig", "ProgrammedMatrix", "Readout", "check_matrix", "program"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
# Chooses λ of Eq. 5 from p (scaled units) and the calibration noise variance.
LambdaRule = Callable[[npt.NDArray[np.float32], float], float]


@dataclass(slots=True)
class Readout:
    """One read: the raw analog product, the first-order corrected p and the Eq. 5 result y*."""

    raw: npt.NDArray[np.float64]
    first_order: npt.NDArray[np.float64] | None
    full: npt.NDArray[np.float64] | None
    correction: str

    @property
    def output(self) -> npt.NDArray[np.float64]:
        if self.correction == "full" and self.full is not None:
            return self.full
        if self.correction == "first-order" and self.first_order is not None:
            return self.first_order
        return self.raw


@dataclass(slots=True)
class ProgramTotals:
    """``pm.stats``: programming time, iterations, pulses, tiles and cell utilisation."""

    program_s: float
    iterations: int
    pulses: int
    verify_reads: int
    unconverged: int
    cells: int
    tiles: int
    cell_utilization: float
    per_device: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def check_matrix(a: Any, *, name: str = "matrix") -> npt.NDArray[np.floating]:
    """A finite, non-empty, real 2-D array; :class:`InputError` naming the problem otherwise."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} dtype {arr.dtype} is not a real numeric type")
    if arr.ndim != 2:
        raise InputError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} shape {arr.shape} is empty")
    if arr.dtype.kind in "bi" or arr.dtype.kind == "u":
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or Inf")
    return arr


def exact_product(
    a: npt.NDArray[np.floating], x: npt.NDArray[np.floating], *, rows: int | None = None
) -> F64:
    """A @ x in float64, a band of rows at a time (≈ 256 KB of float64) so no float64 copy of A is made."""
    rows = rows or max(1, (1 << 15) // max(1, a.shape[1]))
    xd = np.asarray(x, dtype=np.float64)
    out = np.empty((a.shape[0], *xd.shape[1:]))
    for r in range(0, a.shape[0], rows):
        out[r : r + rows] = np.asarray(a[r : r + rows], dtype=np.float64) @ xd
    return out


def check_vector(x: Any, n: int) -> F64:
    """x of shape (n,) or (n, B), finite and real, as a 2-D float64 array."""
    out: F64 = check_input(x, n).astype(np.float64, copy=False)
    return out


_NOT_FINITE = "vector contains NaN or Inf"


def check_input(x: Any, n: int, *, finite: bool = True) -> npt.NDArray[np.floating]:
    """x of shape (n,) or (n, B), finite and real, 2-D: float32 stays float32, the rest float64.

    ``finite=False`` leaves the NaN/Inf check to the caller (the compiled scaling pass does it
    while it reads the values anyway).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"vector dtype {arr.dtype} is not a real numeric type")
    if arr.ndim not in (1, 2) or arr.shape[0] != n or arr.size == 0:
        raise InputError(f"vector shape {arr.shape} does not match a matrix with {n} columns")
    if finite and not np.isfinite(arr).all():
        raise InputError(_NOT_FINITE)
    out: npt.NDArray[np.floating] = np.asarray(arr, dtype=np.result_type(arr.dtype, np.float32))
    return out.reshape(n, -1)


def _resolve_devices(plan: PartitionPlan, device: Device | str | Mapping[str, Device]) -> dict[str, Device]:
    names = {b.device for b in plan.blocks}
    if isinstance(device, Mapping):
        missing = sorted(names - set(device))
        if missing:
            raise InputError(f"no device model for plan device(s) {missing}")
        table = {k: device[k] for k in names}
    else:
        dev = get_device(device) if isinstance(device, str) else device
        table = dict.fromkeys(names, dev)
    for name, dev in table.items():
        dev.validate()
        tiles = {b.tile for b in plan.blocks if b.device == name}
        for t in tiles:
            if t < 2 or t > dev.max_tile:
                raise InputError(f"tile size {t} is outside 2..{dev.max_tile} for device {dev.name!r}")
    return table


def program(
    a: Any,
    *,
    plan: PartitionPlan | None = None,
    device: Device | str | Mapping[str, Device] = "TaOx-HfOy",
    tile: int = 512,
    config: CrossbarConfig | None = None,
    seed: int = 0,
    executor: str | Executor = "local",
    backend: str | None = None,
    progress: bool = False,
) -> ProgrammedMatrix:
    """Program A onto crossbars along ``plan`` (static ``tile`` grid by default): program once.

    ``backend`` (or SEDMA_ARRAY_BACKEND) moves the read kernel to CuPy or torch on CUDA;
    ``progress`` shows a progress bar of cells programmed on stderr.
    """
    cfg = config or CrossbarConfig()
    cfg.validate()
    array_backend = get_backend(backend)
    arr = check_matrix(a)
    if plan is None:
        name = device.name if isinstance(device, Device) else device if isinstance(device, str) else ""
        plan = static_partition(arr.shape, tile=tile, device=name or "device")
    if tuple(plan.shape) != arr.shape:
        raise InputError(f"partition plan is for shape {plan.shape}, matrix is {arr.shape}")
    plan.validate()
    devices = _resolve_devices(plan, device)
    t0 = time.perf_counter()
    sc = _matrix_scale(arr, cfg.scaling)
    shards, summaries = _program_shards(arr, sc, plan, devices, cfg, seed, array_backend, progress)
    run = make_executor(executor, shards, threads=cfg.threads)
    pm = ProgrammedMatrix(arr, plan, cfg, sc, summaries, run, seed, time.perf_counter() - t0)
    pm.calibrate(arr)
    _release_freed_memory()
    return pm


def _release_freed_memory() -> None:
    """Hand programming's freed scratch back to the OS (glibc keeps it in per-thread arenas)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _program_shards(
    arr: npt.NDArray[np.floating],
    sc: Scale,
    plan: PartitionPlan,
    devices: dict[str, Device],
    cfg: CrossbarConfig,
    seed: int,
    backend: ArrayBackend,
    progress: bool,
) -> tuple[list[Shard], list[GroupSummary]]:
    """Every shard's tile groups, programmed on a thread pool (Algorithm 1, line 6)."""
    shards: list[Shard] = []
    summaries: list[GroupSummary] = []
    cells = sum(b.tile * b.tile for b in plan.blocks)
    with ThreadPoolExecutor(max_workers=cfg.program_threads or cfg.threads) as pool, tqdm(
        total=cells, unit="cell", unit_scale=True, desc="programming", disable=not progress, leave=False
    ) as bar:  # fmt: skip
        for si, grouped in enumerate(shard_groups(plan, cfg.shards)):
            groups = []
            for gi, ((_, dname), blocks) in enumerate(grouped.items()):
                key = (1, si, gi)
                g, summary = build_group(arr, sc, blocks, devices[dname], cfg, key, seed, pool, bar.update)
                groups.append(g)
                summaries.append(summary)
            stream = np.random.SeedSequence(seed, spawn_key=(2, si))
            shards.append(Shard(groups, arr.shape[0], stream, backend))
    return shards, summaries


@dataclass(slots=True)
class XtildeTerm:
    """Groups that share an x̃ table and input set: the fast mode's x̃ noise of their rows.

    Var(Σ_j E_ij e_ijb) = Σ_j E_ij² m2(x̂_jb) ≈ Σ_j E_ij² · mean_j m2(x̂_jb): E and x̂ are
    independent, so the row's E² may be replaced by its mean (an O(1/√n) change), and the
    variance costs one table lookup per input and column, no matrix-sized product.
    """

    table: XtildeTable
    cols: npt.NDArray[np.intp] | None  # the inputs the groups read; None: all of them
    rows_e2: npt.NDArray[np.float32]  # (m,) Σ_j E_ij² over the groups' tiles


def _xtilde_terms(summaries: list[GroupSummary]) -> list[XtildeTerm]:
    """One term per (x̃ table, input set); groups of one device share a table (it is cached)."""
    terms: list[XtildeTerm] = []
    for g in summaries:
        if g.xtable is None:
            continue
        for t in terms:
            same = (t.cols is None and g.xcols is None) or (
                t.cols is not None and g.xcols is not None and np.array_equal(t.cols, g.xcols)
            )
            if t.table is g.xtable and same:
                t.rows_e2 += g.rows_e2.astype(np.float32)
                break
        else:
            terms.append(XtildeTerm(g.xtable, g.xcols, g.rows_e2.astype(np.float32)))
    return terms


def _matrix_scale(arr: npt.NDArray[np.floating], mode: str) -> Scale:
    if mode == "minmax":
        lo, hi = float(arr.min()), float(arr.max())
        span = hi - lo
    else:
        lo, span = 0.0, float(np.abs(arr).max())
    return Scale(lo=np.array([[lo]]), span=np.array([[span if span > 0 else 1.0]]))


class ProgrammedMatrix:
    """A matrix resident on crossbar tiles: ``pm @ x`` reads it, ``pm.stats`` says what it cost."""

    def __init__(
        self,
        arr: npt.NDArray[np.floating],
        plan: PartitionPlan,
        cfg: CrossbarConfig,
        sc: Scale,
        summaries: list[GroupSummary],
        executor: Executor,
        seed: int,
        program_s: float,
    ):
        m, n = arr.shape
        self.shape = (m, n)
        self.plan, self.config, self.scale, self.executor = plan, cfg, sc, executor
        self.groups = summaries
        self.correction = "full"
        self.lam = 1e-12
        lo, span = float(sc.lo.ravel()[0]), float(sc.span.ravel()[0])
        # rowsum(Â) is exact and digital: it un-scales the x-offset term.
        self.rowsum = (arr.sum(axis=1, dtype=np.float64) - n * lo) / span
        self.rows_e2 = np.sum([g.rows_e2 for g in summaries], axis=0).astype(np.float32)
        self._xterms = _xtilde_terms(summaries)
        # One term (one device and input set, e.g. one shard): the x̃ noise SD is separable,
        # sqrt(Σ_j E_ij²)·sqrt(mean_j m2(x̂_jb)), row factor here, column factor per read.
        one = self._xterms[0].rows_e2 if len(self._xterms) == 1 else np.zeros(m)
        self._xnoise_sd = np.sqrt(one).astype(np.float32)[:, None]
        self._rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(3,))))
        self._normals = NormalSource(self._rng)
        self._draw_lock = threading.Lock()
        self._probe_rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(4,))))
        self.stats = self._totals(program_s)
        self.noise_var = 0.0
        self.raw_var = 0.0
        self.last_lam: float | None = None
        # Image width of the outputs when they are row-major image rows (row-aware L of Eq. 5).
        self.row_width: int | None = None

    def _totals(self, program_s: float) -> ProgramTotals:
        total = ProgramStats()
        per: dict[str, dict[str, Any]] = {}
        for g in self.groups:
            total.merge(g.stats)
            d = per.setdefault(g.device.name, {"tiles": 0, "pulses": 0, "iterations": 0, "cells": 0})
            d["tiles"] += g.blocks
            d["pulses"] += g.stats.pulses
            d["cells"] += g.stats.cells
            d["iterations"] = max(d["iterations"], g.stats.iterations)
        return ProgramTotals(
            program_s=program_s,
            iterations=total.iterations,
            pulses=total.pulses,
            verify_reads=total.verify_reads,
            unconverged=total.unconverged,
            cells=total.cells,
            tiles=self.plan.tiles,
            cell_utilization=self.plan.cell_utilization(),
            per_device=per,
        )

    @property
    def signed_inputs(self) -> bool:
        return self.config.scaling == "absmax"

    def calibrate(self, arr: npt.NDArray[np.floating]) -> None:
        """Calibration probes: inputs whose exact product is computed now, read like any vector.

        Their error statistics (raw and after first-order correction, scaled units) are the
        short-term evidence the adaptive λ of Eq. 6 is chosen from.
        """
        k = self.config.probes
        lo = -1.0 if self.signed_inputs else 0.0
        xs = self._probe_rng.uniform(lo, 1.0, size=(self.shape[1], k)).astype(np.float32)
        a0, sa = float(self.scale.lo.ravel()[0]), float(self.scale.span.ravel()[0])
        exact = (exact_product(arr, xs) - a0 * xs.sum(axis=0, dtype=np.float64)) / sa
        raw, p = self._scaled(xs, "first-order")
        assert p is not None
        self.raw_var = float(np.mean((raw - exact) ** 2))
        self.noise_var = float(np.mean((p - exact) ** 2))

    def _scaled(self, xs: F32, correction: str, xs_sum: F64 | None = None) -> tuple[F32, F32 | None]:
        """The analog part in scaled units: raw read and (with correction) p of Algorithm 1, l. 7."""
        exact = correction != "none"
        faithful = self.config.xtilde == "faithful"
        out: ShardOut = self.executor.run(xs, exact=exact, faithful=exact and faithful)
        if not exact or out.dx is None:
            return out.raw, None
        # A constant input scales to all zeros: its x̃ copies sit at Gmin, never pulsed, exact.
        # Min-max scaled inputs are >= 0, so a column has a positive entry iff its sum is positive.
        minmax = xs_sum is not None and not self.signed_inputs
        live = xs_sum.ravel() > 0.0 if minmax and xs_sum is not None else (xs != 0.0).any(axis=0)
        # p = A x̃ + Ã x − Ã x̃ with A x̃ − Ã x̃ = −Σ_j E_ij x̃_ij = Â x − W x − Σ_j E_ij e_ij.
        if out.xnoise is not None:  # faithful: every x̃ cell was reprogrammed and read
            p: F32 = np.add(out.raw, out.dx)
            p -= out.xnoise * live
            return out.raw, p
        with self._draw_lock:  # the draws are views of shared scratch: use them under the lock
            seed = int(self._rng.bit_generator.random_raw())  # each column's calibration call
            if len(self._xterms) == 1 and kernels.AVAILABLE:  # the hot path: two compiled calls
                term = self._xterms[0]
                col = term.table.column_sd(xs, term.cols, seed, live)
                z = self._normals.normal(out.raw.shape)
                return out.raw, digital.first_order(out.raw, out.dx, z, self._xnoise_sd, col)
            calls = xtilde_calls(seed, xs.shape[1])  # the same calls as the compiled pass
            z = self._normals.normal(out.raw.shape)
            if len(self._xterms) == 1:
                term = self._xterms[0]
                col = np.sqrt(term.table.column_m2(xs, term.cols, calls)) * live
                noise = z * self._xnoise_sd
                noise *= col.astype(np.float32)
            else:  # several devices or input sets: the variance is a sum of rank-one terms
                var = np.zeros(out.raw.shape, dtype=np.float32)
                for term in self._xterms:
                    var += np.multiply.outer(term.rows_e2, term.table.column_m2(xs, term.cols, calls))
                noise = z * np.sqrt(var)
                noise *= live
        p = np.add(out.raw, out.dx)
        p -= noise
        return out.raw, p

    def _unscale(self, prods: list[npt.NDArray[np.floating]], xs_sum: F64, xsc: Scale) -> F64:
        """Digital un-scaling, (products, m, B): s_A s_x P + a₀ s_x Σx̂ + s_A x₀ rowsum(Â) + n a₀ x₀."""
        a0, sa = float(self.scale.lo.ravel()[0]), float(self.scale.span.ravel()[0])
        x0, sx = xsc.lo.reshape(1, -1), xsc.span.reshape(1, -1)
        gain, c1, c2 = sa * sx, sa * x0, a0 * sx * xs_sum + self.shape[1] * a0 * x0
        out: F64 = np.empty((len(prods), *prods[0].shape))
        offset: F64 | None = None
        for i, prod in enumerate(prods):
            if i and prod is prods[i - 1]:
                out[i] = out[i - 1]  # λ = 0: y* is p itself
            elif kernels.AVAILABLE and prod.dtype == np.float32:
                digital.unscale(prod, self.rowsum, gain.ravel(), c1.ravel(), c2.ravel(), out[i])
            else:
                if offset is None:
                    offset = self.rowsum[:, None] * c1
                    offset += c2
                np.multiply(prod, gain, out=out[i])
                out[i] += offset
        return out

    def read(
        self, x: Any, *, correction: str | None = None, lam: float | LambdaRule | None = None
    ) -> Readout:
        """One read of x (n,) or (n, B): raw, first-order and Eq. 5 corrected products.

        ``lam`` is λ of Eq. 5, or a rule choosing it from p (scaled units) and the probe noise.
        """
        mode = correction or self.correction
        if mode not in corr.MODES:
            raise InputError(f"correction must be one of {corr.MODES}, got {mode!r}")
        vec = check_input(x, self.shape[1], finite=False)
        if kernels.AVAILABLE and vec.dtype == np.float32 and self.config.scaling == "minmax":
            got = digital.minmax_columns(vec)
            if got is None:
                raise InputError(_NOT_FINITE)
            xs, xsc, xs_sum = got
        else:
            if not np.isfinite(vec).all():
                raise InputError(_NOT_FINITE)
            xs, xsc = scale(vec, mode=self.config.scaling, axis=0)
            xs_sum = xs.sum(axis=0, dtype=np.float64)[None, :]
        raw_s, p_s = self._scaled(xs, mode, xs_sum)
        prods: list[npt.NDArray[np.floating]] = [raw_s] if p_s is None else [raw_s, p_s]
        if mode == "full" and p_s is not None:
            value = self.lam if lam is None else lam
            self.last_lam = value(p_s, self.noise_var) if callable(value) else float(value)
            # λ = 0 leaves p as it is: no copy, no solve.
            prods.append(p_s if self.last_lam == 0.0 else corr.smooth(p_s, self.last_lam, self.row_width))
        ys = self._unscale(prods, xs_sum, xsc)
        outs: list[F64 | None] = [y[:, 0].copy() if np.ndim(x) == 1 else y for y in ys]
        outs += [None] * (3 - len(outs))
        raw = outs[0]
        assert raw is not None
        return Readout(raw, outs[1], outs[2], mode)

    def program_cost(self) -> Cost:
        """Energy and latency of programming this matrix (:mod:`sedma.compute.energy`)."""
        return programming_cost([g.cost_input() for g in self.groups])

    def mvm_cost(self, x: Any, *, correction: str | None = None) -> Cost:
        """Estimated energy and latency of one MVM with inputs like ``x``."""
        vec = check_vector(x, self.shape[1])
        xs, _ = scale(vec, mode=self.config.scaling, axis=0)
        x_sq = np.mean(xs.astype(np.float64) ** 2, axis=1)
        return mvm_cost([g.cost_input() for g in self.groups], x_sq, correction=correction or self.correction)

    def __matmul__(self, x: Any) -> npt.NDArray[np.float64]:
        return self.read(x).output

    def close(self) -> None:
        self.executor.close()
