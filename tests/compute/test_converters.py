"""MELISO+ scaling, the DAC and the per-tile ADC."""

from __future__ import annotations

import numpy as np
import pytest

from sedma.compute.converters import adc, dac, scale
from sedma.errors import InputError


def test_minmax_and_absmax_scaling_round_trip() -> None:
    v = np.array([[-2.0, 0.0], [1.0, 6.0]])
    s, sc = scale(v, mode="minmax")
    assert s.min() == 0.0 and s.max() == 1.0
    np.testing.assert_allclose(sc.lo + sc.span * s, v, rtol=1e-6)
    s, sc = scale(v, mode="absmax", axis=0)
    np.testing.assert_allclose(s, [[-1.0, 0.0], [0.5, 1.0]])
    flat, sc = scale(np.full((3, 1), 4.0), mode="minmax", axis=0)
    assert not flat.any() and sc.span.ravel()[0] == 1.0
    with pytest.raises(InputError, match="scaling must be one of"):
        scale(v, mode="zscore")


def test_dac_rounds_to_its_levels() -> None:
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    q = dac(x, 3, signed=False)
    assert len(np.unique(q)) == 8 and np.abs(q - x).max() <= 0.5 / 7 + 1e-7
    assert np.array_equal(dac(x, 0, signed=False), x)
    s = dac(np.linspace(-1, 1, 101, dtype=np.float32), 3, signed=True)
    assert len(np.unique(s)) == 7


def test_adc_quantises_each_tile_over_its_own_range() -> None:
    y = np.stack([np.linspace(0, 10, 50), np.linspace(-1, 1, 50)]).astype(np.float32)[:, :, None]
    lo, hi = np.array([0.0, -1.0], np.float32), np.array([10.0, 1.0], np.float32)
    q = adc(y.copy(), lo, hi, 4)
    assert len(np.unique(q[0])) <= 16 and len(np.unique(q[1])) <= 16
    np.testing.assert_allclose(q[0], y[0], atol=10 / 15 / 2 + 1e-5)
    np.testing.assert_allclose(q[1], y[1], atol=2 / 15 / 2 + 1e-6)
    zero = adc(np.zeros((1, 3, 1), np.float32), np.zeros(1, np.float32), np.zeros(1, np.float32), 8)
    assert not zero.any()
