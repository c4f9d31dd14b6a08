"""Standard normal draws for the read hot path: Box–Muller over float32 uniforms, buffers reused.

Per-read noise needs k·t·B normals per read (one per tile column output) and the fast x̃ mode m·B
more, so the draw weighs on batched reads. Box–Muller is exact in distribution: from u₁, u₂
uniform, r = sqrt(−2 ln u₁) and θ = 2π u₂ give two independent N(0, 1), r cos θ and r sin θ;
numpy's float32 log, sqrt, sin and cos are vectorised. The uniforms are 24-bit (k·2⁻²⁴), so
u₁ = 1 − u ∈ (0, 1] and |z| ≤ sqrt(−2 ln 2⁻²⁴) ≈ 5.77: the tails beyond 5.77σ (probability
8e-9) are cut, far below anything a test or a relative error can see.

Half the cost of numpy's ``Generator.random(dtype=float32)`` is its per-value call chain, so
with numba (:data:`COMPILED`) the uniforms come from xoshiro256++ (Blackman & Vigna, 2018; two
24-bit uniforms per 64-bit step, already as 1 − u and 2π u), its four words spread by SplitMix64
from one 64-bit seed that each call takes from the caller's generator: a seed still reproduces
every draw wherever the generator's state travels (thread, Ray actor). Without numba, or with
``SEDMA_COMPUTE_KERNEL=numpy``, numpy's uniforms serve (another stream, the same law).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from sedma.compute.kernels import _numba

F32 = npt.NDArray[np.float32]
_TWO_PI = np.float32(2.0 * np.pi)
COMPILED = _numba is not None
_U64 = np.uint64
_GOLDEN, _MIX1, _MIX2 = _U64(0x9E3779B97F4A7C15), _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
_U24 = np.float32(1.0 / (1 << 24))


def _rotl(x: Any, k: int) -> Any:  # pragma: no cover - compiled
    return (x << _U64(k)) | (x >> _U64(64 - k))


def splitmix64(seed: Any, i: Any) -> Any:
    """The i-th SplitMix64 output after ``seed``: spreads one seed over xoshiro's four words.

    Plain numpy uint64 arithmetic, so ``i`` may be an array (it wraps mod 2⁶⁴ as the compiled
    copy :func:`_splitmix` does): the x̃ calibration calls of the numpy path come from here.
    """
    z = seed + _GOLDEN * _U64(i)
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    return z ^ (z >> _U64(31))


_splitmix = splitmix64  # the compiled copy below when numba is present


def _uniforms(r: F32, theta: F32, ri: Any, ti: Any, seed: Any) -> None:  # pragma: no cover - compiled
    """r ← 1 − u ∈ (0, 1] and θ ← 2π u′ (24-bit u, u′), one xoshiro256++ step per pair.

    ``ri``/``ti`` are int32 views of r/θ: the sequential generator writes integer codes, then a
    vectorised pass converts them in place.
    """
    s0 = _splitmix(seed, 1)
    s1 = _splitmix(seed, 2)
    s2 = _splitmix(seed, 3)
    s3 = _splitmix(seed, 4)
    for j in range(r.shape[0]):
        bits = _rotl(s0 + s3, 23) + s0
        t = s1 << _U64(17)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 45)
        ri[j] = np.int32(bits >> _U64(40))
        ti[j] = np.int32((bits >> _U64(16)) & _U64(0xFFFFFF))
    one, step = np.float32(1.0), np.float32(2.0 * np.pi) * _U24
    for j in range(r.shape[0]):
        r[j] = one - np.float32(ri[j]) * _U24
        theta[j] = np.float32(ti[j]) * step


if _numba is not None:
    _rotl = _numba.njit(nogil=True, cache=True)(_rotl)
    _splitmix = _numba.njit(nogil=True, cache=True)(splitmix64)
    _uniforms = _numba.njit(boundscheck=False, nogil=True, cache=True)(_uniforms)


class NormalSource:
    """N(0, 1) float32 draws from one generator, into reused scratch space (not thread-safe)."""

    def __init__(self, rng: np.random.Generator, *, compiled: bool | None = None):
        self.rng = rng
        self.compiled = COMPILED if compiled is None else compiled
        self._u = np.empty(0, dtype=np.float32)
        self._z = np.empty(0, dtype=np.float32)

    def _space(self, half: int) -> tuple[F32, F32]:
        if self._u.size < 2 * half:
            self._u = np.empty(2 * half, dtype=np.float32)
            self._z = np.empty(half, dtype=np.float32)
        return self._u[: 2 * half], self._z[:half]

    def _fill(self, r: F32, theta: F32) -> None:
        """r ← 1 − u ∈ (0, 1], θ ← 2π u′ with u, u′ uniform on 24-bit grids."""
        if self.compiled:
            seed = _U64(self.rng.bit_generator.random_raw())
            _uniforms(r, theta, r.view(np.int32), theta.view(np.int32), seed)
            return
        self.rng.random(dtype=np.float32, out=r)
        self.rng.random(dtype=np.float32, out=theta)
        np.subtract(np.float32(1.0), r, out=r)
        theta *= _TWO_PI

    def normal(self, shape: tuple[int, ...]) -> F32:
        """An array of ``shape`` standard normals; a view into scratch valid until the next call.

        The pairs are formed in place (r cos θ over r, r sin θ over θ, one half-size temporary),
        so a draw touches 1.5 floats of scratch per normal, not 2: it sits on the read hot path.
        """
        size = math.prod(shape)
        half = (size + 1) // 2
        u, cos = self._space(half)
        r, theta = u[:half], u[half:]
        self._fill(r, theta)
        np.log(r, out=r)
        r *= np.float32(-2.0)
        np.sqrt(r, out=r)
        np.cos(theta, out=cos)
        np.sin(theta, out=theta)
        theta *= r
        r *= cos
        return u[:size].reshape(shape)
