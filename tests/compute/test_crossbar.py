"""Program once, read many: tiling, converters, noise, and the MELISO+ correction."""

from __future__ import annotations

import numpy as np
import pytest

from sedma.compute.crossbar import CrossbarConfig, program
from sedma.compute.devices import get_device, with_overrides
from sedma.compute.plan import Block, PartitionPlan
from sedma.errors import InputError

MATERIALS = ["Ag-aSi", "AlOx-HfO2", "EpiRAM", "TaOx-HfOy"]


def _rel(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize(
    ("shape", "tile"), [((1000, 777), 256), ((64, 64), 64), ((50, 30), 7), ((130, 200), 512), ((9, 5), 2)]
)
def test_ideal_device_equals_a_at_x_for_every_tile_size(shape: tuple[int, int], tile: int) -> None:
    rng = np.random.default_rng(0)
    a, x = rng.random(shape), rng.random((shape[1], 3))
    pm = program(a, device="ideal", tile=tile)
    np.testing.assert_allclose(pm @ x[:, 0], a @ x[:, 0], rtol=1e-5)
    out = pm.read(x)
    assert out.raw.shape == (shape[0], 3)
    for y in (out.raw, out.first_order, out.full):
        assert y is not None and _rel(y, a @ x) < 1e-5
    assert pm.stats.tiles == -(-shape[0] // tile) * -(-shape[1] // tile)
    assert pm.stats.cell_utilization == pytest.approx(shape[0] * shape[1] / (pm.stats.tiles * tile * tile))


def test_absmax_scaling_keeps_signed_weights_exact_on_ideal() -> None:
    rng = np.random.default_rng(1)
    a, x = rng.normal(size=(40, 60)), rng.normal(size=60)
    pm = program(a, device="ideal", tile=16, config=CrossbarConfig(scaling="absmax"))
    assert _rel(pm @ x, a @ x) < 1e-5
    # Min-max scaling of signed data is exact too, up to float32 cancellation of the offsets.
    assert _rel(program(a, device="ideal", tile=16) @ x, a @ x) < 1e-4


def test_heterogeneous_plan_with_two_tile_sizes_and_devices() -> None:
    rng = np.random.default_rng(2)
    a, x = rng.random((96, 80)), rng.random(80)
    blocks = (
        Block(0, 0, 64, 64, 64, "big"),
        Block(0, 64, 64, 16, 64, "small"),
        Block(64, 0, 32, 80, 128, "big"),
    )
    plan = PartitionPlan((96, 80), blocks, "adaptive")
    ideal = get_device("ideal")
    pm = program(a, plan=plan, device={"big": ideal, "small": with_overrides(ideal, name="small")})
    assert _rel(pm @ x, a @ x) < 1e-5
    assert pm.stats.tiles == 3 and set(pm.stats.per_device) == {"ideal", "small"}


def _static_error_only(material: str) -> object:
    # Only programming error: no read noise, ideal converters.
    return with_overrides(get_device(material), read_noise=0.0, dac_bits=0, adc_bits=0)


@pytest.mark.parametrize("material", MATERIALS)
def test_correction_lowers_static_programming_error_on_every_material(material: str) -> None:
    rng = np.random.default_rng(3)
    raw, fo = [], []
    for seed in range(3):
        a, x = rng.random((96, 96)), rng.random(96)
        out = program(a, device=_static_error_only(material), tile=32, seed=seed).read(
            x, correction="first-order"
        )
        assert out.first_order is not None
        raw.append(_rel(out.raw, a @ x))
        fo.append(_rel(out.first_order, a @ x))
    assert np.mean(fo) < 0.2 * np.mean(raw)


def test_read_noise_is_fresh_per_read_and_seeded() -> None:
    rng = np.random.default_rng(4)
    a, x = rng.random((64, 64)), rng.random(64)
    pm1, pm2 = program(a, tile=32, seed=7), program(a, tile=32, seed=7)
    first, second = pm1 @ x, pm1 @ x
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, pm2 @ x)
    assert pm1.noise_var > 0 and pm1.raw_var > pm1.noise_var


def test_stats_record_programming() -> None:
    rng = np.random.default_rng(5)
    pm = program(rng.random((70, 50)), device="EpiRAM", tile=32)
    s = pm.stats.as_dict()
    assert s["program_s"] > 0 and 1 <= s["iterations"] <= 21 and s["pulses"] > 0 and s["tiles"] == 6
    assert 0 < s["cell_utilization"] < 1


def test_fast_xtilde_first_order_reads_agree_with_reprogrammed_xtilde() -> None:
    # Faithful mode writes every x̃ copy by write-and-verify; fast samples its effect at the
    # outputs (tests/compute/test_xtilde.py checks the noise itself; this checks the reads).
    rng = np.random.default_rng(6)
    a, x = rng.random((24, 24)), rng.random(24)
    xb = np.repeat(x[:, None], 600, axis=1)
    samples = {}
    for mode in ("fast", "faithful"):
        pm = program(a, device="EpiRAM", tile=8, seed=1, config=CrossbarConfig(xtilde=mode, shards=1))
        first = pm.read(xb, correction="first-order").first_order
        assert first is not None
        samples[mode] = first.T
    fast, faithful = samples["fast"], samples["faithful"]
    np.testing.assert_allclose(fast.mean(axis=0), faithful.mean(axis=0), rtol=1e-3)
    np.testing.assert_allclose(fast.std(axis=0), faithful.std(axis=0), rtol=0.35)
    # Reads also carry read noise and the 8-bit ADC's rounding: the shape (KS) is tested on the
    # x̃ noise alone in test_xtilde.py.
    assert np.mean(fast.var(axis=0)) == pytest.approx(np.mean(faithful.var(axis=0)), rel=0.15)


@pytest.mark.parametrize(
    ("a", "match"),
    [
        (np.array([[1.0, np.nan]]), "NaN or Inf"),
        (np.array([[1.0, np.inf]]), "NaN or Inf"),
        (np.zeros((0, 3)), "empty"),
        (np.arange(4.0), "2-D"),
        (np.array([["a", "b"]]), "not a real numeric type"),
        (np.ones((2, 2), dtype=complex), "not a real numeric type"),
    ],
)
def test_bad_matrices_are_refused(a: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        program(a, device="ideal", tile=4)


def test_bad_vectors_and_tiles_are_refused() -> None:
    pm = program(np.ones((4, 3)), device="ideal", tile=4)
    with pytest.raises(InputError, match=r"shape \(4,\) does not match"):
        pm @ np.ones(4)
    with pytest.raises(InputError, match="NaN"):
        pm @ np.array([1.0, np.nan, 0.0])
    with pytest.raises(InputError, match="below 2"):
        program(np.ones((4, 3)), device="ideal", tile=1)
    with pytest.raises(InputError, match=r"outside 2\.\.1024"):
        program(np.ones((4, 3)), device="EpiRAM", tile=2048)
    with pytest.raises(InputError, match="unknown material"):
        program(np.ones((4, 3)), device="nope", tile=4)


def test_a_constant_input_column_is_carried_digitally_and_exactly() -> None:
    rng = np.random.default_rng(8)
    a = rng.random((40, 30))
    x = np.stack([np.full(30, 2.5), rng.random(30)], axis=1)
    out = program(a, device="TaOx-HfOy", tile=16).read(x, correction="first-order")
    assert out.first_order is not None
    np.testing.assert_allclose(out.first_order[:, 0], a @ x[:, 0], rtol=1e-6)
    assert _rel(out.first_order[:, 1], a @ x[:, 1]) > 0


def test_grid_scatter_equals_the_sparse_scatter() -> None:
    rng = np.random.default_rng(11)
    a = rng.random((70, 50))
    for shards, grid in ((1, (3, 2)), (2, (3, 1))):
        pm = program(a, device="EpiRAM", tile=32, seed=2, config=CrossbarConfig(shards=shards))
        group = pm.executor.shards[0].groups[0]  # type: ignore[attr-defined]
        assert group.grid == grid
        y = rng.random((group.blocks, 32, 3)).astype(np.float32)
        fast = group.outputs(y)
        group.grid = None
        np.testing.assert_allclose(fast, group.outputs(y), rtol=1e-6)
        pm.close()


def test_concurrent_reads_of_one_matrix_do_not_mix_their_buffers() -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(12)
    a = rng.random((96, 80))
    xs = [rng.random((80, 2)) for _ in range(24)]
    pm = program(a, device="ideal", tile=32, config=CrossbarConfig(shards=1))
    with ThreadPoolExecutor(max_workers=6) as pool:
        outs = list(pool.map(lambda x: pm.read(x, correction="full", lam=0.0).output, xs))
    pm.close()
    for x, y in zip(xs, outs, strict=True):
        np.testing.assert_allclose(y, a @ x, rtol=1e-4)


def test_reads_of_many_batch_sizes_keep_a_bounded_set_of_buffers_and_stay_exact() -> None:
    from sedma.compute.tiles import SCRATCH_KEEP

    rng = np.random.default_rng(4)
    a = rng.random((90, 70)).astype(np.float32)
    pm = program(a, device="ideal", tile=32, seed=0, config=CrossbarConfig(shards=1))
    shard = pm.executor.shards[0]  # type: ignore[attr-defined]
    for b in [*range(1, 21), 3, 17]:  # 3 was evicted by then: its buffers are made again
        x = rng.random((70, b)).astype(np.float32)
        np.testing.assert_allclose(pm.read(x, correction="none").raw, a @ x, rtol=1e-4, atol=1e-4)
        assert len(shard._scratch) <= SCRATCH_KEEP
    pm.close()
