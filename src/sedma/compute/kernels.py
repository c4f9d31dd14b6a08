"""Compiled read kernel for single vectors: one pass over a tile group's state instead of three.

A single-vector read is memory-bound: BLAS streams [W; D] (8 bytes a cell, D = Â − W) for W x̂
and D x̂, then S (4 bytes a cell) again for the read-noise variance S (x̂∘x̂), and a dozen numpy
calls follow for the noise and the ADC. :func:`read_one` does all of it in one pass per tile
row over W (float32) and 16-bit row-scaled copies of D and S (:func:`pack`): 8 bytes a cell,
read once. W, which the ADC sees, stays exact. D is the small programming error: 16 bits of its
row's largest value put D x̂ within float32 rounding of the float32 product. S enters the noise
standard deviation through a sum of non-negative terms each rounded to 2⁻¹⁶ of its row's
largest, so the standard deviation moves by less than 1e-4 relative — far below what any
statistic of a read can see.

Batched reads (B > 1) are compute-bound GEMMs instead, and the variance S (x̂∘x̂) would be a
third one. :func:`finish_bounded` avoids it: an output's noise can change its ADC code only if it
reaches the rounding boundary of the noiseless value on the side its draw points to. A cheap
upper bound of the variance (Cauchy–Schwarz and Hölder over precomputed row norms) rules that out
for ≈ 9 in 10 outputs at 8 bits, and a lower bound from the GEMM's own W x̂ settles most of the
rest (the noise surely carries them one code over); only ≈ 1 in 25 get their exact variance, by
dot products. The codes, hence the numbers, are the dense pass's draw for draw (tested bit for bit).

numba compiles the kernel on first use (cached on disk). Without numba, or with
``SEDMA_COMPUTE_KERNEL=numpy``, :data:`AVAILABLE` is false and reads take the BLAS path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]
U16 = npt.NDArray[np.uint16]


def _load() -> Any:
    if os.environ.get("SEDMA_COMPUTE_KERNEL", "numba").lower() == "numpy":
        return None
    try:
        import numba
    except ImportError:
        return None
    return numba


_numba = _load()
AVAILABLE = _numba is not None


@dataclass(frozen=True, slots=True)
class Packed:
    """D and S of a tile group as 16-bit codes with one scale per tile row (value ≈ code · scale).

    With ``s_from_w`` every G⁻ is at Gmin (unsigned inputs: the minus side is never pulsed), so
    S = (g0 + W)² + g0² exactly and the kernel derives it from W: no S codes are kept or read.
    """

    d16: I16
    d_scale: F32
    s16: U16
    s_scale: F32
    s_from_w: bool = False
    g0: float = 0.0


def _codes(v: F32, top: float, dtype: type[np.integer[Any]]) -> tuple[npt.NDArray[Any], F32]:
    """Row-scaled integer codes of (k, t, t) ``v``, one tile at a time (temporaries stay 1 tile)."""
    codes = np.empty(v.shape, dtype=dtype)
    scale = np.empty(v.shape[:2], dtype=np.float32)
    tmp = np.empty(v.shape[1:], dtype=np.float32)  # one tile of scratch, reused (peak memory)
    for i, tile in enumerate(v):
        peak = np.maximum(tile.max(axis=1), -tile.min(axis=1))
        sc = np.where(peak > 0.0, peak / np.float32(top), np.float32(1.0)).astype(np.float32)
        np.divide(tile, sc[:, None], out=tmp)
        np.rint(tmp, out=tmp)
        codes[i] = tmp
        scale[i] = sc
    return codes, scale


def _s_is_from_w(w: F32, s: F32, g0: float) -> bool:
    """Whether S = (g0 + W)² + g0² (every G⁻ at Gmin), checked one tile at a time.

    Programming computes S as (g0 + G⁺)² + (g0 + G⁻)² in float32 and W = G⁺ − G⁻, so with
    G⁻ = 0 the same operations give the same bits: the check is exact equality.
    """
    g = np.float32(g0)
    derived = np.empty(w.shape[1:], dtype=np.float32)
    for wt, st in zip(w, s, strict=True):
        np.add(g, wt, out=derived)
        np.square(derived, out=derived)
        derived += g * g
        if not np.array_equal(derived, st):
            return False
    return True


def pack(d: F32, s: F32 | None, w: F32 | None = None, g0: float = 0.0) -> Packed:
    """16-bit row-scaled copies of D (signed) and S (non-negative), all (k, t, t).

    Given W and g0 = Gmin/(Gmax − Gmin), S is not packed when it is (g0 + W)² + g0² (``s`` None:
    known to be).
    """
    d16, d_scale = _codes(d, 32767.0, np.int16)
    if s is None or (w is not None and _s_is_from_w(w, s, g0)):
        empty = np.zeros((0, 0, 0), dtype=np.uint16)
        return Packed(d16, d_scale, empty, np.zeros((0, 0), dtype=np.float32), True, g0)
    s16, s_scale = _codes(s, 65535.0, np.uint16)
    return Packed(d16, d_scale, s16, s_scale)


def _adc_grid(lo: np.float32, hi: np.float32, levels: float) -> tuple[np.float32, np.float32]:
    """A tile's ADC step over [lo, hi] and its inverse (1 where there is no ADC or no span)."""
    zero = np.float32(0.0)
    step = (hi - lo) / np.float32(levels) if levels > 0.0 else np.float32(1.0)
    inv = np.float32(1.0) / step if step > zero else np.float32(1.0)
    return step, inv


def _noisy_adc(
    aw: np.float32, var: np.float32, zi: np.float32, sigma: float, levels: float,
    lo: np.float32, step: np.float32, inv: np.float32,
) -> np.float32:  # fmt: skip  # pragma: no cover - compiled with the single-vector reads
    """One column output: Wx + σ·sqrt(var)·z, then the tile's ADC (as ``TileGroup.adc_``)."""
    y = aw
    if sigma > 0.0:
        y = aw + np.sqrt(var) * zi * np.float32(sigma)
    if levels > 0.0:
        c = np.rint((y - lo) * inv)
        c = min(max(c, np.float32(0.0)), np.float32(levels))
        y = c * step + lo
    return y


def _read_one(
    wa: F32,
    d16: I16,
    d_scale: F32,
    s16: U16,
    s_scale: F32,
    s_from_w: bool,
    g0: float,
    x: F32,
    z: F32,
    sigma: float,
    adc_lo: F32,
    adc_hi: F32,
    levels: float,
    exact: bool,
    row_of: Any,
    raw: F32,
    dx: F32,
) -> None:  # pragma: no cover - compiled by numba; pinned against the BLAS path in tests
    """Per tile row: y = Wx + σ·sqrt(S(x∘x))·z, the tile's ADC (as ``TileGroup.adc_``), and D x,
    added into matrix row ``row_of[kk, i]`` of ``raw`` and ``dx`` (m,); padded rows (< 0) are skipped.
    With ``s_from_w``, S = (g0 + W)² + g0² from W itself (6 bytes a cell read instead of 8)."""
    if s_from_w:
        _read_one_unsigned(wa, d16, d_scale, g0, x, z, sigma, adc_lo, adc_hi, levels, exact, row_of, raw, dx)
        return
    k, t = x.shape
    zero = np.float32(0.0)
    for kk in range(k):
        lo = adc_lo[kk]
        step, inv = _adc_grid(lo, adc_hi[kk], levels)
        xk = x[kk]
        for i in range(t):
            row = row_of[kk, i]
            if row < 0:
                continue
            # Row slices keep each inner loop a unit-stride reduction that numba vectorises.
            w, dv, sv = wa[kk, i], d16[kk, i], s16[kk, i]
            aw = zero
            ad = zero
            av = zero
            if exact:
                for j in range(t):
                    xj = xk[j]
                    aw += w[j] * xj
                    ad += np.float32(dv[j]) * xj
                    av += np.float32(sv[j]) * (xj * xj)
            else:
                for j in range(t):
                    xj = xk[j]
                    aw += w[j] * xj
                    av += np.float32(sv[j]) * (xj * xj)
            raw[row] += _noisy_adc(aw, av * s_scale[kk, i], z[kk, i], sigma, levels, lo, step, inv)
            if exact:
                dx[row] += ad * d_scale[kk, i]


def _read_one_unsigned(
    wa: F32,
    d16: I16,
    d_scale: F32,
    g0: float,
    x: F32,
    z: F32,
    sigma: float,
    adc_lo: F32,
    adc_hi: F32,
    levels: float,
    exact: bool,
    row_of: Any,
    raw: F32,
    dx: F32,
) -> None:  # pragma: no cover - compiled; pinned against the BLAS path in tests
    """:func:`_read_one` when S = (g0 + W)² + g0²: Σ S x² = Σ (g0 + W)² x² + g0² Σ x²."""
    k, t = x.shape
    zero = np.float32(0.0)
    g = np.float32(g0)
    for kk in range(k):
        lo = adc_lo[kk]
        step, inv = _adc_grid(lo, adc_hi[kk], levels)
        xk = x[kk]
        x2 = zero
        for j in range(t):
            x2 += xk[j] * xk[j]
        for i in range(t):
            row = row_of[kk, i]
            if row < 0:
                continue
            w, dv = wa[kk, i], d16[kk, i]
            aw = zero
            ad = zero
            av = zero
            for j in range(t):
                xj = xk[j]
                gw = g + w[j]
                aw += w[j] * xj
                ad += np.float32(dv[j]) * xj
                av += (gw * gw) * (xj * xj)
            raw[row] += _noisy_adc(aw, av + g * g * x2, z[kk, i], sigma, levels, lo, step, inv)
            if exact:
                dx[row] += ad * d_scale[kk, i]


def _gather(xs: F32, cols: Any, levels: float, x: F32, sq: F32) -> None:  # pragma: no cover - compiled
    """Tile inputs x (k, t, B) ← DAC(xs[cols]) (0 for the pad column n) and sq ← x∘x, one pass."""
    k, t, nb = x.shape
    n = xs.shape[0]
    lv = np.float32(levels)
    zero = np.float32(0.0)
    for kk in range(k):
        for i in range(t):
            c = cols[kk, i]
            if c >= n:
                for b in range(nb):
                    x[kk, i, b] = zero
                    sq[kk, i, b] = zero
                continue
            for b in range(nb):
                v = xs[c, b]
                if levels > 0.0:  # as converters.dac: rint(x·levels)/levels
                    v = np.float32(np.rint(v * lv)) / lv
                x[kk, i, b] = v
                sq[kk, i, b] = v * v


def _finish(
    y: F32,
    v: F32,
    z: F32,
    sigma: float,
    adc_lo: F32,
    adc_hi: F32,
    levels: float,
    exact: bool,
    row_of: Any,
    raw: F32,
    dx: F32,
) -> None:  # pragma: no cover - compiled; pinned against the numpy path in tests
    """After the GEMMs: y = Wx + σ·sqrt(v)·z, each tile's ADC, summed into matrix rows (raw, dx += D x).

    Same float32 operations in the same order as ``TileGroup.read_into`` and ``adc_``; rows
    ``row_of[kk, i] < 0`` (padding) are dropped.
    """
    k, t, nb = v.shape
    sg = np.float32(sigma)
    lv = np.float32(levels)
    zero = np.float32(0.0)
    for kk in range(k):
        lo = adc_lo[kk]
        step, inv = _adc_grid(lo, adc_hi[kk], levels)
        for i in range(t):
            row = row_of[kk, i]
            if row < 0:
                continue
            for b in range(nb):
                val = y[kk, i, b]
                if sigma > 0.0:
                    val = np.sqrt(v[kk, i, b]) * z[kk, i, b] * sg + val
                if levels > 0.0:
                    c = np.float32(np.rint((val - lo) * inv))
                    c = min(max(c, zero), lv)
                    val = c * step + lo
                raw[row, b] += val
                if exact:
                    dx[row, b] += y[kk, t + i, b]


def _variances4(
    row: F32, ut: F32, b0: int, b1: int, b2: int, b3: int, s_from_w: bool, g0: float
) -> Any:  # pragma: no cover - compiled with fastmath: v only scales the noise
    """S_i · u_b for four columns b of one tile row, in one pass over the row (its loads and, from
    a W row, (g0 + W)² + g0² shared by the four). ``ut`` (B, t) holds u = x̂∘x̂ transposed."""
    a0 = np.float32(0.0)
    a1 = np.float32(0.0)
    a2 = np.float32(0.0)
    a3 = np.float32(0.0)
    u0, u1, u2, u3 = ut[b0], ut[b1], ut[b2], ut[b3]
    g = np.float32(g0)
    gg = g * g
    if s_from_w:
        for j in range(row.shape[0]):
            gw = g + row[j]
            sv = gw * gw + gg
            a0 += sv * u0[j]
            a1 += sv * u1[j]
            a2 += sv * u2[j]
            a3 += sv * u3[j]
    else:
        for j in range(row.shape[0]):
            sv = row[j]
            a0 += sv * u0[j]
            a1 += sv * u1[j]
            a2 += sv * u2[j]
            a3 += sv * u3[j]
    return a0, a1, a2, a3


def _variance1(row: F32, u: F32, s_from_w: bool, g0: float) -> Any:  # pragma: no cover - compiled
    """S_i · u_b for one column b (the common case: one output of the row near a boundary)."""
    a = np.float32(0.0)
    g = np.float32(g0)
    gg = g * g
    if s_from_w:
        for j in range(row.shape[0]):
            gw = g + row[j]
            a += (gw * gw + gg) * u[j]
    else:
        for j in range(row.shape[0]):
            a += row[j] * u[j]
    return a


def _gather_t(xs: F32, cols: Any, levels: float, x: F32, ut: F32) -> None:  # pragma: no cover - compiled
    """:func:`_gather` for the bounded pass: x (k, t, B) as there, u = x∘x transposed, ut (k, B, t).

    Tile rows go 16 at a time so that the transposed stores fill whole cache lines.
    """
    k, t, nb = x.shape
    n = xs.shape[0]
    lv = np.float32(levels)
    zero = np.float32(0.0)
    for kk in range(k):
        for i0 in range(0, t, 16):
            i1 = min(i0 + 16, t)
            for i in range(i0, i1):
                c = cols[kk, i]
                if c >= n:
                    for b in range(nb):
                        x[kk, i, b] = zero
                    continue
                for b in range(nb):
                    v = xs[c, b]
                    if levels > 0.0:  # as converters.dac: rint(x·levels)/levels
                        v = np.float32(np.rint(v * lv)) / lv
                    x[kk, i, b] = v
            for b in range(nb):
                for i in range(i0, i1):
                    v = x[kk, i, b]
                    ut[kk, b, i] = v * v


def _u_factors(ut: F32, out: F32) -> None:  # pragma: no cover - compiled (fastmath: bounds only)
    """out[0, b] ← sqrt(‖u_b‖₂), out[1, b] ← sqrt(Σ u_b) for one tile's u (B, t), with slack 1.001."""
    for b in range(ut.shape[0]):
        ss = np.float32(0.0)
        sm = np.float32(0.0)
        for j in range(ut.shape[1]):
            u = ut[b, j]
            ss += u * u
            sm += u
        out[0, b] = np.sqrt(np.sqrt(ss) * np.float32(1.001))
        out[1, b] = np.sqrt(sm * np.float32(1.001))


def _lower_factors(x: F32, s_from_w: bool, g0: float, out: F32) -> None:  # pragma: no cover - compiled
    """Per column b of one tile's inputs x (t, B): the factors of a lower bound of v = S_i·(x∘x).

    S_ij = a² + b² with a = g0 + g⁺ ≥ 0, b = g0 + g⁻ ≥ 0 and W = a − b. For every G⁻ at Gmin
    (``s_from_w``) v = Σ (g0 + W_ij)² x_j² + g0² Σ x² ≥ (g0 Σx + (Wx)_i)²/n_b + g0² Σ x²; else
    a² + b² ≥ ½(a + b)² ≥ ½(2 g0 + |W_ij|)² gives v ≥ ½(2 g0 Σ|x| + |(Wx)_i|)²/n_b (Cauchy–
    Schwarz over the n_b nonzero inputs). (Wx)_i is the GEMM's float32 value, off by at most
    ≈ t·2⁻²⁴·Σ|x| (|W| ≤ 1), which ``out[3]`` takes off first. The bound is then
    ``(max(|y + out[0]| − out[3], 0) + out[1])² · out[2] + out[4]``.
    """
    t, nb = x.shape
    g = np.float32(g0)
    zero = np.float32(0.0)
    sums = np.zeros((4, nb), dtype=np.float32)  # Σx, Σ|x|, Σx² and the nonzero count
    for i in range(t):  # row by row: the column sums vectorise
        for b in range(nb):
            v = x[i, b]
            sums[0, b] += v
            sums[1, b] += abs(v)
            sums[2, b] += v * v
            sums[3, b] += np.float32(1.0) if v != zero else zero
    for b in range(nb):
        inv = np.float32(0.999) / max(sums[3, b], np.float32(1.0))  # 0.999: slack for float32 rounding
        out[3, b] = np.float32(1e-6) * np.float32(t) * sums[1, b]
        if s_from_w:
            out[0, b] = g * sums[0, b]
            out[1, b] = zero
            out[2, b] = inv
            out[4, b] = np.float32(0.999) * g * g * sums[2, b]
        else:
            out[0, b] = zero
            out[1, b] = np.float32(2.0) * g * sums[1, b]
            out[2, b] = np.float32(0.5) * inv
            out[4, b] = zero


def _finish_bounded(
    y: F32,
    z: F32,
    x: F32,
    ut: F32,
    src: F32,
    s_from_w: bool,
    g0: float,
    s_bound: F32,
    sigma: float,
    adc_lo: F32,
    adc_hi: F32,
    levels: float,
    exact: bool,
    row_of: Any,
    raw: F32,
    dx: F32,
) -> int:  # pragma: no cover - compiled; pinned against the dense pass in tests
    """:func:`_finish` without the S (x̂∘x̂) GEMM: each output's variance only where it can matter.

    The noise σ·sqrt(v)·z moves an output's ADC code only if it carries the noiseless value Wx
    across the rounding boundary on the side z points to. With v <= min(‖S_i‖₂‖u‖₂,
    max_j S_ij·Σu) (Cauchy–Schwarz and Hölder, u = x̂∘x̂), an output whose bound cannot reach
    that boundary keeps the code of Wx — exactly the code the noisy value gets — and needs no
    variance. A lower bound of v from the same GEMM's Wx (:func:`_lower_factors`) settles most
    of the rest: if even it carries the value past that boundary, and the upper bound cannot
    reach the next one, the code moves by exactly one step toward z. Only outputs between the
    two get v = S_i·u (dot products, four columns per pass over the row) and the dense pass's
    arithmetic. So the result is the dense pass's, draw for draw, with the variance computed
    for ≈ 1 output in 25 (TaOx-HfOy at 8 bits) instead of all. ``x`` (k, t, B) holds the tiles'
    inputs and ``ut`` (k, B, t) u transposed (:func:`gather_t`); ``s_bound`` (k, 2, t) holds
    sqrt(‖S_i‖₂) and sqrt(max_j S_ij) (:func:`s_bounds`). Returns how many outputs needed
    their variance.
    """
    k, t, nb = z.shape
    sg = np.float32(sigma)
    lv = np.float32(levels)
    zero = np.float32(0.0)
    half = np.float32(0.5)
    margin = np.float32(1e-3)  # code units: covers float32 rounding of (Wx + noise − lo)/step
    one = np.float32(1.0)
    uf = np.empty((2, nb), dtype=np.float32)
    lf = np.empty((5, nb), dtype=np.float32)
    slack = np.empty(nb, dtype=np.float32)
    out = np.empty(nb, dtype=np.float32)
    flagged = np.empty(nb + 3, dtype=np.int64)
    count = 0
    for kk in range(k):
        lo = adc_lo[kk]
        step, inv = _adc_grid(lo, adc_hi[kk], levels)
        scale = sg * inv
        _u_factors(ut[kk], uf)
        _lower_factors(x[kk], s_from_w, g0, lf)
        for i in range(t):
            row = row_of[kk, i]
            if row < 0:
                continue
            rn, rm = s_bound[kk, 0, i], s_bound[kk, 1, i]
            for b in range(nb):  # branch-free (ternaries, not min/max: those do not vectorise)
                yb = y[kk, i, b]
                c0 = (yb - lo) * inv
                c = np.float32(np.rint(c0))
                zb = z[kk, i, b]
                az = abs(zb)
                toward = c - c0 if zb >= zero else c0 - c
                gap = half + toward  # code units from c0 to the boundary on z's side
                cs, hs = rn * uf[0, b], rm * uf[1, b]
                reach = scale * (cs if cs < hs else hs) * az
                a = abs(yb + lf[0, b]) - lf[3, b]
                a = (a if a > zero else zero) + lf[1, b]
                least = scale * np.sqrt(a * a * lf[2, b] + lf[4, b]) * az
                stays = reach + margin < gap
                # One boundary crossed for sure, not two: the code moves one step toward z.
                steps = (not stays) & (least > gap + margin) & (reach + margin < gap + one)
                move = one if zb >= zero else -one
                settled = stays | steps
                slack[b] = one if settled else -one
                c = c + move if steps else c
                c = zero if zero > c else c  # min(max(c, 0), levels), as the dense pass
                c = lv if lv < c else c
                out[b] = c * step + lo
            nf = 0
            for b in range(nb):  # the outputs left near a boundary, in column order
                if slack[b] <= zero:
                    flagged[nf] = b
                    nf += 1
            if nf:
                count += nf
                for q in range(nf, nf + 3):
                    flagged[q] = flagged[nf - 1]  # pad the last group of four
                for q in range(0, nf, 4):
                    if nf - q == 1:  # a pass for one column reads a quarter of the u rows
                        vs = (_variance1(src[kk, i], ut[kk, flagged[q]], s_from_w, g0), zero, zero, zero)
                    else:
                        vs = _variances4(src[kk, i], ut[kk], flagged[q], flagged[q + 1], flagged[q + 2],
                                         flagged[q + 3], s_from_w, g0)  # fmt: skip
                    for r in range(min(4, nf - q)):
                        b = flagged[q + r]
                        val = np.sqrt(vs[r]) * z[kk, i, b] * sg + y[kk, i, b]
                        c = np.float32(np.rint((val - lo) * inv))
                        out[b] = min(max(c, zero), lv) * step + lo
            for b in range(nb):
                raw[row, b] += out[b]
            if exact:
                for b in range(nb):
                    dx[row, b] += y[kk, t + i, b]
    return count


def _s_bounds(src: F32, s_from_w: bool, g0: float, out: F32) -> None:  # pragma: no cover - compiled
    """out[kk, 0, i] ← sqrt(‖S_i‖₂), out[kk, 1, i] ← sqrt(max_j S_ij): the bound factors of S."""
    k, t = out.shape[0], out.shape[2]
    g = np.float64(g0)
    for kk in range(k):
        for i in range(t):
            row = src[kk, i]
            ss = 0.0
            mx = 0.0
            for j in range(row.shape[0]):
                s = np.float64(row[j])
                if s_from_w:
                    s = (g + s) * (g + s) + g * g
                ss += s * s
                mx = max(mx, s)
            out[kk, 0, i] = np.float32(np.sqrt(np.sqrt(ss) * 1.001))
            out[kk, 1, i] = np.float32(np.sqrt(mx * 1.001))


if _numba is not None:
    # reassoc lets the reductions vectorise; nsz/contract allow FMA. No finite-math assumptions.
    _flags = {"reassoc", "nsz", "contract"}
    # The single-vector reads' shared pieces, compiled with their flags (so inlining changes nothing).
    _adc_grid = _numba.njit(fastmath=_flags, nogil=True, cache=True)(_adc_grid)
    _noisy_adc = _numba.njit(fastmath=_flags, nogil=True, cache=True)(_noisy_adc)
    _read_one_unsigned = _numba.njit(fastmath=_flags, boundscheck=False, nogil=True, cache=True)(
        _read_one_unsigned
    )
    read_one = _numba.njit(fastmath=_flags, boundscheck=False, nogil=True, cache=True)(_read_one)
    # The batched passes keep numpy's rounding exactly (no fastmath): the same seed gives the same numbers.
    gather = _numba.njit(boundscheck=False, nogil=True, cache=True)(_gather)
    finish = _numba.njit(boundscheck=False, nogil=True, cache=True)(_finish)
    # The variance dot products may reassociate (v only scales the noise); the rest keeps numpy's rounding.
    _variances4 = _numba.njit(fastmath=_flags, boundscheck=False, nogil=True, cache=True)(_variances4)
    _variance1 = _numba.njit(fastmath=_flags, boundscheck=False, nogil=True, cache=True)(_variance1)
    _u_factors = _numba.njit(fastmath=_flags, boundscheck=False, nogil=True, cache=True)(_u_factors)
    gather_t = _numba.njit(boundscheck=False, nogil=True, cache=True)(_gather_t)
    _lower_factors = _numba.njit(boundscheck=False, nogil=True, cache=True)(_lower_factors)
    finish_bounded = _numba.njit(boundscheck=False, nogil=True, cache=True)(_finish_bounded)
    s_bounds = _numba.njit(boundscheck=False, nogil=True, cache=True)(_s_bounds)
else:
    read_one, gather, finish = _read_one, _gather, _finish
    finish_bounded, s_bounds, gather_t = _finish_bounded, _s_bounds, _gather_t
