from __future__ import annotations

import copy
from typing import Any

import pytest

from sedma.deploy.generator import random_cluster, random_workflow
from sedma.deploy.manifests import compile_plan, dns_name
from sedma.deploy.model import Agent, Workflow
from sedma.deploy.planner import plan
from sedma.deploy.validate import affinity_node, check_objects, schema_problems, semantic_problems
from sedma.errors import InputError


@pytest.fixture(scope="module")
def compiled() -> tuple[Any, list[dict[str, Any]]]:
    cl = random_cluster(5, seed=2)
    res = plan(random_workflow(12, cl, seed=2), cl, memory=None, solver="local", time_limit=0.2)
    return res, [o for pair in compile_plan(res).values() for o in pair]


@pytest.mark.parametrize("solver", ["exact", "local", "k8s-native", "greedy"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_generated_plan_passes_schema_and_semantic_checks(solver: str, seed: int) -> None:
    cl = random_cluster(4, seed=seed)
    res = plan(random_workflow(9, cl, seed=seed), cl, memory=None, solver=solver, time_limit=0.5)
    objs = compile_plan(res, namespace="agents")
    flat = [o for pair in objs.values() for o in pair]
    assert check_objects(flat, nodes={dns_name(a): n for a, n in res.placement.items()}) == []
    for agent, (dep, svc) in objs.items():
        assert affinity_node(dep) == res.placement[agent]
        assert dep["metadata"]["labels"]["sedma.io/plan-hash"] == res.digest
        assert dep["metadata"]["labels"]["sedma.io/workflow-hash"] == res.workflow.digest()
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert all(p["protocol"] == "TCP" for p in svc["spec"]["ports"])


def _broken(objs: list[dict[str, Any]], path: list[Any], value: Any) -> list[dict[str, Any]]:
    out = copy.deepcopy(objs)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


CONTAINER = [0, "spec", "template", "spec", "containers", 0]


@pytest.mark.parametrize(
    ("path", "value", "word"),
    [
        ([0, "spec", "selector", "matchLabels", "sedma.io/agent"], "other", "does not match"),
        ([*CONTAINER, "imagePullPolicy"], "Sometimes", "imagePullPolicy"),
        ([*CONTAINER, "resources", "limits", "memory"], "4Gx", "malformed quantity"),
        ([*CONTAINER, "ports", 0, "protocol"], "HTTP", "protocol"),
        ([0, "spec", "template", "spec", "restartPolicy"], "Never", "restartPolicy"),
        ([1, "spec", "selector", "sedma.io/agent"], "ghost", "matches no Deployment"),
        ([1, "spec", "type"], "Internal", "spec.type"),
        ([0, "metadata", "name"], "Bad_Name", "DNS-1035"),
    ],
)
def test_semantic_checks_catch_what_the_schema_misses(
    compiled: tuple[Any, list[dict[str, Any]]], path: list[Any], value: Any, word: str
) -> None:
    _, objs = compiled
    bad = _broken(objs, path, value)
    found = semantic_problems(bad)
    assert any(word in p for p in found), found


def test_schema_check_rejects_unknown_fields(compiled: tuple[Any, list[dict[str, Any]]]) -> None:
    _, objs = compiled
    bad = _broken(objs, [0, "spec", "replicaz"], 2)
    assert schema_problems(bad[0]) and "replicaz" in schema_problems(bad[0])[0]
    assert schema_problems(objs[0]) == []


def test_affinity_must_name_the_plans_node(compiled: tuple[Any, list[dict[str, Any]]]) -> None:
    res, objs = compiled
    nodes = {dns_name(a): n for a, n in res.placement.items()}
    first = objs[0]["metadata"]["name"]
    wrong = {**nodes, first: "elsewhere"}
    assert any("node affinity" in p for p in check_objects(objs, nodes=wrong))


def test_names_are_dns_labels_and_collisions_are_errors() -> None:
    assert dns_name("Vector_DB") == "vector-db"
    assert dns_name("1st") == "a-1st"
    assert len(dns_name("x" * 100)) <= 63
    cl = random_cluster(2, seed=0)
    clash = Workflow("w", (Agent("Foo", "img:1", 1.0, 2.0**30), Agent("foo", "img:1", 1.0, 2.0**30)))
    res = plan(clash, cl, memory=None, solver="greedy")
    with pytest.raises(InputError, match="both map"):
        compile_plan(res)
    with pytest.raises(InputError, match="namespace"):
        compile_plan(res, namespace="Bad NS")


def test_cached_schema_check_agrees_with_kubernetes_validate(
    compiled: tuple[Any, list[dict[str, Any]]],
) -> None:
    import kubernetes_validate

    from sedma.deploy.validate import K8S_VERSION

    _, objs = compiled
    cases = [
        objs[0],
        objs[1],
        _broken(objs, [0, "spec", "replicaz"], 2)[0],
        _broken(objs, [1, "spec", "ports"], 5)[1],
    ]
    for obj in cases:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            theirs = True
        except kubernetes_validate.ValidationError:
            theirs = False
        assert theirs == (schema_problems(obj) == [])
