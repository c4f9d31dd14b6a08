from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sedma.deploy.controller import ControllerConfig
from sedma.deploy.loader import load_cluster, load_workflow
from sedma.deploy.simulate import load_timeline, simulate
from sedma.errors import InputError
from sedma.memory import DualMemory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "deploy"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("sim-home")
    mem = DualMemory.open(home=home)
    try:
        out = simulate(
            load_workflow(EXAMPLES / "workflow.yaml"),
            load_cluster(EXAMPLES / "cluster.yaml"),
            load_timeline(EXAMPLES / "timeline.yaml"),
            memory=mem,
            config=ControllerConfig(time_limit=1.0),
            sink_dir=home / "steps",
        )
        return {**out, "_steps": str(home / "steps")}
    finally:
        mem.close()


def _event(report: dict[str, Any], policy: str, kind: str) -> dict[str, Any]:
    return next(e for e in report["policies"][policy]["events"] if e["kind"] == kind)


def test_controller_adapts_to_the_phase_change(report: dict[str, Any]) -> None:
    ours, static = _event(report, "sedma", "phase"), _event(report, "static", "phase")
    assert ours["adaptation_s"] is not None and ours["adaptation_s"] < 60
    assert ours["retained"] > static["retained"]


def test_controller_survives_the_node_failure_faster_than_k8s(report: dict[str, Any]) -> None:
    ours = _event(report, "sedma", "node_failure")
    k8s = _event(report, "k8s-native", "node_failure")
    static = _event(report, "static", "node_failure")
    assert ours["adaptation_s"] is not None and ours["adaptation_s"] < 60
    assert k8s["adaptation_s"] is None or k8s["adaptation_s"] > ours["adaptation_s"]
    assert ours["throughput_after"] > 0 and static["throughput_after"] == 0.0
    assert ours["node"] == static["node"] == k8s["node"]  # "busiest" resolved once for all


def test_report_has_utilisation_series_and_written_steps(report: dict[str, Any]) -> None:
    for pol in report["policies"].values():
        assert 0 < pol["resource_utilisation"] <= 1
        assert len(pol["series"]["t"]) == len(pol["series"]["throughput"]) == 61
    assert report["policies"]["static"]["migrations"] == 0


def test_sink_wrote_one_valid_plan_directory_per_new_placement(report: dict[str, Any]) -> None:
    steps = sorted(Path(report["_steps"]).iterdir())
    assert steps[0].name == "step-000-t0"
    assert len(steps) == 1 + report["policies"]["sedma"]["replans"]
    for step in steps:
        doc = json.loads((step / "plan.json").read_text())
        assert doc["validation"]["ok"]


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("events:\n  - {t: 1, kind: meteor}\n", "kind"),
        ("events:\n  - {t: 1, kind: node_failure}\n", "node"),
        ("interval_s: -5\n", "interval_s"),
        ("events:\n  - {t: 1, kind: phase, agents: {x: -1}}\n", "agents.x"),
    ],
)
def test_timeline_errors_are_located(tmp_path: Path, text: str, word: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=word) as err:
        load_timeline(path)
    assert str(err.value).startswith(str(path) + ":")


def test_unknown_agent_or_node_in_events(tmp_path: Path) -> None:
    wf, cl = load_workflow(EXAMPLES / "workflow.yaml"), load_cluster(EXAMPLES / "cluster.yaml")
    path = tmp_path / "t.yaml"
    path.write_text("duration_s: 30\nevents:\n  - {t: 15, kind: node_failure, node: n9}\n")
    with pytest.raises(InputError, match="n9"):
        simulate(wf, cl, load_timeline(path), memory=None)
