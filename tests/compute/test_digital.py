"""Compiled host passes: the numbers of the numpy code they replace."""

from __future__ import annotations

import numpy as np
import pytest

from sedma.compute import digital, kernels
from sedma.compute.converters import scale
from sedma.compute.crossbar import program
from sedma.errors import InputError

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed: numpy passes only")


def test_minmax_columns_equals_converters_scale_including_a_constant_column() -> None:
    v = np.random.default_rng(0).normal(3.0, 2.0, size=(257, 5)).astype(np.float32)
    v[:, 2] = 1.5  # no span: scales to zeros
    xs, sc, sums = digital.minmax_columns(v)
    ref, ref_sc = scale(v, mode="minmax", axis=0)
    np.testing.assert_array_equal(xs, ref)
    np.testing.assert_array_equal(sc.lo, ref_sc.lo)
    np.testing.assert_array_equal(sc.span, ref_sc.span)
    np.testing.assert_allclose(sums, ref.sum(axis=0, dtype=np.float64)[None, :], rtol=1e-12)
    assert np.all(xs[:, 2] == 0.0)


def test_first_order_and_unscale_equal_their_numpy_expressions() -> None:
    rng = np.random.default_rng(1)
    raw, dx, z = (rng.standard_normal((40, 3)).astype(np.float32) for _ in range(3))
    sd = rng.random((40, 1)).astype(np.float32)
    live = np.array([True, False, True])
    want = raw + dx
    want -= (z * sd) * live
    np.testing.assert_array_equal(digital.first_order(raw, dx, z, sd, live), want)
    rowsum, gain, c1, c2 = rng.random(40), rng.random(3), rng.random(3), rng.random(3)
    offset = rowsum[:, None] * c1[None, :]
    offset += c2[None, :]
    ref = raw * gain[None, :] + offset
    np.testing.assert_array_equal(digital.unscale(raw, rowsum, gain, c1, c2, np.empty((40, 3))), ref)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("batch", [1, 5])
def test_minmax_pass_reports_a_non_finite_value(bad: float, batch: int) -> None:
    v = np.random.default_rng(2).random((40, batch), dtype=np.float32)
    assert digital.minmax_columns(v) is not None
    v[17, batch - 1] = bad
    assert digital.minmax_columns(v) is None


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float32_vectors_with_nan_or_inf_are_refused(bad: float) -> None:
    pm = program(np.random.default_rng(3).random((8, 6)), device="TaOx-HfOy", tile=4)
    for shape in ((6,), (6, 3)):
        x = np.ones(shape, dtype=np.float32)
        x[2] = bad
        with pytest.raises(InputError, match="NaN or Inf"):
            pm.read(x)
