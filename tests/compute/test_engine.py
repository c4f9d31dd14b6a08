"""engine.process: Algorithm 1 lines 1–8, learning λ and partition across runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sedma.compute.crossbar import CrossbarConfig
from sedma.compute.engine import ComputeOptions, process
from sedma.compute.images import BlurSpec, blur_workload, gaussian_band
from sedma.errors import InputError
from sedma.memory import DualMemory

FAST = CrossbarConfig(probes=2)


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[DualMemory]:
    m = DualMemory.open(home=tmp_path)
    yield m
    m.close()


def _opts(**kw: object) -> ComputeOptions:
    base: dict[str, object] = {"tile": 128, "crossbar": FAST, "time_reads": False}
    base.update(kw)
    return ComputeOptions(**base)  # type: ignore[arg-type]


def test_adaptive_lambda_is_zero_on_random_and_helps_on_blur(mem: DualMemory) -> None:
    rng = np.random.default_rng(0)
    rand = process(rng.random((256, 256)), rng.random((256, 2)), memory=mem, options=_opts())
    # A 1-D Gaussian blur (σ = 4 samples) of the flattened scikit-learn photos: smooth outputs.
    a = gaussian_band(256, 4.0).toarray()
    x = blur_workload(BlurSpec(16, 16, 1.5))[1]
    blur = process(a, x, memory=mem, options=_opts())
    assert rand.lam is not None and rand.lam <= 1e-3
    assert blur.lam is not None and blur.lam > 10 * max(rand.lam, 1e-6)
    assert blur.relative_error["full"] < blur.relative_error["first_order"] < blur.relative_error["raw"]
    assert blur.workload["kind"] == "smooth" and rand.workload["kind"] == "rough"


def test_second_run_starts_from_what_ltm_learned(mem: DualMemory) -> None:
    a, x = blur_workload(BlurSpec(16, 16, 1.5))
    first = process(a, x, memory=mem, options=_opts(partition="adaptive"))
    assert first.memory == {"lambda_memory": None, "partition_memory": None}
    second = process(a, x, memory=mem, options=_opts(partition="adaptive"))
    assert second.memory["lambda_memory"] == first.lam
    assert second.memory["partition_memory"]["tiles"] == first.partition["tile_sizes"]
    assert second.partition["origin"] == "ltm"
    assert second.lambda_decision is not None and second.lambda_decision["source"] == "memory+recent"


def test_ablations_fixed_lambda_no_memory_no_correction(mem: DualMemory) -> None:
    rng = np.random.default_rng(1)
    a, x = rng.random((100, 90)), rng.random(90)
    fixed = process(a, x, memory=mem, options=_opts(lam=1e-12, use_memory=False))
    assert fixed.lam == 1e-12 and fixed.lambda_decision is None
    assert fixed.memory == {"lambda_memory": None, "partition_memory": None}
    assert mem.ltm is not None and mem.ltm.count() == 0
    raw = process(a, x, memory=None, options=_opts(correction="none"))
    assert raw.relative_error["first_order"] is None and raw.lam is None
    assert raw.y.shape == (100,)


def test_report_dict_has_the_cli_contract_keys(mem: DualMemory) -> None:
    rng = np.random.default_rng(2)
    out = process(rng.random((64, 64)), rng.random(64), memory=mem, options=_opts(time_reads=True))
    d = out.as_dict()
    for key in ("relative_error", "lambda", "mvm_per_s", "program_s", "program_iterations", "tiles",
                "cell_utilization", "energy_j", "latency_s"):  # fmt: skip
        assert key in d
    assert set(d["relative_error"]) == {"raw", "first_order", "full"}
    assert d["mvm_per_s"] > 0 and d["tiles"] == 1


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ({"partition": "diagonal"}, "partition must be"),
        ({"correction": "second"}, "correction must be"),
        ({"lam": -1.0}, "lambda must be"),
        ({"lam": "auto"}, "lambda must be"),
        ({"material": "Gold"}, "unknown material"),
        ({"tile": 4096}, "above the maximum 1024"),
        ({"alpha": 2.0}, "alpha"),
    ],
)
def test_bad_options_are_refused(opts: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        process(np.ones((4, 4)), np.ones(4), memory=None, options=_opts(**opts))


def test_adaptive_partition_over_a_heterogeneous_pool_file(tmp_path: Path) -> None:
    pool = tmp_path / "pool.yaml"
    pool.write_text(
        "devices:\n"
        "  - {name: epi-64, array_size: 64, count: 4, material: EpiRAM}\n"
        "  - {name: taox-128, array_size: 128, count: 64, material: TaOx-HfOy}\n"
    )
    rng = np.random.default_rng(3)
    out = process(rng.random((200, 150)), rng.random(150), memory=None,
                  options=_opts(partition="adaptive", pool_file=str(pool)))  # fmt: skip
    assert out.partition["strategy"] == "adaptive" and out.tiles >= 2
    assert set(out.program["per_device"]) <= {"EpiRAM", "TaOx-HfOy"}
    assert out.relative_error["full"] < out.relative_error["raw"]


def test_ray_address_selects_ray_unless_the_executor_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEDMA_RAY_ADDRESS", raising=False)
    assert ComputeOptions().executor_kind() == "local"
    monkeypatch.setenv("SEDMA_RAY_ADDRESS", "127.0.0.1:6379")
    assert ComputeOptions().executor_kind() == "ray"
    assert ComputeOptions(executor="local").executor_kind() == "local"


def test_row_aware_l_lets_adaptive_lambda_help_on_the_2d_photos() -> None:
    a, x = blur_workload(BlurSpec(32, 32, 1.5))  # 2-D blur of the two photos, flattened row-major
    runs = {}
    for rows in (False, True):
        opts = _opts(tile=256, image_rows=rows, crossbar=CrossbarConfig(probes=4))
        runs[rows] = process(a, x, memory=None, options=opts)
    flat, aware = runs[False], runs[True]
    assert aware.workload["row_width"] == 32
    assert aware.lam is not None and flat.lam is not None and aware.lam > flat.lam
    # The row-aware L removes several times more of the first-order error than the flat one.
    gain = lambda r: 1 - r.relative_error["full"] / r.relative_error["first_order"]  # noqa: E731
    assert gain(aware) > 0.05 and gain(aware) > 3 * gain(flat)
