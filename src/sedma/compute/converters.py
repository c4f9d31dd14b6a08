"""Scaling and converters: MELISO+ min-max scaling, the input DAC and the per-tile output ADC.

MELISO+ scales A and x to [0, 1] (min-max) and un-scales digitally:
A x = s_A s_x (Â x̂) + a₀ s_x Σx̂ + s_A x₀ rowsum(Â) + n a₀ x₀ with A = a₀ + s_A Â, x = x₀ + s_x x̂,
so only Â x̂ is analog and every other term is exact. ``absmax`` scaling (Â = A / max|A|, in
[−1, 1], zeros stay zeros) is offered for signed weights (neural-network layers).
The DAC rounds inputs to 2^b − 1 uniform levels over their range; each tile's ADC rounds its
column outputs to 2^b − 1 levels over the range the tile can produce for inputs in range,
computed at programming time, so it never clips. ``bits = 0`` means an ideal converter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sedma.errors import InputError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
SCALINGS = ("minmax", "absmax")


@dataclass(frozen=True, slots=True)
class Scale:
    """value = lo + span · scaled; ``lo``/``span`` are scalars (matrix) or per-column (vectors)."""

    lo: F64
    span: F64


def scale(values: npt.NDArray[np.floating], *, mode: str, axis: int | None = None) -> tuple[F32, Scale]:
    """Scale to [0, 1] (minmax) or [−1, 1] (absmax) along ``axis`` (None: the whole array)."""
    if mode not in SCALINGS:
        raise InputError(f"scaling must be one of {SCALINGS}, got {mode!r}")
    # float32 input is scaled in float32 (one rounding, as the float32 result has anyway).
    v = np.asarray(values, dtype=np.float32 if np.asarray(values).dtype == np.float32 else np.float64)
    if mode == "minmax":
        lo = v.min(axis=axis, keepdims=True).astype(np.float64)
        span = v.max(axis=axis, keepdims=True) - lo
    else:
        lo = np.zeros(np.abs(v).max(axis=axis, keepdims=True).shape)
        span = np.abs(v).max(axis=axis, keepdims=True).astype(np.float64)
    # A constant input has no span: scaled values are all 0 and the digital terms carry it.
    span = np.where(span > 0.0, span, 1.0)
    scaled = np.subtract(v, lo.astype(v.dtype), dtype=v.dtype)
    scaled *= (1.0 / span).astype(v.dtype)
    out: F32 = scaled.astype(np.float32, copy=False)
    return out, Scale(lo=lo, span=span)


def dac(x: F32, bits: int, *, signed: bool) -> F32:
    """Quantise scaled inputs to the DAC's levels (``bits = 0``: ideal)."""
    if bits <= 0:
        return x
    levels = np.float32((1 << (bits - 1)) - 1 if signed else (1 << bits) - 1)
    out: F32 = np.rint(x * levels) / levels
    return out


def adc(y: F32, lo: F32, hi: F32, bits: int) -> F32:
    """Round tile outputs (k, t, B) to 2^bits − 1 levels over each tile's [lo, hi] (in place)."""
    if bits <= 0:
        return y
    lo3, hi3 = lo[:, None, None], hi[:, None, None]
    step = (hi3 - lo3) / np.float32((1 << bits) - 1)
    safe = np.where(step > 0.0, step, np.float32(1.0))
    np.clip(y, lo3, hi3, out=y)
    y -= lo3
    y /= safe
    np.rint(y, out=y)
    y *= step
    y += lo3
    return y
