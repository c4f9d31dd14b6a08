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

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from sedma.compute import correction as corr
from sedma.compute.backend import get_backend
from sedma.compute.converters import SCALINGS, Scale, scale
from sedma.compute.devices import Device, get_device
from sedma.compute.energy import Cost, GroupCostInput, mvm_cost, programming_cost
from sedma.compute.executor import Executor, make_executor
from sedma.compute.plan import Block, PartitionPlan, static_partition
from sedma.compute.tiles import Shard, ShardOut, TileGroup
from sedma.compute.writeverify import ProgramStats, VerifyConfig, program_cells
from sedma.errors import InputError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
XTILDE_MODES = ("fast", "faithful")
# Chooses λ of Eq. 5 from p (scaled units) and the calibration noise variance.
LambdaRule = Callable[[npt.NDArray[np.float32], float], float]


@dataclass(frozen=True, slots=True)
class CrossbarConfig:
    """Crossbar peripherals and programming controls; ``None`` bits take the device's converters."""

    dac_bits: int | None = None
    adc_bits: int | None = None
    scaling: str = "minmax"
    tolerance: float = 0.02
    max_iterations: int = 21
    patience: int = 3
    xtilde: str = "fast"
    shards: int = 2
    threads: int = 2
    chunk_cells: int = 1 << 16
    probes: int = 4

    def validate(self) -> None:
        self.verify().validate()
        for name in ("dac_bits", "adc_bits"):
            bits = getattr(self, name)
            if bits is not None and not 0 <= bits <= 24:
                raise InputError(f"{name} must be in 0..24, got {bits}")
        if self.scaling not in SCALINGS:
            raise InputError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.xtilde not in XTILDE_MODES:
            raise InputError(f"xtilde mode must be one of {XTILDE_MODES}, got {self.xtilde!r}")
        for name in ("shards", "threads", "chunk_cells", "probes"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")

    def verify(self) -> VerifyConfig:
        return VerifyConfig(self.tolerance, self.max_iterations, self.patience)


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
class GroupSummary:
    """What programming one tile group produced, kept on the driver for stats and energy."""

    device: Device
    tile: int
    blocks: int
    stats: ProgramStats
    colg: F64  # (n,) Σ_i (G⁺ + G⁻) per input column, siemens
    rows_e2: F64  # (m,) σ_x̃² · Σ_j E_ij² per output row
    dac_bits: int
    adc_bits: int

    def cost_input(self) -> GroupCostInput:
        return GroupCostInput(
            self.device, self.tile, self.blocks, self.stats, self.colg, self.dac_bits, self.adc_bits
        )


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


def exact_product(a: npt.NDArray[np.floating], x: npt.NDArray[np.floating], *, rows: int = 512) -> F64:
    """A @ x in float64, a band of rows at a time so no float64 copy of A is ever made."""
    xd = np.asarray(x, dtype=np.float64)
    out = np.empty((a.shape[0], *xd.shape[1:]))
    for r in range(0, a.shape[0], rows):
        out[r : r + rows] = np.asarray(a[r : r + rows], dtype=np.float64) @ xd
    return out


def check_vector(x: Any, n: int) -> npt.NDArray[np.float64]:
    """x of shape (n,) or (n, B), finite and real, as a 2-D float64 array."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"vector dtype {arr.dtype} is not a real numeric type")
    if arr.ndim not in (1, 2) or arr.shape[0] != n or arr.size == 0:
        raise InputError(f"vector shape {arr.shape} does not match a matrix with {n} columns")
    if not np.isfinite(arr).all():
        raise InputError("vector contains NaN or Inf")
    return np.asarray(arr, dtype=np.float64).reshape(n, -1)


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


Chunk = tuple[int, int, int, int]  # blocks [i0, i1), rows [r0, r1)


def _chunks(k: int, tile: int, chunk_cells: int) -> list[Chunk]:
    """Slices of a (k, t, t) stack of about ``chunk_cells`` cells: whole blocks, or row bands."""
    per_block = tile * tile
    if per_block <= chunk_cells:
        step = chunk_cells // per_block
        return [(i, min(k, i + step), 0, tile) for i in range(0, k, step)]
    rows = max(1, chunk_cells // tile)
    return [(i, i + 1, r, min(tile, r + rows)) for i in range(k) for r in range(0, tile, rows)]


@dataclass(slots=True)
class _ChunkOut:
    """Statistics of one programmed slice, assembled on the calling thread (no shared writes)."""

    where: Chunk
    stats: ProgramStats
    e2_sum: float
    s_sum: float
    count: int
    row_e2: F64  # (blocks, rows) Σ_j E_ij²
    row_pos: F64  # (blocks, rows) Σ_j max(W_ij, 0)
    row_neg: F64
    col_abs: F64  # (blocks, t) Σ_i |W_ij| over the slice's rows


def _program_chunk(
    wa: F32, s: F32, where: Chunk, dev: Device, cfg: CrossbarConfig, seq: np.random.SeedSequence
) -> _ChunkOut:
    """Write-and-verify one slice of a group: G⁺ and G⁻ of each differential pair."""
    rng = np.random.Generator(np.random.SFC64(seq))
    i0, i1, r0, r1 = where
    t = wa.shape[2]
    target = np.ascontiguousarray(wa[i0:i1, t + r0 : t + r1, :])
    flat = target.reshape(-1)
    gp, stats = program_cells(np.maximum(flat, 0.0), dev, cfg.verify(), rng)
    gn = np.zeros_like(gp)
    if (flat < 0.0).any():
        gn, neg = program_cells(np.maximum(-flat, 0.0), dev, cfg.verify(), rng)
        stats.merge(neg)
        stats.cells = gp.size * 2
    g0 = np.float32(dev.g_min / dev.span)
    sv = ((g0 + gp) ** 2 + (g0 + gn) ** 2).reshape(target.shape)
    w = (gp - gn).reshape(target.shape)
    wa[i0:i1, r0:r1, :] = w
    s[i0:i1, r0:r1, :] = sv
    err = w - target
    mask = target != 0.0
    f64 = np.float64
    return _ChunkOut(
        where=where,
        stats=stats,
        e2_sum=float((err[mask] ** 2).sum(dtype=f64)),
        s_sum=float(sv[mask].sum(dtype=f64)),
        count=int(mask.sum()),
        row_e2=(err * err).sum(axis=2, dtype=f64),
        row_pos=np.maximum(w, 0.0).sum(axis=2, dtype=f64),
        row_neg=np.minimum(w, 0.0).sum(axis=2, dtype=f64),
        col_abs=np.abs(w).sum(axis=1, dtype=f64),
    )


def _stack_blocks(
    a: npt.NDArray[np.floating], sc: Scale, blocks: list[Block], tile: int, m: int, n: int
) -> tuple[F32, IdxPair]:
    """Scaled blocks as a zero-padded (k, 2t, t) stack (Â in the lower half) with column/row maps."""
    k = len(blocks)
    wa = np.zeros((k, 2 * tile, tile), dtype=np.float32)
    cols = np.full((k, tile), n, dtype=np.intp)
    rows = np.full((k, tile), m, dtype=np.intp)
    lo, span = float(sc.lo.ravel()[0]), float(sc.span.ravel()[0])
    for i, b in enumerate(blocks):
        sub = np.asarray(a[b.row0 : b.row0 + b.rows, b.col0 : b.col0 + b.cols], dtype=np.float64)
        wa[i, tile : tile + b.rows, : b.cols] = (sub - lo) / span
        cols[i, : b.cols] = np.arange(b.col0, b.col0 + b.cols)
        rows[i, : b.rows] = np.arange(b.row0, b.row0 + b.rows)
    return wa, (cols, rows)


IdxPair = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]


def _scatter(rows: npt.NDArray[np.intp], m: int) -> sp.csr_matrix:
    flat = rows.reshape(-1)
    keep = np.flatnonzero(flat < m)
    data = np.ones(keep.size, dtype=np.float32)
    return sp.csr_matrix((data, (flat[keep], keep)), shape=(m, flat.size))


@dataclass(slots=True)
class _Assembled:
    stats: ProgramStats
    xvar: float
    row_e2: F64  # (k, t)
    adc_lo: F32
    adc_hi: F32
    col_abs: F64  # (k, t)


def _assemble(outs: list[_ChunkOut], k: int, tile: int, dev: Device, signed: bool) -> _Assembled:
    """Per-tile row and column sums from the slices; σ² of an x̃ cell from the measured error."""
    stats = ProgramStats()
    row_e2, pos, neg, col_abs = (np.zeros((k, tile)) for _ in range(4))
    for o in outs:
        stats.merge(o.stats)
        i0, i1, r0, r1 = o.where
        row_e2[i0:i1, r0:r1], pos[i0:i1, r0:r1], neg[i0:i1, r0:r1] = o.row_e2, o.row_pos, o.row_neg
        col_abs[i0:i1] += o.col_abs
    count = sum(o.count for o in outs)
    prog_var = sum(o.e2_sum for o in outs) / count if count else 0.0
    mean_s = sum(o.s_sum for o in outs) / count if count else 0.0
    # x̃ cells carry the same write-and-verify error as Ã's cells, plus one read's noise.
    xvar = prog_var + dev.read_noise**2 * mean_s
    if signed:
        hi = (pos - neg).max(axis=1)
        lo = -hi
    else:
        lo, hi = neg.min(axis=1), pos.max(axis=1)
    return _Assembled(stats, xvar, row_e2, lo.astype(np.float32), hi.astype(np.float32), col_abs)


def _build_group(
    a: npt.NDArray[np.floating],
    sc: Scale,
    blocks: list[Block],
    dev: Device,
    cfg: CrossbarConfig,
    key: tuple[int, ...],
    seed: int,
    pool: ThreadPoolExecutor,
) -> tuple[TileGroup, GroupSummary]:
    """Program one (tile, device) group of blocks and summarise it."""
    m, n = a.shape
    tile = blocks[0].tile
    wa, (cols, rows) = _stack_blocks(a, sc, blocks, tile, m, n)
    s = np.empty((len(blocks), tile, tile), dtype=np.float32)
    spans = _chunks(len(blocks), tile, cfg.chunk_cells)
    seqs = [np.random.SeedSequence(seed, spawn_key=(*key, i)) for i in range(len(spans))]
    outs = list(pool.map(lambda j: _program_chunk(wa, s, spans[j], dev, cfg, seqs[j]), range(len(spans))))
    signed = cfg.scaling == "absmax"
    asm = _assemble(outs, len(blocks), tile, dev, signed)
    rows_e2 = np.zeros(m + 1)
    np.add.at(rows_e2, rows.reshape(-1), asm.xvar * asm.row_e2.reshape(-1))
    colg = np.zeros(n + 1)
    np.add.at(colg, cols.reshape(-1), (dev.span * asm.col_abs + 2.0 * tile * dev.g_min).reshape(-1))
    group = TileGroup(
        device=dev, tile=tile, wa=wa, s=s, cols=cols, scatter=_scatter(rows, m),
        adc_lo=asm.adc_lo, adc_hi=asm.adc_hi,
        dac_bits=dev.dac_bits if cfg.dac_bits is None else cfg.dac_bits,
        adc_bits=dev.adc_bits if cfg.adc_bits is None else cfg.adc_bits,
        signed=signed, xvar=float(asm.xvar),
    )  # fmt: skip
    summary = GroupSummary(
        dev, tile, len(blocks), asm.stats, colg[:n], rows_e2[:m], group.dac_bits, group.adc_bits
    )
    return group, summary


def _shard_groups(plan: PartitionPlan, shards: int) -> list[dict[tuple[int, str], list[Block]]]:
    """Blocks dealt round-robin to shards, then grouped by (tile, device) inside each shard."""
    out: list[dict[tuple[int, str], list[Block]]] = [{} for _ in range(shards)]
    for i, b in enumerate(plan.blocks):
        out[i % shards].setdefault((b.tile, b.device), []).append(b)
    return out


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
) -> ProgrammedMatrix:
    """Program A onto crossbars along ``plan`` (static ``tile`` grid by default): program once.

    ``backend`` (or SEDMA_ARRAY_BACKEND) moves the read kernel to CuPy or torch on CUDA.
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
    shards: list[Shard] = []
    summaries: list[GroupSummary] = []
    with ThreadPoolExecutor(max_workers=cfg.threads) as pool:
        for si, grouped in enumerate(_shard_groups(plan, cfg.shards)):
            groups = []
            for gi, ((_, dname), blocks) in enumerate(grouped.items()):
                g, summary = _build_group(arr, sc, blocks, devices[dname], cfg, (1, si, gi), seed, pool)
                groups.append(g)
                summaries.append(summary)
            stream = np.random.SeedSequence(seed, spawn_key=(2, si))
            shards.append(Shard(groups, arr.shape[0], stream, array_backend))
    program_s = time.perf_counter() - t0
    pm = ProgrammedMatrix(
        arr, plan, cfg, sc, summaries, make_executor(executor, shards, threads=cfg.threads), seed, program_s
    )
    pm.calibrate(arr)
    return pm


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
        self._xnoise_sd = np.sqrt(self.rows_e2)[:, None]
        self._rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(3,))))
        self._probe_rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(4,))))
        self.stats = self._totals(program_s)
        self.noise_var = 0.0
        self.raw_var = 0.0
        self.last_lam: float | None = None

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

    def _scaled(self, xs: F32, correction: str) -> tuple[F32, F32 | None]:
        """The analog part in scaled units: raw read and (with correction) p of Algorithm 1, l. 7."""
        exact = correction != "none"
        faithful = self.config.xtilde == "faithful"
        out: ShardOut = self.executor.run(xs, exact=exact, faithful=exact and faithful)
        if not exact or out.ax is None or out.wx is None:
            return out.raw, None
        if out.xnoise is not None:
            noise = out.xnoise
        else:
            z = self._rng.standard_normal(out.raw.shape, dtype=np.float32)
            noise = self._xnoise_sd * z
        # p = A x̃ + Ã x − Ã x̃ with A x̃ − Ã x̃ = −Σ_j E_ij x̃_ij = Â x − W x − Σ_j E_ij e_ij.
        p: F32 = out.ax + out.raw - out.wx - noise
        return out.raw, p

    def _unscale(self, prod: npt.NDArray[np.floating], xs_sum: F64, xsc: Scale) -> F64:
        """Digital un-scaling: s_A s_x P + a₀ s_x Σx̂ + s_A x₀ rowsum(Â) + n a₀ x₀."""
        a0, sa = float(self.scale.lo.ravel()[0]), float(self.scale.span.ravel()[0])
        x0, sx = xsc.lo.reshape(1, -1), xsc.span.reshape(1, -1)
        n = self.shape[1]
        out: F64 = sa * sx * prod + a0 * sx * xs_sum + sa * x0 * self.rowsum[:, None] + n * a0 * x0
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
        vec = check_vector(x, self.shape[1])
        xs, xsc = scale(vec, mode=self.config.scaling, axis=0)
        xs_sum = xs.sum(axis=0, dtype=np.float64)[None, :]
        raw_s, p_s = self._scaled(xs, mode)
        squeeze = np.asarray(x).ndim == 1

        def fin(v: npt.NDArray[np.floating] | None) -> npt.NDArray[np.float64] | None:
            if v is None:
                return None
            y = self._unscale(v, xs_sum, xsc)
            return y[:, 0] if squeeze else y

        full = None
        if mode == "full" and p_s is not None:
            value = self.lam if lam is None else lam
            self.last_lam = value(p_s, self.noise_var) if callable(value) else float(value)
            full = fin(corr.smooth(p_s, self.last_lam))
        raw = fin(raw_s)
        assert raw is not None
        return Readout(raw, fin(p_s), full, mode)

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
