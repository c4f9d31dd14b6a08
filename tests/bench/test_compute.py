"""``sedma bench compute``: one tiny case measured for real, with the JSON keys of the contract."""

from __future__ import annotations

from pathlib import Path

from sedma.bench.compute import _plot, goals, run_case


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


def test_goals_are_judged_on_the_measured_cases() -> None:
    base = {"n": 1024, "batch": 32, "slowdown": 3.2, "program_s": 0.1, "rss_ratio": 4.5}
    big = base | {"n": 4096, "slowdown": 4.4, "program_s": 3.5, "rss_ratio": 6.2}
    verdict = {g: ok for g, _, ok in goals([base, big])}
    assert verdict["n=1024 B=32: slowdown <= 4x"] and not verdict["n=4096 B=32: slowdown <= 4x"]
    assert not verdict["program 4096² (B=32 run) <= 3 s"]
    assert not verdict["peak RSS growth <= 6x the matrix (worst case)"]
    assert all(ok for _, _, ok in goals([base]))  # no 4096 case (--quick): no programming goal line
