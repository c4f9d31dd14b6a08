"""Programming tile groups: scaled blocks stacked per (tile, device), written by write-and-verify.

A group of k blocks becomes a (k, 2t, t) float32 stack (programmed W over the exact scaled Â)
and a (k, t, t) read-noise weight S. Cells are programmed in row-aligned chunks (2¹⁶ cells by
default, so temporaries stay in cache and host memory bounded) on a thread pool; each chunk has
its own seeded stream, so results do not depend on thread timing. Per-tile row and column sums
(ADC ranges, Σ_j E_ij², Σ_i |W_ij|) are computed per chunk and assembled on the calling thread.
:func:`calibrate_xtilde` writes a calibration set of x̃ cells at every DAC level once, so the
fast correction mode can sample the x̃ error at the outputs (:class:`XtildeTable`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from sedma.compute import kernels
from sedma.compute.converters import SCALINGS, Scale
from sedma.compute.devices import Device
from sedma.compute.energy import GroupCostInput
from sedma.compute.plan import Block, PartitionPlan
from sedma.compute.sampling import _splitmix, splitmix64
from sedma.compute.tiles import TileGroup
from sedma.compute.writeverify import ProgramStats, VerifyConfig, program_cells
from sedma.errors import InputError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

XTILDE_MODES = ("fast", "faithful")
# x̃ calibration: every level is written CAL_CELLS times in each of CAL_CALLS separate
# write-and-verify calls. A call's early stop (patience) is shared by all its cells, so its error
# level is one random draw per call (≈ 13 % relative spread for TaOx-HfOy whatever the call's
# size): averaging over calls, not over more cells in one call, is what pins the mean.
CAL_CALLS = 16
CAL_CELLS = 16
CAL_GRID = 255  # levels looked up when the DAC is ideal (0 bits) or finer than 8 bits


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
    program_threads: int | None = None
    chunk_cells: int | None = None  # None: auto (1/64 of a group, 2¹²…2¹⁶ cells)
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
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.program_threads is not None and self.program_threads < 1:
            raise InputError(f"program_threads must be >= 1, got {self.program_threads}")

    def verify(self) -> VerifyConfig:
        return VerifyConfig(self.tolerance, self.max_iterations, self.patience)


@dataclass(slots=True)
class GroupSummary:
    """What programming one tile group produced, kept on the driver for stats and energy."""

    device: Device
    tile: int
    blocks: int
    stats: ProgramStats
    colg: F64  # (n,) Σ_i (G⁺ + G⁻) per input column, siemens
    rows_e2: F64  # (m,) Σ_j E_ij² per output row (E = W − Â over this group's tiles)
    dac_bits: int
    adc_bits: int
    xtable: XtildeTable | None = None  # second moment of an x̃ cell's error per DAC level
    xcols: npt.NDArray[np.intp] | None = None  # the inputs this group's tiles read; None: all n

    def cost_input(self) -> GroupCostInput:
        return GroupCostInput(
            self.device, self.tile, self.blocks, self.stats, self.colg, self.dac_bits, self.adc_bits
        )


Chunk = tuple[int, int, int, int]  # blocks [i0, i1), rows [r0, r1)


def auto_chunk(cells: int) -> int:
    """Cells per programming chunk: 1/64 of the group within 2¹²…2¹⁶.

    Each thread holds a few dozen chunk-sized temporaries; at 2¹⁶ cells they were ≈ 1.5 float32
    copies of a 1024² matrix at the peak. Large groups keep 2¹⁶ (fewer Python steps per cell).
    """
    return min(1 << 16, max(1 << 12, cells // 64))


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
    row_e2: F64  # (blocks, rows) Σ_j E_ij²
    row_pos: F64  # (blocks, rows) Σ_j max(W_ij, 0)
    row_neg: F64
    col_abs: F64  # (blocks, t) Σ_i |W_ij| over the slice's rows


def _program_chunk(
    wa: F32, s: F32 | None, where: Chunk, dev: Device, cfg: CrossbarConfig, seq: np.random.SeedSequence
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
    if s is not None:  # unsigned groups re-derive S = (g0 + W)² + g0² when a batched read needs it
        s[i0:i1, r0:r1, :] = sv
    err = w - target
    # The lower half now keeps D = Â − W, the static error itself: D x̂ is the correction's
    # (Â − W) x̂ without the cancellation of two large products.
    wa[i0:i1, t + r0 : t + r1, :] = -err
    f64 = np.float64
    return _ChunkOut(
        where=where,
        stats=stats,
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
    # float32 input is scaled in float32 (as converters.scale does): no float64 temporaries.
    f32 = a.dtype == np.float32
    for i, b in enumerate(blocks):
        sub = a[b.row0 : b.row0 + b.rows, b.col0 : b.col0 + b.cols]
        dst = wa[i, tile : tile + b.rows, : b.cols]
        if f32:
            np.subtract(sub, np.float32(lo), out=dst)
            dst *= np.float32(1.0 / span)
        else:
            dst[...] = (np.asarray(sub, dtype=np.float64) - lo) / span
        cols[i, : b.cols] = np.arange(b.col0, b.col0 + b.cols)
        rows[i, : b.rows] = np.arange(b.row0, b.row0 + b.rows)
    return wa, (cols, rows)


IdxPair = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]


def _grid(blocks: list[Block], tile: int, m: int) -> tuple[int, int] | None:
    """(R, C) when ``blocks`` tile all rows as a row-major grid: block i starts at row (i // C)·t."""
    r = -(-m // tile)
    if len(blocks) % r:
        return None
    c = len(blocks) // r
    row0 = np.arange(len(blocks)) // c * tile
    # Every block must fill its band (no padded tile row may land on another group's matrix row).
    full = np.minimum(tile, m - row0)
    ok = all(b.row0 == r0 and b.rows == f for b, r0, f in zip(blocks, row0, full, strict=True))
    return (r, c) if ok else None


def _scatter(rows: npt.NDArray[np.intp], m: int) -> sp.csr_matrix:
    flat = rows.reshape(-1)
    keep = np.flatnonzero(flat < m)
    data = np.ones(keep.size, dtype=np.float32)
    return sp.csr_matrix((data, (flat[keep], keep)), shape=(m, flat.size))


@dataclass(slots=True)
class _Assembled:
    stats: ProgramStats
    row_e2: F64  # (k, t)
    adc_lo: F32
    adc_hi: F32
    col_abs: F64  # (k, t)


def _assemble(outs: list[_ChunkOut], k: int, tile: int, signed: bool) -> _Assembled:
    """Per-tile row and column sums from the slices."""
    stats = ProgramStats()
    row_e2, pos, neg, col_abs = (np.zeros((k, tile)) for _ in range(4))
    for o in outs:
        stats.merge(o.stats)
        i0, i1, r0, r1 = o.where
        row_e2[i0:i1, r0:r1], pos[i0:i1, r0:r1], neg[i0:i1, r0:r1] = o.row_e2, o.row_pos, o.row_neg
        col_abs[i0:i1] += o.col_abs
    if signed:
        hi = (pos - neg).max(axis=1)
        lo = -hi
    else:
        lo, hi = neg.min(axis=1), pos.max(axis=1)
    return _Assembled(stats, row_e2, lo.astype(np.float32), hi.astype(np.float32), col_abs)


@dataclass(frozen=True, slots=True, eq=False)
class XtildeTable:
    """Second moment of one x̃ cell's error e per DAC level, measured by write-and-verify.

    e = (programmed − target) + read noise, in units of the span: ``prog[l]`` = E[(g − l/L)²]
    (bias included), ``read[l]`` = σ²·E[(g0 + g)² + g0²], the per-cell read noise G(1 + σz) of
    the cell's differential pair (the unpulsed side at Gmin). ``factors`` is each calibration
    call's programming error over the mean (mean 1): one write-and-verify call stops early for
    all its cells at once, so a reprogrammed x̃ column shares one such factor.
    """

    levels: int  # L: a scaled input x̂ is level rint(|x̂|·L)
    pair: F32  # (L + 1, 2): prog and read side by side, so one lookup fetches both
    factors: F32  # (CAL_CALLS,)

    @property
    def prog(self) -> F32:
        return self.pair[:, 0]

    @property
    def read(self) -> F32:
        return self.pair[:, 1]

    @property
    def m2(self) -> F32:
        out: F32 = self.pair.sum(axis=1)
        return out

    def column_m2(self, xs: F32, rows: npt.NDArray[np.intp] | None, calls: npt.NDArray[np.intp]) -> F32:
        """(B,) mean over the inputs ``rows`` (None: all) of each column's m2, the programming
        part scaled by the factor of calibration call ``calls[b]``: O(n·B) lookups, no product."""
        count = xs.shape[0] if rows is None else rows.size
        if kernels.AVAILABLE:
            sums = np.empty((2, xs.shape[1]), dtype=np.float32)
            sel = _ALL if rows is None else rows
            _level_sums(xs, sel, np.float32(self.levels), self.pair, sums)
        else:
            sub = xs if rows is None else xs[rows]
            lv = np.minimum(np.abs(sub), np.float32(1.0)) * np.float32(self.levels) + np.float32(0.5)
            idx = lv.astype(np.intp)  # as the compiled pass: round half up
            sums = self.pair[idx].sum(axis=0, dtype=np.float32).T
        out: F32 = self.factors[calls] * sums[0]
        out += sums[1]
        out *= np.float32(1.0 / max(count, 1))
        return out

    def column_sd(
        self, xs: F32, rows: npt.NDArray[np.intp] | None, seed: int, live: npt.NDArray[np.bool_]
    ) -> F32:
        """(B,) sqrt of :meth:`column_m2` (0 where ``live`` is false) in one compiled call, each
        column's calibration call drawn from ``seed`` (SplitMix64): a read's whole per-column
        x̃ work, with none of the small numpy steps that cost a single vector ≈ 10 µs."""
        out = np.empty(xs.shape[1], dtype=np.float32)
        sel = _ALL if rows is None else rows
        _column_sd(xs, sel, np.float32(self.levels), self.pair, self.factors, np.uint64(seed), live, out)
        return out


_ALL = np.empty(0, dtype=np.intp)  # "every input" for the compiled pass (numba takes no None)


def xtilde_calls(seed: int, nb: int, calls: int = CAL_CALLS) -> npt.NDArray[np.intp]:
    """The calibration call of each of ``nb`` columns from one 64-bit ``seed``: SplitMix64 of
    (seed, b + 1) mod ``calls``, as :meth:`XtildeTable.column_sd` draws them (uint64 arrays wrap)."""
    z: npt.NDArray[np.uint64] = splitmix64(np.uint64(seed), np.arange(1, nb + 1, dtype=np.uint64))
    return (z % np.uint64(calls)).astype(np.intp)


def _level_sums(xs: F32, rows: npt.NDArray[np.intp], levels: np.float32, pair: F32, sums: F32) -> None:
    """sums[:, b] ← Σ pair[l] over the column's inputs (all, or ``rows``), l = round(|x̂|·L).

    The level the DAC wrote x̂ at (ties, a measure-zero event, round up here and to even in the
    DAC: a neighbouring level's m2). Column by column, so the sums stay in registers; float32
    sums of positive terms: ≈ 1e-5 relative at worst for 2¹⁶ inputs. ≈ 30 µs at n = 1024, B = 32.
    """  # pragma: no cover - compiled; the numpy branch of column_m2 is its reference
    half, one = np.float32(0.5), np.float32(1.0)
    n, nb = xs.shape
    some = rows.shape[0] > 0
    count = rows.shape[0] if some else n
    for b in range(nb):
        s0, s1 = np.float32(0.0), np.float32(0.0)
        for r in range(count):
            i = rows[r] if some else r
            lv = int(min(abs(xs[i, b]), one) * levels + half)
            s0 += pair[lv, 0]
            s1 += pair[lv, 1]
        sums[0, b] = s0
        sums[1, b] = s1


def _column_sd(
    xs: F32, rows: npt.NDArray[np.intp], levels: np.float32, pair: F32, factors: F32, seed: np.uint64,
    live: npt.NDArray[np.bool_], out: F32,
) -> None:  # fmt: skip  # pragma: no cover - compiled; pinned against column_m2 in tests
    """out[b] ← sqrt(mean m2 of column b) with calibration call splitmix(seed, b + 1) mod calls."""
    nb = xs.shape[1]
    sums = np.empty((2, nb), dtype=np.float32)
    _level_sums(xs, rows, levels, pair, sums)
    count = rows.shape[0] if rows.shape[0] > 0 else xs.shape[0]
    inv = np.float32(1.0) / np.float32(max(count, 1))
    calls = np.uint64(factors.shape[0])
    for b in range(nb):
        call = _splitmix(seed, b + 1) % calls
        v = (factors[call] * sums[0, b] + sums[1, b]) * inv
        out[b] = np.sqrt(v) if live[b] else np.float32(0.0)


if kernels._numba is not None:
    _level_sums = kernels._numba.njit(boundscheck=False, nogil=True, cache=True)(_level_sums)
    _column_sd = kernels._numba.njit(boundscheck=False, nogil=True, cache=True)(_column_sd)


def xtilde_levels(dac_bits: int, signed: bool) -> int:
    """Levels of the x̃ table: the DAC's own (x̂ takes exactly those values), else a 255-step
    grid looked up at the nearest level (ideal DAC, or one finer than 8 bits)."""
    levels = (1 << (dac_bits - signed)) - 1 if dac_bits > 0 else 0
    return levels if 1 <= levels <= CAL_GRID else CAL_GRID


@lru_cache(maxsize=32)
def calibrate_xtilde(
    dev: Device, verify: VerifyConfig, dac_bits: int, signed: bool, seed: int
) -> XtildeTable:
    """Write every DAC level CAL_CELLS times in each of CAL_CALLS write-and-verify calls (seeded).

    A few ms (65,536 cells at 8 bits); cached, so the groups of one device share one table.
    The ideal device comes out all zeros (exact cells, no read noise): no x̃ noise.
    """
    levels = xtilde_levels(dac_bits, signed)
    level = np.arange(levels + 1, dtype=np.float32) / np.float32(levels)
    # Every call holds every level once per cell slot: the table averages over the mix of levels
    # (a column of x̃ holds x's mix, which sets when its call stops; the factors carry that spread).
    target = np.tile(level, CAL_CELLS)
    rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(5,))))
    g0 = dev.g_min / dev.span
    prog, read = np.empty((CAL_CALLS, levels + 1)), np.empty((CAL_CALLS, levels + 1))
    for c in range(CAL_CALLS):
        g, _ = program_cells(target, dev, verify, rng)
        g64 = g.astype(np.float64).reshape(CAL_CELLS, levels + 1)
        prog[c] = ((g64 - level) ** 2).mean(axis=0)
        read[c] = dev.read_noise**2 * ((g0 + g64) ** 2 + g0**2).mean(axis=0)
    mean = prog.mean(axis=0)
    total = float(mean.mean())
    factors = prog.mean(axis=1) / total if total > 0.0 else np.ones(CAL_CALLS)
    pair = np.ascontiguousarray(np.stack([mean, read.mean(axis=0)], axis=1), dtype=np.float32)
    return XtildeTable(levels, pair, factors.astype(np.float32))


def build_group(
    a: npt.NDArray[np.floating],
    sc: Scale,
    blocks: list[Block],
    dev: Device,
    cfg: CrossbarConfig,
    key: tuple[int, ...],
    seed: int,
    pool: ThreadPoolExecutor,
    on_cells: Callable[[int], object] | None = None,
) -> tuple[TileGroup, GroupSummary]:
    """Program one (tile, device) group of blocks and summarise it."""
    m, n = a.shape
    tile = blocks[0].tile
    wa, (cols, rows) = _stack_blocks(a, sc, blocks, tile, m, n)
    signed = cfg.scaling == "absmax"
    # Unsigned targets never pulse G⁻: S = (g0 + W)² + g0² follows from W, so it is not kept here.
    s = np.empty((len(blocks), tile, tile), dtype=np.float32) if signed else None
    spans = _chunks(len(blocks), tile, cfg.chunk_cells or auto_chunk(len(blocks) * tile * tile))
    seqs = [np.random.SeedSequence(seed, spawn_key=(*key, i)) for i in range(len(spans))]
    outs = []
    for out in pool.map(lambda j: _program_chunk(wa, s, spans[j], dev, cfg, seqs[j]), range(len(spans))):
        outs.append(out)
        if on_cells is not None:
            i0, i1, r0, r1 = out.where
            on_cells((i1 - i0) * (r1 - r0) * tile)
    asm = _assemble(outs, len(blocks), tile, signed)
    rows_e2 = np.zeros(m + 1)
    np.add.at(rows_e2, rows.reshape(-1), asm.row_e2.reshape(-1))
    colg = np.zeros(n + 1)
    np.add.at(colg, cols.reshape(-1), (dev.span * asm.col_abs + 2.0 * tile * dev.g_min).reshape(-1))
    group = TileGroup(
        device=dev, tile=tile, wa=wa, s_store=s, cols=cols, scatter=_scatter(rows, m),
        adc_lo=asm.adc_lo, adc_hi=asm.adc_hi,
        dac_bits=dev.dac_bits if cfg.dac_bits is None else cfg.dac_bits,
        adc_bits=dev.adc_bits if cfg.adc_bits is None else cfg.adc_bits,
        signed=signed, xverify=cfg.verify(), grid=_grid(blocks, tile, m),
    )  # fmt: skip
    xcols = np.unique(cols[cols < n])
    summary = GroupSummary(
        dev, tile, len(blocks), asm.stats, colg[:n], rows_e2[:m], group.dac_bits, group.adc_bits,
        xtable=calibrate_xtilde(dev, cfg.verify(), group.dac_bits, signed, seed),
        xcols=None if xcols.size == n else xcols,
    )  # fmt: skip
    return group, summary


def shard_groups(plan: PartitionPlan, shards: int) -> list[dict[tuple[int, str], list[Block]]]:
    """Blocks dealt round-robin to shards, then grouped by (tile, device) inside each shard."""
    out: list[dict[tuple[int, str], list[Block]]] = [{} for _ in range(shards)]
    for i, b in enumerate(plan.blocks):
        out[i % shards].setdefault((b.tile, b.device), []).append(b)
    return out
