"""Normal draws of the read path: N(0, 1) in moments, KS and tails, reproducible per seed, both paths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sedma.compute import sampling
from sedma.compute.sampling import NormalSource

PATHS = [pytest.param(False, id="numpy")]
if sampling.COMPILED:
    PATHS.append(pytest.param(True, id="compiled"))


def _source(seed: int, compiled: bool) -> NormalSource:
    return NormalSource(np.random.Generator(np.random.SFC64(seed)), compiled=compiled)


@pytest.mark.parametrize("compiled", PATHS)
def test_draws_are_standard_normal_in_moments_ks_and_tails(compiled: bool) -> None:
    z = _source(0, compiled).normal((1000, 1001)).astype(np.float64)  # odd size: the last half-pair too
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1.0) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(z, axis=None)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(z, axis=None)) < 5 * np.sqrt(24 / n)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    for k in (2.0, 3.0, 4.0):
        p = 2 * stats.norm.sf(k)
        assert abs(np.mean(np.abs(z) > k) - p) < 5 * np.sqrt(p / n)
    assert np.abs(z).max() < 5.8  # 24-bit uniforms cut the tails at 5.77 sigma


@pytest.mark.parametrize("compiled", PATHS)
def test_same_seed_same_draws_and_successive_calls_differ(compiled: bool) -> None:
    a, b = _source(7, compiled), _source(7, compiled)
    first = a.normal((3, 5)).copy()
    np.testing.assert_array_equal(first, b.normal((3, 5)))
    second = a.normal((3, 5)).copy()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, b.normal((3, 5)))
    assert not np.array_equal(first, _source(8, compiled).normal((3, 5)))


@pytest.mark.parametrize("compiled", PATHS)
def test_the_two_halves_of_a_draw_are_uncorrelated(compiled: bool) -> None:
    z = _source(3, compiled).normal((2, 200_000)).astype(np.float64)
    # Box–Muller pairs r cos θ and r sin θ; a lag-1 check guards the generator's stream too.
    assert abs(np.corrcoef(z[0], z[1])[0, 1]) < 0.015
    assert abs(np.corrcoef(z[0, :-1], z[0, 1:])[0, 1]) < 0.015
    assert abs(np.corrcoef(z[0] ** 2, z[1] ** 2)[0, 1]) < 0.015


def test_numpy_setting_turns_the_compiled_uniforms_off() -> None:
    import os
    import subprocess
    import sys

    code = "from sedma.compute import sampling; print(sampling.COMPILED)"
    env = os.environ | {"SEDMA_COMPUTE_KERNEL": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
