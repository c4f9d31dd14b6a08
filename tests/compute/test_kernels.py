"""The compiled single-vector read: same numbers as the BLAS path, same noise law, a numpy fallback."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from sedma.compute import kernels, tiles
from sedma.compute.crossbar import CrossbarConfig, program
from sedma.compute.devices import Device, get_device, with_overrides
from sedma.compute.executor import LocalExecutor
from sedma.compute.plan import Block, PartitionPlan

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed: reads use BLAS only")


def test_pack_keeps_d_and_s_within_half_a_code_of_their_row() -> None:
    rng = np.random.default_rng(0)
    d = (rng.standard_normal((3, 16, 16)) * 1e-3).astype(np.float32)
    d[0, 2] = 0.0  # an all-zero row must not divide by zero
    s = rng.random((3, 16, 16), dtype=np.float32)
    pk = kernels.pack(d, s)
    assert pk.d16.dtype == np.int16 and pk.s16.dtype == np.uint16
    for v, codes, sc in ((d, pk.d16, pk.d_scale), (s, pk.s16, pk.s_scale)):
        back = codes.astype(np.float64) * sc[:, :, None]
        assert np.all(np.abs(back - v) <= 0.5 * sc[:, :, None] * (1 + 1e-5) + 1e-12)
    assert np.all(pk.d16[0, 2] == 0)


def _reads(
    a: np.ndarray,
    xs: list[np.ndarray],
    dev: Device | str,
    *,
    kernel: bool,
    mp: pytest.MonkeyPatch,
    scaling: str = "minmax",
) -> np.ndarray:
    mp.setattr(kernels, "AVAILABLE", kernel)
    pm = program(a, device=dev, tile=128, seed=3, config=CrossbarConfig(shards=1, scaling=scaling))
    out = []
    for x in xs:
        r = pm.read(x, correction="full", lam=0.0)
        assert r.first_order is not None
        out.append(np.stack([r.raw, r.first_order]))
    return np.stack(out)


@pytest.mark.parametrize("scaling", ["minmax", "absmax"])
def test_one_vector_kernel_agrees_with_the_blas_read(scaling: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    # minmax: every G⁻ at Gmin, S comes from W; absmax: signed weights, S from its 16-bit codes.
    a = rng.random((300, 500)) if scaling == "minmax" else rng.standard_normal((300, 500))
    xs = [rng.random(500) for _ in range(5)]  # padded tiles: 3 × 4 blocks of 128, the last partly empty
    ideal_adc = with_overrides(get_device("TaOx-HfOy"), adc_bits=0)
    kw = {"mp": monkeypatch, "scaling": scaling}
    # Same seed, same normal draws: without an ADC both paths give the same numbers to rounding.
    fast = _reads(a, xs, ideal_adc, kernel=True, **kw)  # type: ignore[arg-type]
    blas = _reads(a, xs, ideal_adc, kernel=False, **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(fast, blas, rtol=2e-5, atol=1e-3)
    # With the 8-bit ADC a different summation order may move a value across a code boundary.
    fast = _reads(a, xs, "TaOx-HfOy", kernel=True, **kw)  # type: ignore[arg-type]
    blas = _reads(a, xs, "TaOx-HfOy", kernel=False, **kw)  # type: ignore[arg-type]
    moved = ~np.isclose(fast, blas, rtol=2e-5, atol=1e-3)
    assert moved.mean() < 0.01
    assert np.abs(fast - blas).max() < 0.01 * np.abs(blas).max()


@pytest.mark.parametrize("plan", ["static", "column-major"])
def test_batched_compiled_passes_give_the_numpy_path_numbers(
    plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(4)
    a = rng.random((300, 500))  # padded tiles on the static grid
    xs = [rng.random((500, 6)), rng.random((500, 3)).astype(np.float32)]
    kw: dict[str, object] = {}
    if plan == "column-major":  # blocks off the row-major grid: the row map comes from the scatter matrix
        blocks = [
            Block(r, c, min(128, 300 - r), min(128, 500 - c), 128, "TaOx-HfOy")
            for c in range(0, 500, 128)
            for r in range(0, 300, 128)
        ]
        kw["plan"] = PartitionPlan((300, 500), tuple(blocks), "static")
    out = {}
    for kernel in (True, False):
        monkeypatch.setattr(kernels, "AVAILABLE", kernel)
        pm = program(a, device="TaOx-HfOy", tile=128, seed=3, config=CrossbarConfig(shards=2), **kw)
        out[kernel] = [pm.read(x, correction="first-order") for x in xs]
    for fast, ref in zip(out[True], out[False], strict=True):
        assert ref.first_order is not None and fast.first_order is not None
        # The same float32 operations in the same order, the same draws: equal to summation rounding.
        np.testing.assert_allclose(fast.raw, ref.raw, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fast.first_order, ref.first_order, rtol=1e-6, atol=1e-6)


def test_s_is_derived_from_w_only_when_every_minus_side_sits_at_gmin() -> None:
    rng = np.random.default_rng(5)
    a = rng.random((64, 64))
    groups = {}
    for scaling in ("minmax", "absmax"):  # absmax programs G⁻ too (here never pulsed: a >= 0)
        pm = program(a, device="TaOx-HfOy", tile=32, seed=1, config=CrossbarConfig(shards=1, scaling=scaling))
        assert isinstance(pm.executor, LocalExecutor)
        groups[scaling] = pm.executor.shards[0].groups[0]
    # The derived S has the bits programming computes from (G⁺, G⁻ = Gmin).
    stored = groups["absmax"]
    np.testing.assert_array_equal(dataclasses.replace(stored, s_store=None).s, stored.s_store)
    g = groups["minmax"]
    assert kernels.pack(g.d, g.s_store, g.w, g.g0).s_from_w
    signed = program(rng.normal(size=(64, 64)), device="TaOx-HfOy", tile=32, seed=1,
                     config=CrossbarConfig(shards=1, scaling="absmax"))  # fmt: skip
    assert isinstance(signed.executor, LocalExecutor)
    h = signed.executor.shards[0].groups[0]
    pk = kernels.pack(h.d, h.s_store, h.w, h.g0)
    assert not pk.s_from_w and pk.s16.size == h.s.size


def test_kernel_read_noise_has_the_per_cell_variance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "AVAILABLE", True)
    rng = np.random.default_rng(2)
    a, x = rng.random((32, 32)), rng.random(32).astype(np.float32)
    dev = with_overrides(get_device("TaOx-HfOy"), read_noise=0.05, dac_bits=0, adc_bits=0)
    pm = program(a, device=dev, tile=32, seed=5, config=CrossbarConfig(shards=1))
    reads = np.stack([pm.read(x, correction="none").raw for _ in range(3000)])
    assert isinstance(pm.executor, LocalExecutor)
    g = pm.executor.shards[0].groups[0]
    xs = (x - x.min()) / (x.max() - x.min())  # minmax scaling of the vector
    want_sd = 0.05 * np.sqrt(g.s[0] @ (xs * xs))
    gain = pm.scale.span.ravel()[0] * (x.max() - x.min())  # digital un-scaling of the analog part
    np.testing.assert_allclose(reads.std(axis=0) / gain, want_sd, rtol=0.1)


def test_numpy_setting_turns_the_kernel_off() -> None:
    code = "from sedma.compute import kernels; print(kernels.AVAILABLE)"
    env = os.environ | {"SEDMA_COMPUTE_KERNEL": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _batched(
    a: np.ndarray,
    xs: list[np.ndarray],
    dev: Device | str,
    *,
    dense: bool,
    mp: pytest.MonkeyPatch,
    **kw: object,
) -> tuple[list[np.ndarray], list[float]]:
    """Batched reads (raw and first-order) with the bounded pass, or with it switched off."""
    mp.setattr(tiles, "BOUNDED_SHARE", -1.0 if dense else 0.25)
    pm = program(a, device=dev, tile=128, seed=3, config=CrossbarConfig(shards=2, **kw))  # type: ignore[arg-type]
    assert isinstance(pm.executor, LocalExecutor)
    groups = [g for s in pm.executor.shards for g in s.groups]
    for g in groups:  # calibration read with the bounded pass: start these reads from a clean slate
        g.near_boundary, g.dense_reads = (1.0, 0) if dense else (0.0, 0)
    out = []
    for x in xs:
        r = pm.read(x, correction="first-order")
        assert r.first_order is not None
        out.append(np.stack([r.raw, r.first_order]))
    return out, [g.near_boundary for g in groups]


@pytest.mark.parametrize("scaling", ["minmax", "absmax"])
@pytest.mark.parametrize("noise", [0.01, 0.05])
def test_bounded_batched_read_gives_the_dense_reads_numbers(
    scaling: str, noise: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bounded pass computes a variance only where the noise could move an ADC code; the
    # codes, hence every number, must be the dense pass's (S (x∘x) GEMM for every output).
    rng = np.random.default_rng(7)
    a = rng.random((300, 500)) if scaling == "minmax" else rng.standard_normal((300, 500))
    xs = [rng.random((500, 6)), rng.standard_normal((500, 3)).astype(np.float32)]
    dev = with_overrides(get_device("TaOx-HfOy"), read_noise=noise)
    kw = {"mp": monkeypatch, "scaling": scaling}
    bounded, near = _batched(a, xs, dev, dense=False, **kw)  # type: ignore[arg-type]
    dense, _ = _batched(a, xs, dev, dense=True, **kw)  # type: ignore[arg-type]
    for got, want in zip(bounded, dense, strict=True):
        np.testing.assert_array_equal(got, want)
    assert 0.0 < max(near) < 1.0  # some outputs needed their variance, not all


def test_bounded_read_keeps_the_column_major_plan_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    a = rng.random((300, 500))
    blocks = [
        Block(r, c, min(128, 300 - r), min(128, 500 - c), 128, "TaOx-HfOy")
        for c in range(0, 500, 128)
        for r in range(0, 300, 128)
    ]
    plan = PartitionPlan((300, 500), tuple(blocks), "static")
    x = rng.random((500, 4))
    out = {}
    for dense in (False, True):
        monkeypatch.setattr(tiles, "BOUNDED_SHARE", -1.0 if dense else 0.25)
        pm = program(a, plan=plan, device="TaOx-HfOy", seed=3, config=CrossbarConfig(shards=2))
        assert isinstance(pm.executor, LocalExecutor)
        for g in (g for s in pm.executor.shards for g in s.groups):
            g.near_boundary = 1.0 if dense else 0.0
        out[dense] = pm.read(x, correction="first-order")
    assert out[True].first_order is not None and out[False].first_order is not None
    np.testing.assert_array_equal(out[False].raw, out[True].raw)
    np.testing.assert_array_equal(out[False].first_order, out[True].first_order)


@pytest.mark.parametrize("from_w", [True, False])
def test_variance_bound_is_never_below_the_variance(from_w: bool) -> None:
    rng = np.random.default_rng(9)
    k, t, nb = 3, 64, 16
    w = rng.random((k, 2 * t, t), dtype=np.float32)
    w[1, :t, : t // 2] = 0.0  # rows with a flat half: the Hölder bound is the tighter one there
    g0 = 0.11
    s = ((g0 + w[:, :t]) ** 2 + g0**2).astype(np.float32)
    src = w if from_w else np.ascontiguousarray(s * rng.random(s.shape, dtype=np.float32))
    ss = s if from_w else src
    bound = np.empty((k, 2, t), dtype=np.float32)
    kernels.s_bounds(src, from_w, g0, bound)
    u = rng.random((k, nb, t), dtype=np.float32) ** 2
    u[0, :3] = 0.0
    u[2, 5, ::2] = 0.0
    uf = np.empty((2, nb), dtype=np.float32)
    for kk in range(k):
        kernels._u_factors(u[kk], uf)
        v = ss[kk].astype(np.float64) @ u[kk].T.astype(np.float64)  # (t, nb)
        cs = (bound[kk, 0][:, None] * uf[0][None, :]) ** 2
        holder = (bound[kk, 1][:, None] * uf[1][None, :]) ** 2
        assert np.all(np.minimum(cs, holder) >= v)
        live = v > 0
        assert np.median(np.minimum(cs, holder)[live] / v[live]) < 3.0  # and not uselessly loose


@pytest.mark.parametrize("from_w", [True, False])
def test_variance_lower_bound_is_never_above_the_variance(from_w: bool) -> None:
    # S = a² + b² with a = g0 + g⁺, b = g0 + g⁻ (g± ≥ 0) and W = a − b, as programming makes them;
    # the lower bound of S_i·(x∘x) comes from W x alone, so it must hold for any such cells.
    rng = np.random.default_rng(11)
    k, t, nb, g0 = 3, 64, 16, np.float32(0.11)
    gp = rng.random((k, t, t), dtype=np.float32)
    gn = np.zeros_like(gp) if from_w else rng.random((k, t, t), dtype=np.float32) * (gp < 0.5)
    w = gp - gn
    s = ((g0 + gp) ** 2 + (g0 + gn) ** 2).astype(np.float32)
    x = rng.random((k, t, nb), dtype=np.float32)
    if not from_w:
        x = x * 2.0 - 1.0  # signed inputs with signed weights
    x[0, :, :3] = 0.0  # all-zero columns
    x[1, ::3, 5] = 0.0  # and columns with zeros: the bound counts the nonzero inputs
    lf = np.empty((5, nb), dtype=np.float32)
    for kk in range(k):
        y = w[kk] @ x[kk]  # the GEMM's float32 W x, as the read has it
        kernels._lower_factors(x[kk], from_w, float(g0), lf)
        a = np.maximum(np.abs(y + lf[0]) - lf[3], 0.0) + lf[1]
        lower = a * a * lf[2] + lf[4]
        v = s[kk].astype(np.float64) @ (x[kk].astype(np.float64) ** 2)
        assert np.all(lower <= v)
        if from_w:  # unsigned weights and inputs (min-max scaling): tight enough to settle most
            live = v > 0
            assert np.median(lower[live] / v[live]) > 0.3


def test_bounded_pass_moves_codes_that_both_bounds_settle_without_a_variance() -> None:
    # Rows and inputs constant: both bounds equal the variance, so every output is settled
    # without a dot product, and the noise carries many across exactly one ADC boundary.
    k, t, nb, g0, sigma = 1, 64, 8, 0.1, 0.02
    w = np.full((k, 2 * t, t), 0.6, dtype=np.float32)
    w[:, t:] = 1e-3  # D, for the dx sums
    x = np.full((k, t, nb), 0.5, dtype=np.float32)
    ut = np.ascontiguousarray((x * x).transpose(0, 2, 1))
    y = np.matmul(w, x)
    rng = np.random.default_rng(12)
    y[:, :t] += rng.random((k, t, nb), dtype=np.float32) * 2.0  # spread the values over codes
    z = rng.standard_normal((k, t, nb)).astype(np.float32)
    bound = np.empty((k, 2, t), dtype=np.float32)
    kernels.s_bounds(w, True, g0, bound)
    lo, hi, levels = np.zeros(k, np.float32), np.full(k, 40.0, np.float32), 255.0
    row_of = np.arange(t, dtype=np.int64)[None, :]
    got = [np.zeros((t, nb), np.float32) for _ in range(2)]
    near = kernels.finish_bounded(y, z, x, ut, w, True, g0, bound, sigma, lo, hi, levels, True, row_of, *got)
    s = ((g0 + w[:, :t]) ** 2 + g0**2).astype(np.float32)
    v = np.matmul(s, x * x)
    want = [np.zeros((t, nb), np.float32) for _ in range(2)]
    kernels.finish(y, v, z, sigma, lo, hi, levels, True, row_of, *want)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    step = 40.0 / levels
    moved = np.rint(y[0, :t] / step) != np.rint(want[0] / step)
    assert near <= 2 and moved.mean() > 0.2  # codes moved, and (almost) no variance was computed


def test_bounded_pass_goes_dense_when_most_outputs_sit_near_a_boundary() -> None:
    rng = np.random.default_rng(10)
    a = rng.random((256, 256))
    loud = with_overrides(get_device("TaOx-HfOy"), read_noise=0.3)  # noise ≫ an ADC step
    pm = program(a, device=loud, tile=128, seed=2, config=CrossbarConfig(shards=1))
    assert isinstance(pm.executor, LocalExecutor)
    g = pm.executor.shards[0].groups[0]
    x = rng.random((256, 8))
    assert g.near_boundary > tiles.BOUNDED_SHARE  # measured on the calibration read
    before = g.dense_reads
    pm.read(x, correction="none")
    assert g.dense_reads == before + 1 and g.s_store is not None  # the GEMM path, with S materialised
    g.dense_reads = tiles.BOUNDED_RETRY - 1
    pm.read(x, correction="none")  # the bounded pass is tried again, and measured again
    assert g.dense_reads == 0 and g.near_boundary > tiles.BOUNDED_SHARE
    quiet = program(a, device="TaOx-HfOy", tile=128, seed=2, config=CrossbarConfig(shards=1))
    assert isinstance(quiet.executor, LocalExecutor)
    h = quiet.executor.shards[0].groups[0]
    quiet.read(x, correction="full")
    # Unsigned inputs: S = (g0 + W)² + g0² is never materialised, the bound keeps most outputs.
    assert h.s_store is None and 0.0 < h.near_boundary < 0.2
