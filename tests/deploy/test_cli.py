from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sedma.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "deploy"
WF, CL, TL = (str(EXAMPLES / f) for f in ("workflow.yaml", "cluster.yaml", "timeline.yaml"))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "out"
    main(["deploy", "plan", WF, CL, "-o", str(out), "--json"])
    return out


def test_plan_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "deploy",
            "plan",
            WF,
            CL,
            "-o",
            str(tmp_path / "p"),
            "--solver",
            "local",
            "--time-limit",
            "0.3",
            "--json",
        ],
        capsys,
    )
    doc = json.loads(out)
    assert code == 0 and {"objective", "bound", "solver", "seconds", "placement"} <= doc.keys()
    assert doc["solver"] == "local" and doc["bound"] is None and doc["valid"]
    assert (tmp_path / "p" / "plan.md").exists() and (tmp_path / "p" / "manifests").is_dir()


def test_plan_human_output_names_bound_and_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["deploy", "plan", WF, CL, "-o", str(tmp_path / "p"), "--lambda-mem", "2"], capsys)
    assert code == 0 and "proven optimal" in out and "k8s-native" in out and "λ_mem 2" in out


def test_bad_input_is_one_red_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "wf.yaml"
    bad.write_text(
        Path(WF).read_text().replace("agent: retriever, data_gb: 1.5", "agent: nobody, data_gb: 1.5")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "sedma.cli", "deploy", "plan", str(bad), CL, "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:") and "nobody" in lines[0]
    assert "Traceback" not in proc.stderr


def test_explain_and_validate(plan_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["deploy", "explain", str(plan_dir), "--json"], capsys)
    rows = json.loads(out)
    assert code == 0 and {r["agent"] for r in rows} == {
        "gateway",
        "planner",
        "embedder",
        "retriever",
        "vector-db",
        "generator",
    }
    code, out, _ = run(["deploy", "explain", str(plan_dir), "--agent", "retriever"], capsys)
    assert code == 0 and "talks to vector-db" in out and "moving it alone" in out
    code, out, _ = run(["deploy", "validate", str(plan_dir), "--json"], capsys)
    assert code == 0 and json.loads(out)["valid"]
    code, _, err = run(["deploy", "explain", str(plan_dir), "--agent", "ghost"], capsys)
    assert code == 1 and "ghost" in err


def test_apply_dry_run_offline_prints_objects(
    plan_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    code, out, err = run(["deploy", "apply", str(plan_dir), "--dry-run"], capsys)
    assert code == 0 and "would create" in out and "kind: Deployment" in out and "not reachable" in err
    code, _, err = run(["deploy", "apply", str(plan_dir)], capsys)
    assert code == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_watch_simulation_writes_report_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["deploy", "watch", WF, CL, "--simulate", TL, "-o", str(tmp_path / "sim"), "--json"], capsys
    )
    doc = json.loads(out)
    assert code == 0 and set(doc["policies"]) == {"sedma", "k8s-native", "static"}
    assert (tmp_path / "sim" / "simulation.png").stat().st_size > 1000
    assert (tmp_path / "sim" / "simulation.json").exists()


def test_watch_metrics_file_fails_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = tmp_path / "metrics.prom"
    metrics.write_text('sedma_node_up{node="n1"} 0\nsedma_workflow_throughput{workflow="qa-pipeline"} 10\n')
    argv = ["deploy", "watch", WF, CL, "--metrics-file", str(metrics), "-o", str(tmp_path / "live")]
    code, out, _ = run([*argv, "--iterations", "2", "--interval", "0.01", "--json"], capsys)
    steps = [json.loads(x) for x in out.strip().splitlines()]
    assert code == 0 and steps[0]["action"] == "failover" and steps[0]["dead"] == ["n1"]
    placement = json.loads((tmp_path / "live" / "plan.json").read_text())["placement"]
    assert "n1" not in placement.values()


def test_watch_needs_exactly_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["deploy", "watch", WF, CL], capsys)
    assert code == 1 and "exactly one" in err
