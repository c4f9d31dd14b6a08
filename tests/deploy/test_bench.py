from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.progress import Progress

from sedma.bench.deploy import BenchConfig, exact_sweep, goals, plot, run_case
from sedma.deploy.local_search import LocalSearchConfig, local_search


def test_bench_case_runs_every_solver_and_judges_goals(tmp_path: Path) -> None:
    cfg = BenchConfig(seed=1, reference=0.3)
    with Progress(disable=True) as progress:
        task = progress.add_task("t", total=1)
        case = run_case(12, 4, cfg, progress, task)
    solvers = [r["solver"] for r in case["runs"]]
    assert solvers[:4] == ["k8s-native", "greedy", "local", "exact"] and solvers[4].startswith("reference")
    assert all(r["feasible"] for r in case["runs"])
    assert min(r["gap"] for r in case["runs"]) == 0.0
    by = {r["solver"]: r for r in case["runs"]}
    assert by["local"]["objective"] <= by["k8s-native"]["objective"] + 1e-9
    assert by["exact"]["proven_optimal"] and by["exact"]["gap"] == 0.0
    verdict = goals([case])
    assert verdict == {"12x4 proven optimal <= 1 s": by["exact"]["seconds"] <= 1.0}
    assert plot([case], tmp_path / "p.png").stat().st_size > 1000


def test_reference_is_the_classic_search_and_ours_runs_beside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sedma.bench.deploy as bench

    seen: list[bool] = []

    def recording(pb: Any, starts: Any, config: LocalSearchConfig) -> Any:
        seen.append(config.multilevel)
        return local_search(pb, starts, config)

    monkeypatch.setattr(bench, "local_search", recording)
    with Progress(disable=True) as progress:
        task = progress.add_task("t", total=1)
        case = run_case(30, 6, BenchConfig(seed=2, reference=0.3), progress, task)
    # REFERENCES.md's solver class (no zone start, V-cycles or exact moves), then ours in full.
    assert seen == [False, True]
    names = [r["solver"] for r in case["runs"]]
    assert names[-2].startswith("reference") and names[-1].startswith("self-reference")
    assert case["reference"] == case["runs"][-2]["objective"]
    assert case["self_reference"] == case["runs"][-1]["objective"]
    assert all(r["feasible"] for r in case["runs"])
    assert "30x6 <= 1 s at or below reference" in goals([case])


def test_exact_sweep_judges_every_seed() -> None:
    sweep = exact_sweep(BenchConfig(seed=3), size=(10, 4), seeds=3)
    assert [r["seed"] for r in sweep["runs"]] == [3, 4, 5]
    assert sweep["goal"] == "10x4 proven optimal <= 1 s on seeds 3-5"
    assert sweep["met"] == all(r["proven_optimal"] and r["seconds"] <= 1.0 for r in sweep["runs"])
    assert all(r["bound"] is not None and r["bound"] <= r["objective"] + 1e-9 for r in sweep["runs"])
