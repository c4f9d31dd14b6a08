"""Standard normal draws for the read hot path: Box–Muller over float32 uniforms, buffers reused.

numpy's float32 ziggurat costs ≈ 4× a float32 uniform here; per-read noise needs k·t·B normals
per read (one per tile column output) and the fast x̃ mode m·B more, so the draw dominated
batched reads. Box–Muller is exact in distribution: from u₁, u₂ uniform, r = sqrt(−2 ln u₁) and
θ = 2π u₂ give two independent N(0, 1), r cos θ and r sin θ. The uniforms are numpy's 24-bit
float32 ones (k·2⁻²⁴), so u₁ = 1 − u ∈ (0, 1] and |z| ≤ sqrt(−2 ln 2⁻²⁴) ≈ 5.77: the tails beyond
5.77σ (probability 8e-9) are cut, far below anything a test or a relative error can see.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
_TWO_PI = np.float32(2.0 * np.pi)


class NormalSource:
    """N(0, 1) float32 draws from one generator, into reused scratch space (not thread-safe)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._u = np.empty(0, dtype=np.float32)
        self._z = np.empty(0, dtype=np.float32)

    def _space(self, half: int) -> tuple[F32, F32]:
        if self._u.size < 2 * half:
            self._u = np.empty(2 * half, dtype=np.float32)
            self._z = np.empty(2 * half, dtype=np.float32)
        return self._u[: 2 * half], self._z[: 2 * half]

    def normal(self, shape: tuple[int, ...]) -> F32:
        """An array of ``shape`` standard normals; a view into scratch valid until the next call."""
        size = math.prod(shape)
        half = (size + 1) // 2
        u, z = self._space(half)
        self.rng.random(dtype=np.float32, out=u)
        r, theta = u[:half], u[half:]
        np.subtract(np.float32(1.0), r, out=r)
        np.log(r, out=r)
        r *= np.float32(-2.0)
        np.sqrt(r, out=r)
        theta *= _TWO_PI
        np.cos(theta, out=z[:half])
        np.sin(theta, out=z[half:])
        z[:half] *= r
        z[half:] *= r
        return z[:size].reshape(shape)
