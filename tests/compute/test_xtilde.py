"""MELISO+ x̃ as programmed: the faithful mode rewrites every copy, the fast mode samples its effect."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sedma.compute import kernels
from sedma.compute.crossbar import CrossbarConfig, ProgrammedMatrix, program
from sedma.compute.devices import get_device
from sedma.compute.programming import CAL_CALLS, calibrate_xtilde, xtilde_calls
from sedma.compute.writeverify import VerifyConfig, program_cells

READS = 300  # x̃ columns per mode: one batch of identical columns, each reprogrammed anew


def _direct_m2(name: str, levels: int, calls: int, cells: int, seed: int) -> np.ndarray:
    """E[e²] per level of cells written here by write-and-verify and read once with noise."""
    dev = get_device(name)
    g0 = dev.g_min / dev.span
    level = np.arange(levels + 1, dtype=np.float32) / np.float32(levels)
    rng = np.random.default_rng(seed)
    acc = np.zeros(levels + 1)
    for _ in range(calls):
        g, _ = program_cells(np.tile(level, cells), dev, VerifyConfig(), rng)
        sd = dev.read_noise * np.sqrt((g0 + g) ** 2 + g0**2)
        e = (g - np.tile(level, cells)) + sd * rng.standard_normal(g.size)
        acc += (e.reshape(cells, -1) ** 2).mean(axis=0)
    return acc / calls


@pytest.mark.parametrize("name", ["TaOx-HfOy", "EpiRAM"])
def test_calibrated_m2_table_matches_directly_written_cells_per_level(name: str) -> None:
    table = calibrate_xtilde(get_device(name), VerifyConfig(), 8, False, 11)
    assert table.levels == 255 and table.factors.shape == (CAL_CALLS,)
    direct = _direct_m2(name, 255, calls=32, cells=16, seed=12)
    # Level by level is noisy (a call's early stop is shared by its cells): compare 16-level bins
    # and the whole table; the profile must follow the level, which one pooled σ² cannot.
    binned = lambda v: v.reshape(16, 16).mean(axis=1)  # noqa: E731
    mine, ref = binned(table.m2), binned(direct)
    # Bins near the rails hold small values set by a few outlying cells: part of the tolerance is absolute.
    np.testing.assert_allclose(mine, ref, rtol=0.3, atol=0.1 * float(ref.mean()))
    assert table.m2.mean() == pytest.approx(direct.mean(), rel=0.1)
    assert np.corrcoef(mine, ref)[0, 1] > 0.8
    assert table.m2.max() > 1.5 * table.m2[1:].mean() or table.m2[1:].min() < 0.6 * table.m2[1:].mean()


def _noise(pm: ProgrammedMatrix, x: np.ndarray) -> np.ndarray:
    """Σ_j E_ij e_ij per output and x̃ column: p minus its value with exact x̃ (raw + D x̂)."""
    xb = np.repeat(x[:, None], READS, axis=1)
    xs = xb / np.abs(xb).max(axis=0) if pm.signed_inputs else (xb - xb.min(0)) / np.ptp(xb, axis=0)
    xs = xs.astype(np.float32)
    dx = pm.executor.run(xs, exact=True, faithful=False).dx
    raw, p = pm._scaled(xs, "first-order")
    assert p is not None and dx is not None
    return np.asarray(raw + dx - p, dtype=np.float64)


def _pair(
    name: str, scaling: str = "minmax", top: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, ProgrammedMatrix]:
    """x̃ noise of both modes for one matrix and x; ``top``: x near the top of its range."""
    rng = np.random.default_rng(seed)
    signed = scaling == "absmax"
    a = rng.normal(size=(48, 40)) if signed else rng.random((48, 40))
    if top:
        x = np.r_[0.0, 1.0, rng.uniform(0.9, 1.0, 38)]
    else:
        x = rng.uniform(-1.0, 1.0, size=40) if signed else rng.random(40)
    out = {}
    for mode in ("fast", "faithful"):
        cfg = CrossbarConfig(xtilde=mode, shards=1, scaling=scaling)
        pm = program(a, device=name, tile=16, seed=seed + 1, config=cfg)
        out[mode] = _noise(pm, x)
    return out["fast"], out["faithful"], pm


def _variances(name: str, scaling: str = "minmax", top: bool = False) -> tuple[float, float, float]:
    """Pooled x̃ noise variance (fast, faithful, the old pooled model) over a few matrices.

    One fixed (A, x) is a small sample of E's heavy-tailed column sums (fast/faithful ranged
    0.96–1.21 over six for TaOx-HfOy): pooling four keeps the comparison about the model.
    """
    fast = faithful = old = 0.0
    for seed in range(4):
        f, g, pm = _pair(name, scaling, top, seed)
        fast += float((f**2).mean())
        faithful += float((g**2).mean())
        old += _old_pooled_variance(pm)
    return fast, faithful, old


def _old_pooled_variance(pm: ProgrammedMatrix) -> float:
    """The model this replaced: one σ² from A's cells (programming + read at mean S) for every x̃."""
    (group,) = pm.executor.shards[0].groups  # type: ignore[attr-defined]
    mask = (group.w + group.d) != 0.0
    xvar = float((group.d[mask].astype(np.float64) ** 2).mean())
    xvar += group.device.read_noise**2 * float(group.s[mask].mean())
    return xvar * float(pm.rows_e2.mean())


@pytest.mark.parametrize(
    ("name", "scaling"), [("TaOx-HfOy", "minmax"), ("EpiRAM", "minmax"), ("TaOx-HfOy", "absmax")]
)
def test_fast_and_faithful_xtilde_noise_agree_in_variance(name: str, scaling: str) -> None:
    v_fast, v_faithful, _ = _variances(name, scaling)
    assert v_fast == pytest.approx(v_faithful, rel=0.15)


@pytest.mark.parametrize("name", ["TaOx-HfOy", "EpiRAM"])
def test_pooled_xtilde_variance_fails_where_the_level_table_agrees(name: str) -> None:
    # Inputs near the top of their range: there the x̃ error is far from its mean over levels
    # (TaOx-HfOy: well below, EpiRAM: above). The model this replaced (one σ² for every x̃ cell)
    # fails the same 15 % test (measured 2.5–3.7× for TaOx-HfOy, 0.73–0.78 for EpiRAM over both
    # random streams); the table passes it.
    v_fast, v_faithful, v_old = _variances(name, top=True)
    assert v_fast == pytest.approx(v_faithful, rel=0.15)
    assert v_old != pytest.approx(v_faithful, rel=0.15)


def test_fast_and_faithful_xtilde_noise_agree_in_distribution_on_epiram() -> None:
    fast, faithful, _ = _pair("EpiRAM")
    z = lambda s: ((s - s.mean(axis=1, keepdims=True)) / s.std(axis=1, keepdims=True)).ravel()  # noqa: E731
    assert stats.ks_2samp(z(fast), z(faithful)).pvalue > 0.01


def test_faithful_xtilde_is_reproduced_by_the_seed_and_fresh_per_read() -> None:
    rng = np.random.default_rng(5)
    a, x = rng.random((20, 24)), rng.random((24, 2))
    cfg = CrossbarConfig(xtilde="faithful", shards=1)
    pm1, pm2 = (program(a, device="TaOx-HfOy", tile=8, seed=3, config=cfg) for _ in range(2))
    first = pm1.read(x, correction="first-order").first_order
    np.testing.assert_array_equal(first, pm2.read(x, correction="first-order").first_order)
    assert not np.array_equal(first, pm1.read(x, correction="first-order").first_order)


def test_ideal_device_has_no_xtilde_noise_in_either_mode() -> None:
    rng = np.random.default_rng(6)
    a, x = rng.random((20, 24)), rng.random((24, 3))
    for mode in ("fast", "faithful"):
        pm = program(a, device="ideal", tile=8, config=CrossbarConfig(xtilde=mode, shards=1))
        assert not calibrate_xtilde(get_device("ideal"), VerifyConfig(), 0, False, 0).m2.any()
        out = pm.read(x, correction="first-order")
        assert out.first_order is not None
        np.testing.assert_allclose(out.first_order, a @ x, rtol=1e-5)


def test_compiled_level_lookup_gives_the_numpy_lookups_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    table = calibrate_xtilde(get_device("EpiRAM"), VerifyConfig(), 8, True, 2)
    xs = np.random.default_rng(7).uniform(-1.0, 1.0, size=(300, 5)).astype(np.float32)
    xs[:, 1] = 0.0
    calls = np.arange(5, dtype=np.intp)
    rows = np.array([3, 7, 11, 250], dtype=np.intp)
    compiled = [table.column_m2(xs, r, calls) for r in (None, rows)]
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    for got, r in zip(compiled, (None, rows), strict=True):
        np.testing.assert_allclose(got, table.column_m2(xs, r, calls), rtol=1e-5)
    # A zero column reads level 0 everywhere: m2[0] (read noise of a pair at Gmin).
    assert compiled[0][1] == pytest.approx(table.factors[1] * table.prog[0] + table.read[0], rel=1e-6)


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed: the compiled x̃ pass is off")
def test_one_call_column_sd_is_the_root_of_column_m2_with_seeded_calls() -> None:
    from sedma.compute.sampling import _splitmix

    table = calibrate_xtilde(get_device("TaOx-HfOy"), VerifyConfig(), 8, False, 3)
    xs = np.random.default_rng(9).random((200, 40), dtype=np.float32)
    live = np.ones(40, dtype=bool)
    live[[0, 17]] = False
    seed = 0x1234_5678_9ABC_DEF0
    calls = np.array([int(_splitmix(np.uint64(seed), b + 1)) % CAL_CALLS for b in range(40)], dtype=np.intp)
    np.testing.assert_array_equal(xtilde_calls(seed, 40), calls)  # the numpy path draws the same
    assert len(set(calls.tolist())) > 4  # the columns draw different calibration calls
    for rows in (None, np.array([1, 5, 9, 120], dtype=np.intp)):
        want = np.sqrt(table.column_m2(xs, rows, calls)) * live
        np.testing.assert_allclose(table.column_sd(xs, rows, seed, live), want, rtol=1e-6)


def test_groups_reading_different_inputs_add_their_xtilde_variances() -> None:
    # Two shards on a 2 × 2 grid: each group reads one block column, so two terms, summed.
    rng = np.random.default_rng(8)
    a, x = rng.random((32, 32)), rng.random(32)
    pm = program(a, device="TaOx-HfOy", tile=16, seed=2, config=CrossbarConfig(shards=2))
    assert len(pm._xterms) == 2 and all(t.cols is not None for t in pm._xterms)
    noise = _noise(pm, x)
    xs = ((x - x.min()) / np.ptp(x)).astype(np.float32)[:, None]
    # The calibration calls' factors average to 1: the expected variance is Σ_terms rowsum(E²)·mean m2.
    want = sum(
        t.rows_e2 * float(t.table.m2[np.rint(xs[t.cols, 0] * t.table.levels).astype(int)].mean())
        for t in pm._xterms
    )
    assert float((noise**2).mean()) == pytest.approx(float(np.mean(want)), rel=0.1)
