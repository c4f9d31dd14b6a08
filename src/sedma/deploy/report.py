"""A plan directory: manifests, Dockerfiles, plan.json and plan.md; and reading one back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sedma.deploy.dockerfile import dockerfile
from sedma.deploy.manifests import compile_plan, dns_name
from sedma.deploy.model import cluster_from_dict, cluster_to_dict, workflow_from_dict, workflow_to_dict
from sedma.deploy.objective import build_problem, loads, objective
from sedma.deploy.planner import Plan
from sedma.deploy.validate import check_objects
from sedma.errors import InputError

GI = 2.0**30


def write_plan_dir(
    plan: Plan, out: str | Path, *, namespace: str = "default", baselines: dict[str, float] | None = None
) -> list[str]:
    """Compile, validate and write everything for ``plan`` under ``out``; returns problems found."""
    root = Path(out)
    objects = compile_plan(plan, namespace=namespace)
    flat = [o for pair in objects.values() for o in pair]
    problems = check_objects(flat, nodes={dns_name(a): plan.placement[a] for a in objects})
    try:
        (root / "manifests").mkdir(parents=True, exist_ok=True)
        for agent in plan.workflow.agents:
            name = dns_name(agent.name)
            text = yaml.safe_dump_all(objects[agent.name], sort_keys=False)
            (root / "manifests" / f"{name}.yaml").write_text(text)
            (root / "docker" / name).mkdir(parents=True, exist_ok=True)
            (root / "docker" / name / "Dockerfile").write_text(dockerfile(plan, agent))
        doc = plan_document(plan, namespace=namespace, baselines=baselines or {}, problems=problems)
        (root / "plan.json").write_text(json.dumps(doc, indent=2) + "\n")
        (root / "plan.md").write_text(markdown(plan, baselines or {}, problems))
    except OSError as exc:
        raise InputError(f"{root}: cannot write plan directory: {exc.strerror}") from None
    return problems


def plan_document(
    plan: Plan, *, namespace: str, baselines: dict[str, float], problems: list[str]
) -> dict[str, Any]:
    """plan.json: the plan's JSON plus its inputs, so the directory is self-contained."""
    return {
        **plan.to_json(),
        "namespace": namespace,
        "baselines": baselines,
        "validation": {"ok": not problems, "problems": problems},
        "inputs": {"workflow": workflow_to_dict(plan.workflow), "cluster": cluster_to_dict(plan.cluster)},
    }


def load_plan_dir(path: str | Path) -> tuple[Plan, dict[str, Any]]:
    """Rebuild the Plan stored in ``path/plan.json`` (and return the raw document)."""
    file = Path(path) / "plan.json"
    try:
        doc = json.loads(file.read_text())
        wf = workflow_from_dict(doc["inputs"]["workflow"])
        cl = cluster_from_dict(doc["inputs"]["cluster"])
        placement = {str(k): str(v) for k, v in doc["placement"].items()}
        lam = float(doc["lambda_mem"])
    except OSError as exc:
        raise InputError(
            f"{file}: cannot read: {exc.strerror} (is it a 'sedma deploy plan' directory?)"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{file}: not a plan document ({exc})") from None
    problem = build_problem(wf, cl, lam=lam)
    if set(placement) != set(problem.agents) or not set(placement.values()) <= set(problem.nodes):
        raise InputError(f"{file}: placement does not match its workflow and cluster")
    idx = {n: k for k, n in enumerate(problem.nodes)}
    arr = np.array([idx[placement[a]] for a in problem.agents], dtype=np.int64)
    bound = doc.get("bound")
    plan = Plan(
        workflow=wf,
        cluster=cl,
        problem=problem,
        placement=placement,
        objective=objective(problem, arr),
        bound=None if bound is None else float(bound),
        solver=str(doc.get("solver", "?")),
        seconds=float(doc.get("seconds", 0.0)),
        lambda_mem=lam,
        lambda_source=str(doc.get("lambda_source", "fixed")),
        optimal=bool(doc.get("optimal", False)),
    )
    return plan, doc


def read_manifests(path: str | Path) -> list[dict[str, Any]]:
    """Every object in ``path/manifests/*.yaml``, in file order."""
    folder = Path(path) / "manifests"
    if not folder.is_dir():
        raise InputError(f"{folder}: no manifests folder (is it a 'sedma deploy plan' directory?)")
    objs: list[dict[str, Any]] = []
    for file in sorted(folder.glob("*.yaml")):
        try:
            objs += [d for d in yaml.safe_load_all(file.read_text()) if d]
        except yaml.YAMLError as exc:
            raise InputError(f"{file}: invalid YAML: {exc}") from None
    return objs


def markdown(plan: Plan, baselines: dict[str, float], problems: list[str]) -> str:
    """The human report: summary, per-node load, placement, baselines, validation."""
    pb, p = plan.problem, plan.array
    cpu, mem = loads(pb, p)
    bound = "no bound" if plan.bound is None else f"{plan.bound:.6g} ({plan.bound_status})"
    lines = [
        f"# Deployment plan for `{plan.workflow.name}`",
        "",
        f"- plan hash `{plan.digest}`, workflow hash `{plan.workflow.digest()}`",
        f"- objective (Eq. 11) **{plan.objective:.6g}** = communication {plan.comm_cost:.6g}"
        f" + λ_mem {plan.lambda_mem:.4g} × memory overhead {plan.memory_overhead:.6g}",
        f"- bound: {bound}; solver `{plan.solver}` in {plan.seconds:.3f} s; λ_mem {plan.lambda_source}",
        "",
        "| node | agents | cpu | memory |",
        "| --- | --- | --- | --- |",
    ]
    for k, node in enumerate(pb.nodes):
        names = ", ".join(a for a, q in zip(pb.agents, p, strict=True) if q == k) or "-"
        cpu_txt = f"{cpu[k]:.3g} / {pb.cap_cpu[k]:.3g} ({100 * cpu[k] / pb.cap_cpu[k]:.0f}%)"
        mem_txt = f"{mem[k] / GI:.3g}Gi / {pb.cap_mem[k] / GI:.3g}Gi ({100 * mem[k] / pb.cap_mem[k]:.0f}%)"
        lines.append(f"| {node} | {names} | {cpu_txt} | {mem_txt} |")
    if baselines:
        lines += ["", "| policy | objective | vs this plan |", "| --- | --- | --- |"]
        for name, value in baselines.items():
            lines.append(f"| {name} | {value:.6g} | {value / max(plan.objective, 1e-12):.2f}× |")
    lines += ["", "## Validation", ""]
    lines += [f"- {x}" for x in problems] or [
        "- schema (kubernetes-validate) and semantic checks: all passed"
    ]
    return "\n".join(lines) + "\n"
