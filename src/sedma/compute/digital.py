"""Compiled host passes of a read: column scaling, the first-order combination and un-scaling.

Around the tile reads, a read is O(m·B + n·B) digital work — min-max scaling of x (MELISO+),
p = raw + D x̂ − x̃ noise (Algorithm 1, line 7) and the exact un-scaling
A x = s_A s_x P + a₀ s_x Σx̂ + s_A x₀ rowsum(Â) + n a₀ x₀ — which numpy spreads over a dozen
passes and temporaries. Each function here is one pass with the same floating-point operations
in the same order as the numpy code in :mod:`sedma.compute.crossbar` and
:mod:`sedma.compute.converters`, so both give the same numbers; :data:`kernels.AVAILABLE`
(numba present, ``SEDMA_COMPUTE_KERNEL`` not ``numpy``) chooses between them per read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sedma.compute.converters import Scale
from sedma.compute.kernels import _numba

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def _minmax_columns(v: F32, xs: F32, lo: F64, span: F64, sums: F64) -> bool:  # pragma: no cover - compiled
    """xs ← (v − lo)/span per column in float32 as ``converters.scale``; lo, span, Σ xs in float64.

    Returns False if v holds a NaN or an infinity: either makes its column's Σ xs NaN (a NaN
    scales to NaN; an infinite value makes the span infinite and (v − lo)·0 NaN).
    """
    n, nb = v.shape
    mn = v[0].copy()
    mx = v[0].copy()
    if nb == 1:  # one vector: keep the running extremes in registers (no store per element)
        lo1, hi1 = mn[0], mx[0]
        for i in range(1, n):
            lo1 = min(lo1, v[i, 0])
            hi1 = max(hi1, v[i, 0])
        mn[0], mx[0] = lo1, hi1
    else:
        for i in range(1, n):
            for b in range(nb):
                mn[b] = min(mn[b], v[i, b])
                mx[b] = max(mx[b], v[i, b])
    lo32 = np.empty(nb, dtype=np.float32)
    inv = np.empty(nb, dtype=np.float32)
    for b in range(nb):
        lo[b] = np.float64(mn[b])
        s = np.float64(mx[b]) - lo[b]
        span[b] = s if s > 0.0 else 1.0  # a constant column scales to zeros; the digital terms carry it
        lo32[b] = np.float32(lo[b])
        inv[b] = np.float32(1.0 / span[b])
        sums[b] = 0.0
    if nb == 1:
        total = 0.0
        for i in range(n):
            val = (v[i, 0] - lo32[0]) * inv[0]
            xs[i, 0] = val
            total += np.float64(val)
        sums[0] = total
    else:
        for i in range(n):
            for b in range(nb):
                val = (v[i, b] - lo32[b]) * inv[b]
                xs[i, b] = val
                sums[b] += np.float64(val)
    for b in range(nb):  # noqa: SIM110 - compiled: a plain loop, no generator
        if not abs(sums[b]) < np.inf:
            return False
    return True


def _first_order(raw: F32, dx: F32, z: F32, sd: F32, live: F32, p: F32) -> None:  # pragma: no cover
    """p ← (raw + D x̂) − (z·sd)·live: Algorithm 1, line 7 with the fast x̃ noise."""
    m, nb = raw.shape
    if nb == 1:  # one vector: a unit-stride loop over rows, which vectorises
        lv = live[0]
        for i in range(m):
            p[i, 0] = (raw[i, 0] + dx[i, 0]) - (z[i, 0] * sd[i]) * lv
        return
    for i in range(m):
        for b in range(nb):
            p[i, b] = (raw[i, b] + dx[i, b]) - (z[i, b] * sd[i]) * live[b]


def _unscale(src: F32, rowsum: F64, gain: F64, c1: F64, c2: F64, out: F64) -> None:  # pragma: no cover
    """out ← src·gain + (rowsum·c1 + c2): s_A s_x P + s_A x₀ rowsum(Â) + (a₀ s_x Σx̂ + n a₀ x₀)."""
    m, nb = src.shape
    if nb == 1:  # one vector: a unit-stride loop over rows, which vectorises
        g, a1, a2 = gain[0], c1[0], c2[0]
        for i in range(m):
            out[i, 0] = np.float64(src[i, 0]) * g + (rowsum[i] * a1 + a2)
        return
    for i in range(m):
        for b in range(nb):
            out[i, b] = np.float64(src[i, b]) * gain[b] + (rowsum[i] * c1[b] + c2[b])


if _numba is not None:
    _jit = _numba.njit(boundscheck=False, nogil=True, cache=True)
    _minmax_columns, _first_order, _unscale = (_jit(f) for f in (_minmax_columns, _first_order, _unscale))


def minmax_columns(v: F32) -> tuple[F32, Scale, F64] | None:
    """Float32 (n, B) min-max scaled per column: (x̂, its Scale with (1, B) lo/span, (1, B) Σx̂);
    None if v holds a NaN or an infinity."""
    nb = v.shape[1]
    xs = np.empty(v.shape, dtype=np.float32)
    lo, span, sums = np.empty((1, nb)), np.empty((1, nb)), np.empty((1, nb))
    if not _minmax_columns(np.ascontiguousarray(v), xs, lo[0], span[0], sums[0]):
        return None
    return xs, Scale(lo=lo, span=span), sums


def first_order(raw: F32, dx: F32, z: F32, sd: F32, live: npt.ArrayLike) -> F32:
    """p = raw + D x̂ − z·sd on live columns (a column of zeros has exact x̃ copies)."""
    p = np.empty(raw.shape, dtype=np.float32)
    _first_order(raw, dx, z, sd.reshape(-1), np.asarray(live, dtype=np.float32).reshape(-1), p)
    return p


def unscale(src: F32, rowsum: F64, gain: F64, c1: F64, c2: F64, out: F64) -> Any:
    """Un-scale float32 (m, B) ``src`` into float64 ``out`` (per-column gain, c1, c2 of shape (B,))."""
    _unscale(src, rowsum, gain, c1, c2, out)
    return out
