"""Closed-loop write-and-verify with the NeuroSim nonlinear pulse model."""

from __future__ import annotations

import numpy as np
import pytest

from sedma.compute import kernels
from sedma.compute.devices import get_device, with_overrides
from sedma.compute.writeverify import PulseCurve, VerifyConfig, _pulse, program_cells


def _targets(n: int = 20_000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(n).astype(np.float32)


def test_continuous_ideal_device_is_exact() -> None:
    t = _targets()
    g, stats = program_cells(t, get_device("ideal"), VerifyConfig(), np.random.default_rng(0))
    np.testing.assert_array_equal(g, t)
    assert stats.pulses == 0


def test_closed_loop_lands_within_tolerance_and_records_iterations() -> None:
    t = _targets()
    cfg = VerifyConfig(tolerance=0.02)
    g, stats = program_cells(t, get_device("EpiRAM"), cfg, np.random.default_rng(1))
    within = np.abs(g - t) <= cfg.tolerance
    assert within.mean() > 0.98
    assert 1 < stats.iterations <= 21 and stats.pulses > t.size and stats.verify_reads >= t.size
    assert stats.unconverged == int((~within).sum())
    assert len(stats.max_pulses_per_iteration) == stats.iterations


@pytest.mark.parametrize("material", ["Ag-aSi", "AlOx-HfO2", "EpiRAM", "TaOx-HfOy"])
def test_verify_iterations_lower_the_error_of_an_open_loop_write(material: str) -> None:
    t, dev = _targets(), get_device(material)
    once, _ = program_cells(t, dev, VerifyConfig(max_iterations=1), np.random.default_rng(2))
    loop, _ = program_cells(t, dev, VerifyConfig(max_iterations=21), np.random.default_rng(2))
    assert np.abs(loop - t).mean() < 0.6 * np.abs(once - t).mean()


def test_cycle_to_cycle_noise_grows_with_the_square_root_of_pulses() -> None:
    dev = with_overrides(get_device("TaOx-HfOy"), sigma_d2d=0.0, sigma_c2c=0.01)
    curve, n = PulseCurve(dev), 40_000
    stds = []
    for target in (0.05, 0.45):
        g0 = np.zeros(n, np.float32)
        tgt, d = np.full(n, target, np.float32), np.ones(n, np.float32)
        noisy, k = _pulse(curve, g0, tgt, d, dev.sigma_c2c, np.random.default_rng(3), True)
        clean, _ = _pulse(curve, g0, tgt, d, 0.0, np.random.default_rng(3), True)
        stds.append((float(np.std(noisy - clean)), float(k[0])))
    (s1, k1), (s2, k2) = stds
    assert k2 > 4 * k1
    assert s2 / s1 == pytest.approx(np.sqrt(k2 / k1), rel=0.1)


def test_nonlinear_curve_takes_bigger_steps_first_and_linear_curve_is_even() -> None:
    start, one = np.array([0.0, 0.8], np.float32), np.ones(2, np.float32)
    k, up = np.ones(2, np.float32), np.zeros(2, np.float32)
    bent = PulseCurve(get_device("Ag-aSi"))
    steps = bent.apply(start, one, k, up, bent.branch(up, bent.c)) - start
    assert steps[0] > 2 * steps[1] > 0
    flat = PulseCurve(with_overrides(get_device("EpiRAM"), nl_ltp=0.0, nl_ltd=0.0))
    steps = flat.apply(start, one, k, up, flat.branch(up, flat.c)) - start
    np.testing.assert_allclose(steps, 1 / 64, rtol=2e-3)


def test_bad_verify_config() -> None:
    from sedma.errors import InputError

    for bad in (VerifyConfig(tolerance=0.0), VerifyConfig(max_iterations=0), VerifyConfig(patience=0)):
        with pytest.raises(InputError):
            bad.validate()


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed: numpy verify step only")
@pytest.mark.parametrize("material", ["TaOx-HfOy", "EpiRAM"])
def test_compiled_verify_step_gives_the_numpy_step_results(
    material: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = np.random.default_rng(4).random(20_000, dtype=np.float32)
    runs = []
    for compiled in (True, False):
        monkeypatch.setattr(kernels, "AVAILABLE", compiled)
        out, stats = program_cells(target, get_device(material), VerifyConfig(), np.random.default_rng(9))
        runs.append((out, stats))
    (fast, s1), (ref, s2) = runs
    np.testing.assert_array_equal(fast, ref)
    assert (s1.iterations, s1.pulses, s1.verify_reads, s1.unconverged) == (
        s2.iterations, s2.pulses, s2.verify_reads, s2.unconverged
    )  # fmt: skip
    assert s1.max_pulses_per_iteration == s2.max_pulses_per_iteration
