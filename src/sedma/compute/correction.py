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


def _row_starts(m: int, width: int | None) -> npt.NDArray[np.intp]:
    """Indices that start a new image row (no difference links them to the previous output)."""
    if width is None or width >= m:
        return np.empty(0, dtype=np.intp)
    return np.arange(width, m, width)


def banded_system(m: int, lam: float, width: int | None = None) -> npt.NDArray[np.float64]:
    """I + λLᵀL in the upper banded form of ``solveh_banded``: row 0 super-diagonal, row 1 diagonal.

    With ``width`` (row-major images of that width) L has no difference across a row wrap: the
    super-diagonal is 0 there and both ends lose one neighbour, so the system stays tridiagonal.
    """
    starts = _row_starts(m, width)
    degree = np.full(m, 2.0)
    degree[[0, -1]] = 1.0
    degree[starts] -= 1.0
    degree[starts - 1] -= 1.0
    ab = np.empty((2, m))
    ab[0, 0] = 0.0
    ab[0, 1:] = -lam
    ab[0, starts] = 0.0
    ab[1, :] = 1.0 + lam * degree
    if m == 1:
        ab[1, 0] = 1.0
    return ab


def smooth(p: Array, lam: float, width: int | None = None) -> npt.NDArray[np.float64]:
    """y* = (I + λLᵀL)⁻¹ p (Eq. 5) for p of shape (m,) or (m, B); λ ≤ 0 returns p.

    Solved in float64 (the condition number grows like 1 + 4λ); ``width`` selects the row-aware
    L of :func:`banded_system`.
    """
    if not np.isfinite(lam) or lam < 0:
        raise InputError(f"lambda must be a finite number >= 0, got {lam}")
    arr = np.asarray(p, dtype=np.float64)
    if lam == 0.0 or arr.shape[0] < 2:
        return arr.copy()
    ab = banded_system(arr.shape[0], lam, width)
    out: npt.NDArray[np.float64] = solveh_banded(ab, arr, check_finite=False)
    return out


def difference_matrix(m: int, width: int | None = None) -> npt.NDArray[np.float64]:
    """The dense first-difference matrix L, without rows across image-row wraps (tests only)."""
    ell = np.eye(m - 1, m, k=1) - np.eye(m - 1, m)
    out: npt.NDArray[np.float64] = np.delete(ell, _row_starts(m, width) - 1, axis=0)
    return out


def smooth_dense(p: Array, lam: float, width: int | None = None) -> npt.NDArray[np.float64]:
    """Eq. 5 by a dense solve, O(m³): the reference the banded solve is tested against."""
    m = np.asarray(p).shape[0]
    ell = difference_matrix(m, width)
    out: npt.NDArray[np.float64] = np.linalg.solve(np.eye(m) + lam * ell.T @ ell, np.asarray(p, float))
    return out


def trace_inverse(m: int, lams: npt.NDArray[np.float64], width: int | None = None) -> npt.NDArray[np.float64]:
    """tr((I + λLᵀL)⁻¹) for each λ, from the closed-form eigenvalues of LᵀL.

    Row-aware L is block diagonal: one path graph per image row (the last one possibly shorter).
    """
    w = m if width is None or width >= m else width
    sizes = [w] * (m // w) + ([m % w] if m % w else [])
    out = np.zeros(np.asarray(lams).shape)
    for size, count in zip(*np.unique(sizes, return_counts=True), strict=True):
        mu = 2.0 - 2.0 * np.cos(np.pi * np.arange(size) / size)
        out += count * (1.0 / (1.0 + np.outer(lams, mu))).sum(axis=1)
    return out


def sure_risk(
    p: Array, noise_var: float, lams: npt.NDArray[np.float64], width: int | None = None
) -> npt.NDArray[np.float64]:
    """Stein's unbiased risk of y*(λ) per λ: ‖y* − p‖² + 2σ²·B·tr(H) − m·B·σ² (white noise σ²)."""
    arr = np.asarray(p, dtype=np.float64).reshape(np.asarray(p).shape[0], -1)
    m, b = arr.shape
    tr = trace_inverse(m, lams, width)
    fit = np.array([float(np.sum((smooth(arr, float(lam), width) - arr) ** 2)) for lam in lams])
    out: npt.NDArray[np.float64] = fit + 2.0 * noise_var * b * tr - m * b * noise_var
    return out
