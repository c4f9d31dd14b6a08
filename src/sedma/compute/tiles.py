"""Programmed tiles resident in a shard: stacked arrays per (tile size, device), read without loops.

A :class:`TileGroup` holds ``k`` tiles of one size and one device as stacked arrays: ``wa`` is
(k, 2t, t), the programmed weights W = (G⁺ − G⁻)/(Gmax − Gmin) on top of the exact scaled
matrix Â (for the row-wise product A x̃ of the correction), so one BLAS call per tile yields
both W x and Â x; ``s`` is (k, t, t) with
(G⁺² + G⁻²)/(Gmax − Gmin)², the per-cell read-noise weight. One read is one batched matmul over
the stack; per-read noise is sampled at the column outputs, y = Wx + σ·sqrt(S(x∘x))·z, which is
exact in distribution for independent Gaussian per-cell noise G(1 + σz); then each tile's ADC.
A :class:`Shard` is the set of groups one worker (thread or Ray actor) owns, with its own random
stream, so the same seed gives the same numbers whichever executor runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from sedma.compute.backend import ArrayBackend
from sedma.compute.converters import adc, dac
from sedma.compute.devices import Device

F32 = npt.NDArray[np.float32]
IdxArray = npt.NDArray[np.intp]


@dataclass(slots=True)
class TileGroup:
    """``k`` programmed ``t × t`` tiles of one device, stacked, with their gather/scatter maps."""

    device: Device
    tile: int
    wa: F32  # (k, 2t, t): programmed W over exact Â
    s: F32  # (k, t, t): (G⁺² + G⁻²)/span²
    cols: IdxArray  # (k, t): input index of each tile column (n = the zero pad)
    scatter: sp.csr_matrix  # (m, k·t): sums tile outputs into matrix rows
    adc_lo: F32
    adc_hi: F32
    dac_bits: int
    adc_bits: int
    signed: bool
    xvar: float  # variance of one x̃ cell (programming + read), scaled units

    @property
    def blocks(self) -> int:
        return int(self.wa.shape[0])

    @property
    def w(self) -> F32:
        return self.wa[:, : self.tile, :]

    @property
    def a(self) -> F32:
        return self.wa[:, self.tile :, :]

    def gather(self, xs: F32) -> F32:
        """Tile inputs (k, t, B) after the DAC; padded columns read 0."""
        xq = dac(xs, self.dac_bits, signed=self.signed)
        ext = np.concatenate([xq, np.zeros((1, xq.shape[1]), dtype=np.float32)])
        out: F32 = ext[self.cols]
        return out

    def outputs(self, y: F32) -> F32:
        """Tile outputs (k, t, B) summed into matrix rows (m, B)."""
        flat = np.ascontiguousarray(y).reshape(-1, y.shape[-1])
        out: F32 = np.asarray(self.scatter @ flat, dtype=np.float32)
        return out

    def noisy_read(self, x: F32, y: F32, rng: np.random.Generator) -> F32:
        """Per-read noise at the column outputs, then each tile's ADC."""
        sigma = self.device.read_noise
        if sigma <= 0.0:
            return adc(y.copy(), self.adc_lo, self.adc_hi, self.adc_bits)
        noise = np.matmul(self.s, x * x)
        np.sqrt(noise, out=noise)
        noise *= rng.standard_normal(noise.shape, dtype=np.float32)
        noise *= np.float32(sigma)
        noise += y
        return adc(noise, self.adc_lo, self.adc_hi, self.adc_bits)

    def faithful_xtilde(self, x: F32, rng: np.random.Generator) -> F32:
        """Σ_j E_ij e_ij with x̃_ij = x_j + e_ij drawn per cell (the faithful correction mode)."""
        err = self.w - self.a
        k, t, _ = err.shape
        out = np.empty((k, t, x.shape[-1]), dtype=np.float32)
        sd = np.float32(np.sqrt(self.xvar))
        for b in range(x.shape[-1]):
            e = sd * rng.standard_normal((k, t, t), dtype=np.float32)
            out[:, :, b] = (err * e).sum(axis=2)
        return out


@dataclass(slots=True)
class ShardOut:
    """Partial sums of one shard over matrix rows: raw read, noiseless W x, exact Â x, x̃ noise."""

    raw: F32
    wx: F32 | None = None
    ax: F32 | None = None
    xnoise: F32 | None = None

    def add(self, other: ShardOut) -> ShardOut:
        def plus(a: F32 | None, b: F32 | None) -> F32 | None:
            return None if a is None or b is None else a + b

        return ShardOut(
            self.raw + other.raw,
            plus(self.wx, other.wx),
            plus(self.ax, other.ax),
            plus(self.xnoise, other.xnoise),
        )


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

    def __getstate__(self) -> dict[str, Any]:
        # Device copies stay where they were made; a Ray actor makes its own on first read.
        return {k: v for k, v in self.__dict__.items() if k != "_device"} | {"_device": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

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
        return be.get(y), adc(be.get(noisy), g.adc_lo, g.adc_hi, g.adc_bits)

    def read(self, xs: F32, exact: bool, faithful: bool) -> ShardOut:
        """One read of scaled inputs (n, B): raw analog output and, for correction, Âx̂ and W x̂."""
        total: F32 | None = None
        for g in self.groups:
            x = g.gather(xs)
            if self.backend.on_gpu:
                y, noisy = self._gpu_read(g, x, exact)
            else:
                y = np.matmul(g.wa if exact else g.w, x)
                noisy = g.noisy_read(x, y[:, : g.tile], self.rng)
            parts = [noisy, y[:, : g.tile], y[:, g.tile :]] if exact else [noisy]
            if faithful:
                parts.append(g.faithful_xtilde(x, self.rng))
            # One sparse scatter for every product of this group (columns side by side).
            rows = g.outputs(np.concatenate(parts, axis=-1))
            total = rows if total is None else total + rows
        if total is None:
            total = np.zeros((self.rows, xs.shape[1] * (3 + faithful if exact else 1)), dtype=np.float32)
        cols = np.split(total, total.shape[1] // xs.shape[1], axis=-1)
        if not exact:
            return ShardOut(cols[0])
        return ShardOut(cols[0], cols[1], cols[2], cols[3] if faithful else None)
