from __future__ import annotations

from pathlib import Path

import pytest

from sedma.deploy.loader import load_cluster, load_workflow
from sedma.deploy.objective import build_problem
from sedma.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "deploy"

GOOD_WF = """\
name: qa
agents:
  - name: embedder
    image: registry.local/embedder:1.0
    cpu: 2
    memory: 4Gi
    depends_on:
      - {agent: retriever, data_gb: 1.5}
  - name: retriever
    image: registry.local/retriever:1.0
    cpu: 500m
    memory: 512Mi
"""

GOOD_CL = """\
nodes:
  - {name: n1, cpu: 32, memory: 128Gi, labels: {zone: a}}
  - {name: n2, cpu: 8, memory: 16Gi, labels: {zone: a}}
  - {name: n3, cpu: 8, memory: 16Gi, labels: {zone: b}}
links:
  default: {latency_ms: 1.0, bandwidth_gbps: 10}
  by_label:
    - {label: zone, latency_ms: 0.5, bandwidth_gbps: 20}
  pairs:
    - {a: n1, b: n2, latency_ms: 5, bandwidth_gbps: 1}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_examples_load_and_fit() -> None:
    wf = load_workflow(EXAMPLES / "workflow.yaml")
    cl = load_cluster(EXAMPLES / "cluster.yaml")
    assert wf.name == "qa-pipeline" and len(wf.agents) == 6
    assert build_problem(wf, cl).n == 6


def test_workflow_fields_parse(tmp_path: Path) -> None:
    wf = load_workflow(_write(tmp_path, "wf.yaml", GOOD_WF))
    emb, ret = wf.agents
    assert emb.cpu == 2 and emb.memory == 4 * 2**30
    assert ret.cpu == 0.5 and ret.memory == 512 * 2**20
    assert emb.depends_on[0].agent == "retriever" and emb.depends_on[0].data_gb == 1.5


def test_links_pairs_symmetric_then_labels_then_default(tmp_path: Path) -> None:
    cl = load_cluster(_write(tmp_path, "cl.yaml", GOOD_CL))
    assert cl.link("n2", "n1").cost == pytest.approx(5.0)  # explicit pair, either order
    assert cl.link("n1", "n3").cost == pytest.approx(0.1)  # default
    assert cl.link("n2", "n1") == cl.link("n1", "n2")
    cl2 = load_cluster(_write(tmp_path, "c2.yaml", GOOD_CL.replace("zone: b", "zone: a")))
    assert cl2.link("n2", "n3").cost == pytest.approx(0.025)  # shared zone label


WF_CASES = [
    ("unknown depends_on", GOOD_WF.replace("agent: retriever,", "agent: nobody,"), 8, "depends_on", "nobody"),
    (
        "duplicate name",
        GOOD_WF.replace("name: retriever", "name: embedder"),
        9,
        "agents[1].name",
        "duplicate",
    ),
    ("negative cpu", GOOD_WF.replace("cpu: 500m", "cpu: -1"), 11, "agents[1].cpu", ">"),
    ("malformed memory", GOOD_WF.replace("memory: 4Gi", "memory: 4Gx"), 6, "agents[0].memory", "malformed"),
    ("negative data", GOOD_WF.replace("data_gb: 1.5", "data_gb: -2"), 8, "data_gb", ">= 0"),
    (
        "missing image",
        GOOD_WF.replace("    image: registry.local/retriever:1.0\n", ""),
        9,
        "agents[1]",
        "image",
    ),
    (
        "unknown field",
        GOOD_WF.replace("    cpu: 2\n", "    cpu: 2\n    gpu: 1\n"),
        6,
        "agents[0].gpu",
        "unknown",
    ),
    (
        "cycle",
        GOOD_WF + "    depends_on:\n      - {agent: embedder, data_gb: 1}\n",
        14,
        "depends_on",
        "cycle",
    ),
    ("self dependency", GOOD_WF.replace("agent: retriever,", "agent: embedder,"), 8, "depends_on", "itself"),
    ("not a mapping", "- 1\n- 2\n", 1, "<root>", "mapping"),
    ("bad yaml", "name: [unclosed\n", 2, "", "invalid YAML"),
]


@pytest.mark.parametrize(("case", "text", "line", "field", "word"), WF_CASES, ids=[c[0] for c in WF_CASES])
def test_workflow_errors_name_file_line_field(
    tmp_path: Path, case: str, text: str, line: int, field: str, word: str
) -> None:
    path = _write(tmp_path, "wf.yaml", text)
    with pytest.raises(InputError) as err:
        load_workflow(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}"), msg
    assert field in msg and word in msg, msg


def test_cycles_allowed_when_declared(tmp_path: Path) -> None:
    text = "acyclic: false\n" + GOOD_WF + "    depends_on:\n      - {agent: embedder, data_gb: 1}\n"
    wf = load_workflow(_write(tmp_path, "wf.yaml", text))
    assert wf.acyclic is False


CL_CASES = [
    ("duplicate node", GOOD_CL.replace("name: n2", "name: n1"), 3, "nodes[1].name", "duplicate"),
    ("unknown pair node", GOOD_CL.replace("b: n2", "b: n9"), 10, "links.pairs[0].b", "unknown node"),
    (
        "zero bandwidth",
        GOOD_CL.replace("bandwidth_gbps: 10", "bandwidth_gbps: 0"),
        6,
        "bandwidth_gbps",
        "> 0",
    ),
    (
        "negative memory",
        GOOD_CL.replace("memory: 16Gi, labels: {zone: b}", "memory: -16Gi"),
        4,
        "memory",
        ">",
    ),
    ("malformed cpu", GOOD_CL.replace("cpu: 32", "cpu: lots"), 2, "nodes[0].cpu", "malformed"),
    (
        "duplicate key",
        GOOD_CL.replace("{name: n3, cpu: 8", "{name: n3, cpu: 8, cpu: 9"),
        4,
        "nodes[2]",
        "duplicate",
    ),
]


@pytest.mark.parametrize(("case", "text", "line", "field", "word"), CL_CASES, ids=[c[0] for c in CL_CASES])
def test_cluster_errors_name_file_line_field(
    tmp_path: Path, case: str, text: str, line: int, field: str, word: str
) -> None:
    path = _write(tmp_path, "cl.yaml", text)
    with pytest.raises(InputError) as err:
        load_cluster(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}"), msg
    assert field in msg and word in msg, msg


def test_agent_that_fits_no_node_is_located(tmp_path: Path) -> None:
    wf = load_workflow(_write(tmp_path, "wf.yaml", GOOD_WF.replace("cpu: 2\n", "cpu: 64\n")))
    cl = load_cluster(_write(tmp_path, "cl.yaml", GOOD_CL))
    with pytest.raises(InputError) as err:
        build_problem(wf, cl)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'wf.yaml'}:3: agents[0]") and "fits no node" in msg, msg


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_workflow(tmp_path / "absent.yaml")
