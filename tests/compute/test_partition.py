"""Partitioning: static grids and the adaptive plan of Eq. 4 over heterogeneous device pools."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sedma.compute.crossbar import program
from sedma.compute.devices import get_device
from sedma.compute.partition import (
    CostModel,
    adaptive_partition,
    effective_lambda,
    grid_cost,
    pattern_of,
    plan_cost,
    plan_from_pattern,
    recall_pattern,
    record_outcome,
    search_partition,
    static,
)
from sedma.compute.plan import PartitionPlan
from sedma.compute.pool import DevicePool, PoolDevice, device_models, device_pool, load_pool, sized_pool
from sedma.errors import InputError
from sedma.memory import DualMemory

SIZES = (64, 128, 256, 512)


def counted_pool(*spec: tuple[int, int], **kw: float) -> DevicePool:
    return DevicePool(tuple(PoolDevice(f"d{s}", s, c, **kw) for s, c in spec))  # type: ignore[arg-type]


def static_costs(shape: tuple[int, int], pool: DevicePool, lam: float, model: CostModel) -> list[float]:
    plans = [static(shape, tile=d.array_size, device=d.name) for d in pool.devices]
    return [plan_cost(p, pool, lambda_mem=lam, model=model).objective for p in plans]


def test_static_is_melisos_zero_padded_grid() -> None:
    plan = static((1000, 777), tile=256, device="d256")
    plan.validate()
    assert plan.tiles == 16 and plan.strategy == "static"
    assert plan.cell_utilization() == pytest.approx(777000 / (16 * 256 * 256))


def test_adaptive_beats_static_utilisation_on_an_awkward_shape() -> None:
    pool = sized_pool("TaOx-HfOy", sizes=SIZES)
    found = search_partition((1000, 777), pool)
    found.plan.validate()
    assert found.plan.strategy == "adaptive"
    assert len({b.tile for b in found.plan.blocks}) > 1  # mixed tile sizes
    for tile in SIZES[1:]:
        assert found.cost.utilization > static((1000, 777), tile=tile, device="x").cell_utilization()
    assert found.cost.utilization >= 0.9
    assert found.cost.objective < found.static_cost.objective


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 1500),
    n=st.integers(1, 1500),
    lam=st.sampled_from([0.0, 1e-3, 1e-2, 1.0]),
    sizes=st.sets(st.sampled_from([16, 48, 64, 100, 128, 256, 512]), min_size=1, max_size=4),
    pulse=st.sampled_from([50e-9, 5e-6, 300e-6]),
)
def test_adaptive_plans_cover_once_and_never_cost_more_than_static(
    m: int, n: int, lam: float, sizes: set[int], pulse: float
) -> None:
    pool = sized_pool("M", sizes=sizes, pulse_s=pulse)
    model = CostModel()
    found = search_partition((m, n), pool, lambda_mem=lam, model=model)
    found.plan.validate()
    again = plan_cost(found.plan, pool, lambda_mem=lam, model=model)
    assert found.cost.objective == pytest.approx(again.objective, rel=1e-9)
    assert (found.cost.arrays, found.cost.utilization) == (again.arrays, again.utilization)
    assert found.cost.objective <= min(static_costs((m, n), pool, lam, model)) * (1 + 1e-12)


@pytest.mark.parametrize("shape", [(1000, 777), (64, 64), (5, 3000), (1025, 513)])
def test_closed_form_grid_cost_equals_the_evaluated_static_plan(shape: tuple[int, int]) -> None:
    pool = counted_pool((256, 3), (64, 500), speed=2.0, pulse_s=1e-6)
    model = CostModel(mvms=10, batch=4)
    for i, d in enumerate(pool.devices):
        closed = grid_cost(shape, pool, i, lambda_mem=0.05, model=model)
        built = plan_cost(static(shape, tile=d.array_size, device=d.name), pool, lambda_mem=0.05, model=model)
        for field in ("objective", "program_s", "read_s", "multiplex_s", "memory_mb", "utilization"):
            assert getattr(closed, field) == pytest.approx(getattr(built, field), rel=1e-12)
        assert (closed.arrays, closed.multiplexed, closed.feasible) == (
            built.arrays,
            built.multiplexed,
            built.feasible,
        )


def test_adaptive_respects_array_counts_when_the_pool_has_room() -> None:
    pool = counted_pool((512, 2), (256, 4), (128, 8), (64, 20))
    for lam in (1e-3, 1e-2):
        for multiplex in (True, False):
            found = search_partition(
                (1000, 777), pool, lambda_mem=lam, model=CostModel(allow_multiplex=multiplex)
            )
            used = Counter(b.device for b in found.plan.blocks)
            assert all(used[d.name] <= d.count for d in pool.devices), used
            assert not found.cost.multiplexed and found.cost.feasible
            found.plan.validate()
    # Without the counts the best plan puts four blocks on the 512s: the limit is what moved them.
    free = counted_pool((512, 100), (256, 100), (128, 100), (64, 100))
    assert search_partition((1000, 777), free, lambda_mem=1e-3).cost.arrays == {"d512": 4}


def test_too_few_arrays_multiplex_at_a_cost_or_fail_when_multiplexing_is_off() -> None:
    pool = counted_pool((512, 1), (256, 2), (128, 4), (64, 16))  # 524,288 cells < 777,000
    found = search_partition((1000, 777), pool, model=CostModel(allow_multiplex=True))
    assert found.cost.multiplexed and found.cost.multiplex_s > 0
    found.plan.validate()
    with pytest.raises(InputError, match="multiplexing off"):
        search_partition((1000, 777), pool, model=CostModel(allow_multiplex=False))


def test_memory_limits_make_plans_infeasible_and_raise_lambda() -> None:
    roomy = sized_pool("M", sizes=(256,), memory_mb=1e6)
    tight = sized_pool("M", sizes=(256,), memory_mb=8.0)
    model = CostModel()
    assert effective_lambda((1000, 1000), tight, 1e-2, model) > effective_lambda(
        (1000, 1000), roomy, 1e-2, model
    )
    assert effective_lambda((1000, 1000), roomy, 1e-2, model) == pytest.approx(1e-2, rel=1e-3)
    with pytest.raises(InputError, match="fits the pool"):
        search_partition((1000, 1000), tight)


def test_faster_device_of_equal_size_is_preferred() -> None:
    pool = DevicePool(
        (
            PoolDevice("slow", 256, 100, speed=1.0, pulse_s=1e-6),
            PoolDevice("fast", 256, 100, speed=4.0, pulse_s=1e-6),
        )
    )
    plan = adaptive_partition((700, 700), pool)
    assert {b.device for b in plan.blocks} == {"fast"}


def test_slow_pulses_favour_fewer_wider_arrays() -> None:
    fast = search_partition((1000, 777), sized_pool("M", sizes=SIZES, pulse_s=50e-9), lambda_mem=0.1)
    slow = search_partition((1000, 777), sized_pool("M", sizes=SIZES, pulse_s=300e-6), lambda_mem=0.1)
    # Row-parallel programming: wide arrays program more cells per pulse, which matters when pulses are slow.
    assert slow.plan.tiles < fast.plan.tiles
    assert fast.cost.utilization > slow.cost.utilization


def test_second_run_starts_from_the_pattern_ltm_learned(tmp_path: Path) -> None:
    pool = sized_pool("EpiRAM", sizes=SIZES, pulse_s=5e-6)
    key = "rough/dense-1024x1024/EpiRAM"
    mem = DualMemory.open(home=tmp_path)
    try:
        assert recall_pattern(mem, key) is None
        first = search_partition((1000, 777), pool)
        assert first.origin in {"search", "static"}
        assert record_outcome(mem, key, first.plan, {"program_s": 0.2, "relative_error": 1e-3})
        pattern = recall_pattern(mem, key)
        assert pattern is not None and pattern["tiles"] == sorted({b.tile for b in first.plan.blocks})
        second = search_partition((1000, 777), pool, start=pattern)
        assert second.origin == "ltm"
        assert second.plan == first.plan
        record = mem.recall_record("compute", "partition", key)
        assert record is not None and record.uses >= 1
    finally:
        mem.close()


def test_a_worse_outcome_does_not_replace_the_remembered_plan(tmp_path: Path) -> None:
    mem = DualMemory.open(home=tmp_path)
    try:
        good = static((300, 300), tile=128, device="d128")
        bad = static((300, 300), tile=512, device="d512")
        assert record_outcome(mem, "k", good, {"objective": 0.1})
        assert not record_outcome(mem, "k", bad, {"objective": 5.0})
        assert recall_pattern(mem, "k")["tiles"] == [128]  # type: ignore[index]
    finally:
        mem.close()


def test_tile_only_patterns_restrict_the_first_search() -> None:
    pool = sized_pool("M", sizes=SIZES)
    found = search_partition((1000, 777), pool, start={"tiles": [512, 64]})
    assert found.origin == "ltm-tiles"
    assert {b.tile for b in found.plan.blocks} <= {512, 64}
    found.plan.validate()


def test_stale_patterns_are_ignored() -> None:
    pool = sized_pool("M", sizes=SIZES)
    old = pattern_of(static((500, 500), tile=128, device="M-128"))
    assert plan_from_pattern(old, (1000, 777), pool) is None
    assert plan_from_pattern(old | {"shape": [500, 500]}, (500, 500), sized_pool("M", sizes=(256,))) is None
    assert plan_from_pattern({"shape": [2, 2], "blocks": [["x"]]}, (2, 2), pool) is None
    assert search_partition((1000, 777), pool, start=old).origin != "ltm"


def test_pattern_round_trip_keeps_the_plan() -> None:
    pool = sized_pool("M", sizes=SIZES)
    plan = adaptive_partition((1000, 777), pool)
    assert plan_from_pattern(pattern_of(plan), (1000, 777), pool) == plan


@pytest.mark.parametrize("sizes", [(64, 128, 256, 512, 1024), (17, 31, 64, 97, 129, 255, 513, 1000)])
def test_large_matrices_and_odd_sizes_are_planned_quickly(sizes: tuple[int, ...]) -> None:
    found = search_partition((65531, 65519), sized_pool("M", sizes=sizes, memory_mb=1e7))
    assert 0 < found.states < 20_000  # locked multiples keep the programme small for any sizes
    assert found.cost.utilization > 0.98
    assert found.cost.objective <= found.static_cost.objective


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 5)}, "empty"),
        ({"lambda_mem": -1.0}, "lambda_mem"),
        ({"lambda_mem": float("nan")}, "lambda_mem"),
        ({"pool": DevicePool(())}, "empty"),
        ({"pool": counted_pool((1, 4))}, "array_size"),
        ({"pool": counted_pool((64, 0))}, "count"),
        ({"pool": counted_pool((64, 1), speed=-1.0)}, "speed"),
        ({"pool": DevicePool((PoolDevice("a", 64, 1), PoolDevice("a", 128, 1)))}, "duplicate"),
        ({"model": CostModel(mvms=0)}, "mvms"),
    ],
)
def test_bad_inputs_raise_input_error(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"shape": (10, 10), "pool": sized_pool("M"), "lambda_mem": 1e-2} | kwargs
    with pytest.raises(InputError, match=match):
        search_partition(args.pop("shape"), args.pop("pool"), **args)  # type: ignore[arg-type]


def test_plan_cost_rejects_foreign_devices_and_wrong_tiles() -> None:
    pool = sized_pool("M", sizes=(64,))
    with pytest.raises(InputError, match="not in the pool"):
        plan_cost(static((10, 10), tile=64, device="other"), pool, lambda_mem=0.0, model=CostModel())
    with pytest.raises(InputError, match="uses tile 32"):
        plan_cost(static((10, 10), tile=32, device="M-64"), pool, lambda_mem=0.0, model=CostModel())


def test_load_pool_reads_yaml_and_names_bad_fields(tmp_path: Path) -> None:
    good = tmp_path / "pool.yaml"
    good.write_text(
        "devices:\n  - {name: big, array_size: 512, count: 2, material: EpiRAM, speed: 2}\n"
        "  - {name: small, array_size: 64, count: 40}\n"
    )
    pool = load_pool(good)
    assert pool.sizes == (64, 512) and pool.total_arrays == 42
    assert pool.devices[0].material == "EpiRAM" and pool.devices[0].speed == 2.0
    cases = {
        "devices:\n  - {name: a, count: 2}\n": "missing field 'array_size'",
        "devices:\n  - {name: a, array_size: 64, count: 2, colour: red}\n": "unknown field",
        "devices:\n  - {name: a, array_size: 64, count: 2, pulse_s: -1}\n": "pulse_s must be positive",
        "devices:\n  - {name: a, array_size: 64, count: 2, speed: fast}\n": "devices\\[0\\]",
        "nodes: []\n": "'devices' list",
        "devices: [1]\n": "not a mapping",
        "devices: [\n": "not valid YAML",
    }
    for text, match in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(InputError, match=match):
            load_pool(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_pool(tmp_path / "missing.yaml")


def test_utilisation_is_reported_for_every_plan() -> None:
    plan = PartitionPlan((3, 3), static((3, 3), tile=4, device="d").blocks, "static")
    assert plan.cell_utilization() == pytest.approx(9 / 16)
    found = search_partition((3, 3), sized_pool("M", sizes=(2, 4)), lambda_mem=1.0)
    assert found.cost.utilization == found.plan.cell_utilization()
    assert np.isclose(found.cost.as_dict()["utilization"], found.cost.utilization)


def test_device_pool_takes_pulse_width_and_max_tile_from_the_material() -> None:
    pool = device_pool(get_device("Ag-aSi"), sizes=(64, 512, 2048))
    assert pool.sizes == (64, 512)  # 2048 is above Ag-aSi's max_tile
    assert {d.pulse_s for d in pool.devices} == {300e-6}
    with pytest.raises(InputError, match="no array size"):
        device_pool(get_device("EpiRAM"), sizes=(4096,))


def test_heterogeneous_adaptive_plans_compute_a_x_exactly_on_ideal_crossbars() -> None:
    pool = DevicePool(
        (
            PoolDevice("big", 512, 2, "ideal"),
            PoolDevice("mid", 256, 4, "ideal", speed=2.0),
            PoolDevice("small", 64, 40, "ideal"),
        )
    )
    rng = np.random.default_rng(7)
    a, x = rng.random((1000, 777)), rng.random((777, 3))
    found = search_partition((1000, 777), pool)
    assert len({b.device for b in found.plan.blocks}) >= 2
    pm = program(a, plan=found.plan, device=device_models(pool, get_device), seed=0)
    try:
        y = pm.read(x, correction="none").raw
        assert pm.stats.cell_utilization == pytest.approx(found.cost.utilization)
    finally:
        pm.close()
    np.testing.assert_allclose(y, a @ x, rtol=2e-5)


def test_ltm_off_ablation_remembers_nothing(tmp_path: Path) -> None:
    mem = DualMemory.open(home=tmp_path, ltm=False)
    try:
        plan = static((300, 300), tile=128, device="d128")
        assert not record_outcome(mem, "k", plan, {"objective": 0.1})
        assert recall_pattern(mem, "k") is None
    finally:
        mem.close()
