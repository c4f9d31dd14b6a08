from __future__ import annotations

import json
from pathlib import Path

import pytest

from sedma.deploy.explain import explain
from sedma.deploy.loader import load_cluster, load_workflow
from sedma.deploy.planner import plan
from sedma.deploy.report import load_plan_dir, read_manifests, write_plan_dir
from sedma.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def _plan() -> object:
    return plan(
        load_workflow(EXAMPLES / "workflow.yaml"), load_cluster(EXAMPLES / "cluster.yaml"), memory=None
    )


def test_plan_directory_round_trips(tmp_path: Path) -> None:
    res = _plan()
    problems = write_plan_dir(res, tmp_path / "out", baselines={"k8s-native": 99.0})  # type: ignore[arg-type]
    assert problems == []
    doc = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert doc["validation"]["ok"] and doc["baselines"] == {"k8s-native": 99.0}
    back, _ = load_plan_dir(tmp_path / "out")
    assert back.placement == res.placement and back.objective == pytest.approx(res.objective)  # type: ignore[attr-defined]
    assert len(read_manifests(tmp_path / "out")) == 2 * len(back.placement)
    for agent in back.placement:
        docker = (tmp_path / "out" / "docker" / agent / "Dockerfile").read_text()
        assert docker.splitlines()[2].startswith("FROM registry.local/")
    md = (tmp_path / "out" / "plan.md").read_text()
    assert "objective (Eq. 11)" in md and "k8s-native" in md


def test_explain_gives_traffic_and_alternatives_consistent_with_objective(tmp_path: Path) -> None:
    res = _plan()
    rows = explain(res)  # type: ignore[arg-type]
    assert [r["agent"] for r in rows] == list(res.placement)  # type: ignore[attr-defined]
    for r in rows:
        assert r["node"] == res.placement[r["agent"]]  # type: ignore[attr-defined]
        assert {a["node"] for a in r["alternatives"]} | {r["node"]} == set(res.problem.nodes)  # type: ignore[attr-defined]
        # The plan is proven optimal: no single feasible move improves it.
        assert all(a["delta"] >= -1e-9 or not a["fits"] for a in r["alternatives"])
    comm = sum(t["cost"] for r in rows for t in r["traffic"]) / 2
    assert comm == pytest.approx(res.comm_cost)  # type: ignore[attr-defined]


def test_not_a_plan_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"plan\.json"):
        load_plan_dir(tmp_path)
    (tmp_path / "plan.json").write_text("{}")
    with pytest.raises(InputError, match="not a plan document"):
        load_plan_dir(tmp_path)
    with pytest.raises(InputError, match="manifests"):
        read_manifests(tmp_path)
