"""Programmed tiles resident in a shard: stacked arrays per (tile size, device), read without loops.

A :class:`TileGroup` holds ``k`` tiles of one size and one device as stacked arrays: ``wa`` is
(k, 2t, t), the programmed weights W = (G⁺ − G⁻)/(Gmax − Gmin) on top of D = Â − W, the
static programming error against the exact scaled matrix Â (for the row-wise product A x̃ of
the correction), so one BLAS call per tile yields both W x and D x; ``s`` is (k, t, t) with
(G⁺² + G⁻²)/(Gmax − Gmin)², the per-cell read-noise weight. One read is one batched matmul over
the stack; per-read noise is sampled at the column outputs, y = Wx + σ·sqrt(S(x∘x))·z, which is
exact in distribution for independent Gaussian per-cell noise G(1 + σz); then each tile's ADC.
A :class:`Shard` is the set of groups one worker (thread or Ray actor) owns, with its own random
stream, so the same seed gives the same numbers whichever executor runs it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from sedma.compute import kernels
from sedma.compute.backend import ArrayBackend
from sedma.compute.converters import dac
from sedma.compute.devices import Device
from sedma.compute.sampling import NormalSource
from sedma.compute.writeverify import VerifyConfig, program_cells

F32 = npt.NDArray[np.float32]
IdxArray = npt.NDArray[np.intp]
# Reused per-read buffers of one tile group: [W; D] x (k, 2t, B), raw, x∘x and the tile inputs x (k, t, B).
Scratch = tuple[F32, F32, F32, F32]
SCRATCH_KEEP = 8  # read-buffer sets kept per shard (one per group and batch size in use)
# Bounded batched reads (no variance GEMM) pay one dot product per output near an ADC boundary,
# ≈ 3× a GEMM's cost per output: past this share of such outputs the GEMM is cheaper.
BOUNDED_SHARE = 0.25
BOUNDED_RETRY = 64  # dense reads before the bounded pass is tried again
# Products [W; D] x̂ finished per chunk of this many bytes while they are cached (L2-sized).
BOUNDED_CHUNK_BYTES = 1 << 19
XTILDE_CELLS = 1 << 16  # x̃ cells per write-and-verify call in the faithful mode (bounded memory)


@dataclass(slots=True)
class TileGroup:
    """``k`` programmed ``t × t`` tiles of one device, stacked, with their gather/scatter maps."""

    device: Device
    tile: int
    wa: F32  # (k, 2t, t): programmed W over D = Â − W
    # (k, t, t): ((G⁺)² + (G⁻)²)/span² (G in units of the span, g0 = Gmin/span added); None when every
    # G⁻ sits at Gmin (unsigned inputs): then S = (g0 + W)² + g0², derived on first use (:attr:`s`).
    s_store: F32 | None
    cols: IdxArray  # (k, t): input index of each tile column (n = the zero pad)
    scatter: sp.csr_matrix  # (m, k·t): sums tile outputs into matrix rows
    adc_lo: F32
    adc_hi: F32
    dac_bits: int
    adc_bits: int
    signed: bool
    xverify: VerifyConfig  # write-and-verify of the x̃ copies (faithful mode): A's programming controls
    # (block rows, block columns) when the blocks are a full row-major grid of the matrix, tile i
    # at rows (i // C)·t…: then the scatter is a reshape and one sum (the static plan on one shard).
    grid: tuple[int, int] | None = None
    # 16-bit row-scaled copies of D and S for the compiled single-vector read (made on first use).
    packed: kernels.Packed | None = None
    # (k, t) matrix row of each tile output, −1 for padding (made on first compiled read).
    row_map: npt.NDArray[np.int64] | None = None
    # (k, 2, t) bound factors of S per tile row for reads that skip the variance GEMM (first use).
    s_bound: F32 | None = None
    # Share of outputs whose variance the last bounded read needed, and dense reads since then.
    near_boundary: float = 0.0
    dense_reads: int = 0

    @property
    def blocks(self) -> int:
        return int(self.wa.shape[0])

    @property
    def g0(self) -> float:
        return self.device.g_min / self.device.span

    @property
    def s(self) -> F32:
        """S (k, t, t); derived from W, with programming's float32 operations, when not stored."""
        if self.s_store is None:
            g = np.float32(self.g0)
            s = np.empty((self.blocks, self.tile, self.tile), dtype=np.float32)
            for out, wt in zip(s, self.w, strict=True):
                np.add(g, wt, out=out)
                np.square(out, out=out)
                out += g * g
            self.s_store = s
        return self.s_store

    @property
    def w(self) -> F32:
        return self.wa[:, : self.tile, :]

    @property
    def d(self) -> F32:
        return self.wa[:, self.tile :, :]

    @property
    def row_of(self) -> npt.NDArray[np.int64]:
        """(k, t) matrix row each tile output is summed into, −1 for padded outputs."""
        if self.row_map is None:
            coo = self.scatter.tocoo()
            rows = np.full(self.blocks * self.tile, -1, dtype=np.int64)
            rows[coo.col] = coo.row
            self.row_map = rows.reshape(self.blocks, self.tile)
        return self.row_map

    def read_fused(self, xs: F32, exact: bool, normals: NormalSource, buf: Scratch, acc: list[F32]) -> None:
        """:meth:`read_into` and :meth:`outputs` for a batch, around the GEMMs in compiled passes.

        DAC, gather and x∘x in one pass; after the GEMMs noise, ADC and the sum into matrix rows
        in another, adding into ``acc`` (raw, and with ``exact`` D x). Same numbers as the numpy path.
        """
        t, (y, raw, sq, x) = self.tile, buf
        bits = self.dac_bits - self.signed  # as converters.dac; 0 bits: an ideal DAC
        dac = float((1 << bits) - 1) if self.dac_bits > 0 else 0.0
        sigma = self.device.read_noise
        adc = float((1 << self.adc_bits) - 1) if self.adc_bits > 0 else 0.0
        dx = acc[1] if exact else acc[0]
        if xs.shape[1] > 1 and sigma > 0.0 and adc > 0.0 and self._bounded_next():
            self._read_bounded(xs, exact, normals, buf, acc[0], dx, dac, adc)
            return
        kernels.gather(xs, self.cols, dac, x, sq)
        if xs.shape[1] == 1:
            self._read_one(x, exact, normals, acc)
            return
        np.matmul(self.wa, x, out=y) if exact else np.matmul(self.w, x, out=y[:, :t])
        z = raw
        if sigma > 0.0:
            np.matmul(self.s, sq, out=raw)
            z = normals.normal(raw.shape)
        kernels.finish(y, raw, z, sigma, self.adc_lo, self.adc_hi, adc, exact, self.row_of, acc[0], dx)

    def _read_bounded(
        self, xs: F32, exact: bool, normals: NormalSource, buf: Scratch, raw_acc: F32, dx: F32,
        dac: float, adc: float,
    ) -> None:  # fmt: skip
        """A batched read without the variance GEMM (:func:`kernels.finish_bounded`).

        Tiles go in chunks of :data:`BOUNDED_CHUNK_BYTES` of products — the compiled gather, one
        stacked GEMM and the compiled finishing pass per chunk, in the first chunk's scratch
        slots — so the products are finished while still cached (n = 4096, B = 32: 44 ms a
        read against 47 ms for the whole group at once) and the Python steps are per chunk,
        not per tile (one chunk at n = 1024 on 512-tiles, or 32 tiles of 64 at a time).
        """
        t, (y, raw, sq, x) = self.tile, buf
        k, nb = self.blocks, xs.shape[1]
        z = normals.normal(raw.shape)  # the whole group's draw at once, as the dense pass takes it
        ut = sq.reshape(k, nb, t)
        per = max(1, BOUNDED_CHUNK_BYTES // y[0].nbytes)
        src, from_w = self._s_source()
        bound, near = self._s_bound(), 0
        for k0 in range(0, k, per):
            k1 = min(k, k0 + per)
            part, c = slice(k0, k1), k1 - k0
            yc, xc, uc = y[:c], x[:c], ut[:c]
            kernels.gather_t(xs, self.cols[part], dac, xc, uc)
            np.matmul(self.wa[part], xc, out=yc) if exact else np.matmul(self.w[part], xc, out=yc[:, :t])
            near += kernels.finish_bounded(
                yc, z[part], xc, uc, src[part], from_w, self.g0, bound[part], self.device.read_noise,
                self.adc_lo[part], self.adc_hi[part], adc, exact, self.row_of[part], raw_acc, dx,
            )  # fmt: skip
        self.near_boundary = near / z.size

    def _bounded_next(self) -> bool:
        """Whether the next batched read skips the variance GEMM (:func:`kernels.finish_bounded`).

        Both ways give the same numbers; the bounded pass is faster while few outputs sit near an
        ADC boundary (coarse ADC, small read noise). Past :data:`BOUNDED_SHARE` of them the GEMM
        is cheaper, so reads go dense and try the bounded pass again every :data:`BOUNDED_RETRY`.
        """
        if self.near_boundary <= BOUNDED_SHARE:
            return True
        self.dense_reads += 1
        if self.dense_reads < BOUNDED_RETRY:
            return False
        self.dense_reads = 0
        return True

    def _s_source(self) -> tuple[F32, bool]:
        """Where the bounded pass reads S rows: S itself, or W rows to form (g0 + W)² + g0² from."""
        if self.s_store is None:
            return self.wa, True
        return self.s_store, False

    def _s_bound(self) -> F32:
        """(k, 2, t): sqrt(‖S_i‖₂) and sqrt(max_j S_ij) per tile row, from S or (for s_from_w) W."""
        if self.s_bound is None:
            self.s_bound = np.empty((self.blocks, 2, self.tile), dtype=np.float32)
            kernels.s_bounds(*self._s_source(), self.g0, self.s_bound)
        return self.s_bound

    def gather(self, xs: F32) -> F32:
        """Tile inputs (k, t, B) after the DAC; padded columns read 0."""
        xq = dac(xs, self.dac_bits, signed=self.signed)
        ext = np.concatenate([xq, np.zeros((1, xq.shape[1]), dtype=np.float32)])
        out: F32 = ext[self.cols]
        return out

    def outputs(self, y: F32) -> F32:
        """Tile outputs (k, t, B) summed into matrix rows (m, B)."""
        if self.grid is not None:
            r, c = self.grid
            m = self.scatter.shape[0]
            rows: F32 = np.add.reduce(y.reshape(r, c, self.tile, y.shape[-1]), axis=1)
            return rows.reshape(r * self.tile, -1)[:m]
        flat = np.ascontiguousarray(y).reshape(-1, y.shape[-1])
        out: F32 = np.asarray(self.scatter @ flat, dtype=np.float32)
        return out

    def adc_(self, y: F32) -> F32:
        """Each tile's ADC in place on (k, t, B): round to 2^bits − 1 levels over [lo, hi] (clipped)."""
        if self.adc_bits <= 0:
            return y
        levels = np.float32((1 << self.adc_bits) - 1)
        lo = self.adc_lo[:, None, None]
        step = (self.adc_hi - self.adc_lo)[:, None, None] / levels
        inv = np.float32(1.0) / np.where(step > 0.0, step, np.float32(1.0))
        # Clipping the integer code against scalars is cheaper than clipping y against per-tile arrays.
        y -= lo
        y *= inv
        np.rint(y, out=y)
        np.maximum(y, np.float32(0.0), out=y)
        np.minimum(y, levels, out=y)
        y *= step
        y += lo
        return y

    def read_into(self, x: F32, exact: bool, normals: NormalSource, buf: Scratch) -> tuple[F32, F32 | None]:
        """One read of tile inputs x (k, t, B) into reused buffers: (raw, (Â − W)x or None).

        raw = each tile's ADC of Wx plus per-read noise σ·sqrt(S(x∘x))·z at the column outputs
        (exact in distribution for independent per-cell noise G(1 + σz)); with ``exact``,
        D x = (Â − W)x, the static error the correction cancels, comes from the same matmul.
        """
        t, (y, raw, sq, _) = self.tile, buf
        wx = np.matmul(self.wa, x, out=y)[:, :t] if exact else np.matmul(self.w, x, out=y[:, :t])
        sigma = self.device.read_noise
        if sigma > 0.0:
            np.matmul(self.s, np.square(x, out=sq), out=raw)
            np.sqrt(raw, out=raw)
            raw *= normals.normal(raw.shape)
            raw *= np.float32(sigma)
            raw += wx
        else:
            raw[...] = wx
        self.adc_(raw)
        return (raw, y[:, t:]) if exact else (raw, None)

    def _read_one(self, x: F32, exact: bool, normals: NormalSource, acc: list[F32]) -> None:
        """One vector (B = 1) in one compiled pass over W and 16-bit D and S (:func:`kernels.read_one`)."""
        if self.packed is None:
            self.packed = kernels.pack(self.d, self.s_store, self.w, self.g0)
        k, t, pk = self.blocks, self.tile, self.packed
        z = normals.normal((k, t)) if self.device.read_noise > 0.0 else x.reshape(k, t)
        levels = float((1 << self.adc_bits) - 1) if self.adc_bits > 0 else 0.0
        raw, dx = acc[0][:, 0], acc[1 if exact else 0][:, 0]
        kernels.read_one(
            self.wa, pk.d16, pk.d_scale, pk.s16, pk.s_scale, pk.s_from_w, pk.g0, x.reshape(k, t), z,
            self.device.read_noise,
            self.adc_lo, self.adc_hi, levels, exact, self.row_of, raw, dx,
        )  # fmt: skip

    def faithful_xtilde(self, x: F32, rng: np.random.Generator) -> F32:
        """Σ_j E_ij e_ij of Algorithm 1, line 7, with every x̃ cell reprogrammed (the reference mode).

        For each column b, tile row i holds its own copy x̃_ij of the tile inputs x̂_j (after the
        DAC), written from Gmin by closed-loop write-and-verify as A's cells were, and read once
        with the per-cell noise G(1 + σz): e_ij = x̃_ij − x̂_j. Signed inputs are differential
        pairs; only the side whose target is nonzero is pulsed, the other stays at Gmin. E = W − Â
        = −D. k·t·t cells per column, written a bounded batch of tiles at a time: slow by nature.
        """
        k, t, nb = self.blocks, self.tile, x.shape[-1]
        out = np.empty((k, t, nb), dtype=np.float32)
        g0, sigma = np.float32(self.g0), np.float32(self.device.read_noise)
        per = max(1, XTILDE_CELLS // (t * t))  # tiles per write-and-verify call
        for b in range(nb):
            for k0 in range(0, k, per):
                k1 = min(k, k0 + per)
                target = np.broadcast_to(x[k0:k1, None, :, b], (k1 - k0, t, t)).reshape(-1)
                mag = np.abs(target)
                g, _ = program_cells(mag, self.device, self.xverify, rng)
                e = g - mag
                if self.signed:  # a negative x̂ is written on G⁻: x̃ − x̂ = −(g − |x̂|)
                    np.negative(e, out=e, where=target < 0.0)
                if sigma > 0.0:  # read noise of the pair: σ·sqrt((g0 + g)² + g0²)·z
                    sd = np.square(g0 + g)
                    sd += g0 * g0
                    np.sqrt(sd, out=sd)
                    sd *= sigma * rng.standard_normal(sd.shape, dtype=np.float32)
                    e += sd
                e *= self.d[k0:k1].reshape(-1)
                out[k0:k1, :, b] = -e.reshape(k1 - k0, t, t).sum(axis=2)
        return out


@dataclass(slots=True)
class ShardOut:
    """Partial sums of one shard over matrix rows: raw read, (Â − W) x̂ and faithful x̃ noise."""

    raw: F32
    dx: F32 | None = None
    xnoise: F32 | None = None

    def add(self, other: ShardOut) -> ShardOut:
        def plus(a: F32 | None, b: F32 | None) -> F32 | None:
            return None if a is None or b is None else a + b

        return ShardOut(self.raw + other.raw, plus(self.dx, other.dx), plus(self.xnoise, other.xnoise))


class Shard:
    """The tile groups one worker owns, with its own random stream (seeded at programming)."""

    def __init__(
        self,
        groups: list[TileGroup],
        rows: int,
        seed: np.random.SeedSequence,
        backend: ArrayBackend | None = None,
    ):
        self.groups = groups
        self.rows = rows
        self.rng = np.random.Generator(np.random.SFC64(seed))
        self.backend = backend or ArrayBackend("numpy")
        self._device: dict[int, tuple[Any, Any]] = {}
        self._init_scratch()

    def _init_scratch(self) -> None:
        # Reused read buffers per (group, batch size), at most SCRATCH_KEEP of them: a caller
        # whose batch sizes vary does not keep a set per size. The lock keeps reads apart.
        self._scratch: dict[tuple[int, int], Scratch] = {}
        self._lock = threading.Lock()
        self._normals = NormalSource(self.rng)

    def __getstate__(self) -> dict[str, Any]:
        # Device copies and scratch stay where they were made; a Ray actor makes its own.
        drop = ("_device", "_scratch", "_lock", "_normals")
        return {k: v for k, v in self.__dict__.items() if k not in drop} | {"_device": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_scratch()

    def _gpu_read(self, g: TileGroup, x: F32, exact: bool) -> tuple[F32, F32]:
        """Matmul and per-read noise on the GPU backend; returns (clean, noisy) on the host."""
        be = self.backend
        if id(g) not in self._device:
            self._device[id(g)] = (be.put(g.wa), be.put(g.s))
        wa, s = self._device[id(g)]
        xd = be.put(x)
        y = be.matmul(wa if exact else wa[:, : g.tile], xd)
        clean = y[:, : g.tile]
        noisy = clean
        if g.device.read_noise > 0.0:
            seed = int(self.rng.integers(1 << 62))
            noisy = be.noisy(clean, be.matmul(s, xd * xd), g.device.read_noise, seed)
        return be.get(y), g.adc_(be.get(noisy))

    def _buffer(self, i: int, g: TileGroup, b: int) -> Scratch:
        """Read buffers of group i for batches of b, the least recently used dropped past a bound."""
        got = self._scratch.pop((i, b), None)  # re-inserted below: the dict's order is recency
        if got is None:
            if len(self._scratch) >= SCRATCH_KEEP:
                del self._scratch[next(iter(self._scratch))]
            k, t = g.blocks, g.tile
            f32 = np.float32
            y, raw, sq, x = (np.empty((k, r * t, b), f32) for r in (2, 1, 1, 1))
            got = (y, raw, sq, x)
        self._scratch[(i, b)] = got
        return got

    def _group_read(self, i: int, g: TileGroup, xs: F32, exact: bool, faithful: bool) -> list[F32]:
        """Matrix rows (m, B) of one group: raw, and with ``exact`` (Â − W)x and faithful x̃ noise."""
        x = g.gather(xs)
        if self.backend.on_gpu:
            yy, raw = self._gpu_read(g, x, exact)
            parts = [raw, yy[:, g.tile :]] if exact else [raw]
        else:
            raw, dx = g.read_into(x, exact, self._normals, self._buffer(i, g, xs.shape[1]))
            parts = [raw] if dx is None else [raw, dx]
        if faithful:
            parts.append(g.faithful_xtilde(x, self.rng))
        return [g.outputs(part) for part in parts]

    def _fused(self) -> bool:
        """Compiled passes: numba present, on the host (the caller excludes per-cell x̃ draws)."""
        return kernels.AVAILABLE and not self.backend.on_gpu

    def read(self, xs: F32, exact: bool, faithful: bool) -> ShardOut:
        """One read of scaled inputs (n, B): raw analog output and, for correction, (Â − W) x̂."""
        parts = (2 + faithful) if exact else 1
        total: list[F32] = []
        if not faithful and self._fused():
            total = [np.zeros((self.rows, xs.shape[1]), np.float32) for _ in range(parts)]
            with self._lock:
                for i, g in enumerate(self.groups):
                    g.read_fused(xs, exact, self._normals, self._buffer(i, g, xs.shape[1]), total)
            return ShardOut(total[0], total[1]) if exact else ShardOut(total[0])
        with self._lock:
            for i, g in enumerate(self.groups):
                rows = self._group_read(i, g, xs, exact, faithful)
                if total:
                    for acc, r in zip(total, rows, strict=True):
                        acc += r
                else:
                    total = rows
        if not total:
            total = [np.zeros((self.rows, xs.shape[1]), np.float32) for _ in range(parts)]
        if not exact:
            return ShardOut(total[0])
        return ShardOut(total[0], total[1], total[2] if faithful else None)
