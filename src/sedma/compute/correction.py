"""MELISO+ error correction: the regularised least squares of Eq. 5, solved as a banded system.

y* = (I + λ LᵀL)⁻¹ p with L the (m−1) × m first-difference matrix. LᵀL is the path-graph
Laplacian (tridiagonal: 1, 2, …, 2, 1 on the diagonal, −1 beside it), so I + λLᵀL is symmetric
positive definite and tridiagonal: ``scipy.linalg.solveh_banded`` solves it in O(m) per column,
batched over all columns at once. Its eigenvalues are 1 + λ(2 − 2cos(πk/m)), k = 0…m−1, which
gives tr((I + λLᵀL)⁻¹) in closed form for the SURE criterion used to choose λ (:mod:`.lam`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.linalg import solveh_banded

from sedma.errors import InputError

MODES = ("none", "first-order", "full")
Array = npt.NDArray[np.floating]


def banded_system(m: int, lam: float) -> npt.NDArray[np.float64]:
    """I + λLᵀL in the upper banded form of ``solveh_banded``: row 0 super-diagonal, row 1 diagonal."""
    ab = np.empty((2, m))
    ab[0, 0] = 0.0
    ab[0, 1:] = -lam
    ab[1, :] = 1.0 + 2.0 * lam
    ab[1, 0] = ab[1, -1] = 1.0 + lam
    if m == 1:
        ab[1, 0] = 1.0
    return ab


def smooth(p: Array, lam: float) -> npt.NDArray[np.float64]:
    """y* = (I + λLᵀL)⁻¹ p (Eq. 5) for p of shape (m,) or (m, B); λ ≤ 0 returns p."""
    if not np.isfinite(lam) or lam < 0:
        raise InputError(f"lambda must be a finite number >= 0, got {lam}")
    arr = np.asarray(p, dtype=np.float64)
    if lam == 0.0 or arr.shape[0] < 2:
        return arr.copy()
    out: npt.NDArray[np.float64] = solveh_banded(banded_system(arr.shape[0], lam), arr, check_finite=False)
    return out


def difference_matrix(m: int) -> npt.NDArray[np.float64]:
    """The dense (m−1) × m first-difference matrix L (tests and documentation only)."""
    return np.eye(m - 1, m, k=1) - np.eye(m - 1, m)


def smooth_dense(p: Array, lam: float) -> npt.NDArray[np.float64]:
    """Eq. 5 by a dense solve, O(m³): the reference the banded solve is tested against."""
    m = np.asarray(p).shape[0]
    ell = difference_matrix(m)
    out: npt.NDArray[np.float64] = np.linalg.solve(np.eye(m) + lam * ell.T @ ell, np.asarray(p, float))
    return out


def trace_inverse(m: int, lams: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """tr((I + λLᵀL)⁻¹) for each λ, from the closed-form eigenvalues of LᵀL."""
    mu = 2.0 - 2.0 * np.cos(np.pi * np.arange(m) / m)
    out: npt.NDArray[np.float64] = (1.0 / (1.0 + np.outer(lams, mu))).sum(axis=1)
    return out


def sure_risk(p: Array, noise_var: float, lams: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Stein's unbiased risk of y*(λ) per λ: ‖y* − p‖² + 2σ²·B·tr(H) − m·B·σ² (white noise σ²)."""
    arr = np.asarray(p, dtype=np.float64).reshape(np.asarray(p).shape[0], -1)
    m, b = arr.shape
    tr = trace_inverse(m, lams)
    fit = np.array([float(np.sum((smooth(arr, float(lam)) - arr) ** 2)) for lam in lams])
    out: npt.NDArray[np.float64] = fit + 2.0 * noise_var * b * tr - m * b * noise_var
    return out
