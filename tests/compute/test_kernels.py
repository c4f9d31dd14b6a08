"""The compiled single-vector read: same numbers as the BLAS path, same noise law, a numpy fallback."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from sedma.compute import kernels
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
