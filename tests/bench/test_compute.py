"""``sedma bench compute``: one tiny case measured for real, with the JSON keys of the contract."""

from __future__ import annotations

from pathlib import Path

from sedma.bench.compute import _plot, run_case


def test_a_case_measures_ours_beside_numpy_and_plots(tmp_path: Path) -> None:
    case = run_case(96, 4, seed=0, budget_s=0.05, threads=1)
    for key in ("n", "batch", "mvm_per_s", "numpy_f32_mvm_per_s", "slowdown", "relative_error", "program_s",
                "peak_rss_mb"):  # fmt: skip
        assert key in case
    assert case["n"] == 96 and case["batch"] == 4
    assert case["mvm_per_s"] > 0 and case["numpy_f32_mvm_per_s"] > 0
    assert case["slowdown"] == case["numpy_f32_mvm_per_s"] / case["mvm_per_s"]
    assert 0 < case["relative_error"] < case["raw_relative_error"]
    assert case["peak_rss_mb"] > case["matrix_mb"] > 0
    _plot([case, case | {"batch": 8}], tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 1000
