"""Eq. 5 as a banded solve, and the SURE risk that chooses λ."""

from __future__ import annotations

import numpy as np
import pytest

from sedma.compute.correction import (
    difference_matrix,
    smooth,
    smooth_dense,
    sure_risk,
    trace_inverse,
)
from sedma.errors import InputError


@pytest.mark.parametrize("lam", [1e-12, 1e-3, 0.7, 50.0])
@pytest.mark.parametrize("shape", [(2,), (9,), (33, 4)])
def test_banded_solve_equals_dense_solve(lam: float, shape: tuple[int, ...]) -> None:
    p = np.random.default_rng(0).normal(size=shape)
    np.testing.assert_allclose(smooth(p, lam), smooth_dense(p, lam), rtol=1e-10, atol=1e-12)


def test_zero_lambda_is_identity_and_negative_lambda_is_refused() -> None:
    p = np.arange(5.0)
    np.testing.assert_array_equal(smooth(p, 0.0), p)
    with pytest.raises(InputError, match="lambda"):
        smooth(p, -1.0)


def test_trace_matches_the_dense_inverse() -> None:
    m, lams = 17, np.array([0.0, 0.1, 3.0])
    ell = difference_matrix(m)
    dense = [np.trace(np.linalg.inv(np.eye(m) + lam * ell.T @ ell)) for lam in lams]
    np.testing.assert_allclose(trace_inverse(m, lams), dense, rtol=1e-10)


def test_sure_tracks_the_true_risk_on_a_smooth_signal() -> None:
    rng = np.random.default_rng(1)
    m, b, sigma = 400, 8, 0.3
    f = np.sin(np.linspace(0, 3 * np.pi, m))[:, None] * np.ones((1, b))
    p = f + sigma * rng.normal(size=(m, b))
    lams = np.array([0.0, 1.0, 10.0, 100.0])
    true = np.array([np.sum((smooth(p, lam) - f) ** 2) for lam in lams])
    est = sure_risk(p, sigma**2, lams)
    np.testing.assert_allclose(est, true, rtol=0.15, atol=0.01 * m * b * sigma**2)
    assert np.argmin(est) == np.argmin(true) != 0


@pytest.mark.parametrize("width", [1, 4, 5, 17, 40])
def test_row_aware_banded_solve_and_trace_equal_the_dense_ones(width: int) -> None:
    m, lams = 17, np.array([0.0, 0.1, 3.0])
    p = np.random.default_rng(2).normal(size=(m, 3))
    np.testing.assert_allclose(smooth(p, 0.7, width), smooth_dense(p, 0.7, width), rtol=1e-10, atol=1e-12)
    ell = difference_matrix(m, width)
    assert ell.shape[0] == m - 1 - (m - 1) // width if width < m else m - 1
    dense = [np.trace(np.linalg.inv(np.eye(m) + lam * ell.T @ ell)) for lam in lams]
    np.testing.assert_allclose(trace_inverse(m, lams, width), dense, rtol=1e-10)


def test_row_aware_l_does_not_smooth_across_an_image_row_wrap() -> None:
    p = np.repeat([[0.0], [1.0]], 4, axis=0)  # two image rows of width 4: a step at the wrap
    np.testing.assert_allclose(smooth(p, 100.0, 4), p, atol=1e-12)
    assert np.abs(smooth(p, 100.0) - p).max() > 0.1
