"""Compilation of a plan into Kubernetes objects: one Deployment and one Service per agent."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sedma.deploy.model import Agent
from sedma.deploy.planner import Plan
from sedma.deploy.quantity import format_cpu, format_memory
from sedma.errors import InputError

HOSTNAME_LABEL = "kubernetes.io/hostname"
LABEL_PREFIX = "sedma.io/"
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def dns_name(name: str) -> str:
    """A DNS-1035 label for ``name`` (lowercase, '-', starts with a letter, <= 63 chars)."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not out or not out[0].isalpha():
        out = "a-" + out
    if len(out) > 63:
        out = out[:54].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return out


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    out = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")
    return out


def selector_labels(plan: Plan, agent: Agent) -> dict[str, str]:
    """Labels a Deployment selects on: stable across re-plans (selectors are immutable)."""
    return {
        LABEL_PREFIX + "workflow": label_value(plan.workflow.name),
        LABEL_PREFIX + "agent": label_value(agent.name),
    }


def object_labels(plan: Plan, agent: Agent) -> dict[str, str]:
    """Labels tracing every object back to its workflow, workflow hash and plan hash."""
    return {
        **selector_labels(plan, agent),
        LABEL_PREFIX + "workflow-hash": plan.workflow.digest(),
        LABEL_PREFIX + "plan-hash": plan.digest,
        "app.kubernetes.io/name": label_value(agent.name),
        "app.kubernetes.io/part-of": label_value(plan.workflow.name),
        "app.kubernetes.io/managed-by": "sedma",
    }


def _container(plan: Plan, agent: Agent) -> dict[str, Any]:
    resources = {"cpu": format_cpu(agent.cpu), "memory": format_memory(agent.memory)}
    deps = ",".join(f"{dns_name(d.agent)}:{_agent(plan, d.agent).port}" for d in agent.depends_on)
    return {
        "name": "agent",
        "image": agent.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "agent", "containerPort": agent.port, "protocol": "TCP"}],
        # requests = limits: the placement reserved exactly this much (Guaranteed QoS).
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "env": [
            {"name": "SEDMA_AGENT", "value": agent.name},
            {"name": "SEDMA_WORKFLOW", "value": plan.workflow.name},
            {"name": "SEDMA_PLAN_HASH", "value": plan.digest},
            {"name": "SEDMA_DEPENDENCIES", "value": deps},
        ],
    }


def _agent(plan: Plan, name: str) -> Agent:
    return next(a for a in plan.workflow.agents if a.name == name)


def deployment(plan: Plan, agent: Agent, *, namespace: str) -> dict[str, Any]:
    """The Deployment of one agent, pinned to its node by required node affinity."""
    node = plan.placement[agent.name]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}
                ]
            }
        }
    }
    labels = object_labels(plan, agent)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": dns_name(agent.name), "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector_labels(plan, agent)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "affinity": affinity,
                    "containers": [_container(plan, agent)],
                    "restartPolicy": "Always",
                },
            },
        },
    }


def service(plan: Plan, agent: Agent, *, namespace: str) -> dict[str, Any]:
    """The ClusterIP Service of one agent; ``protocol`` is always set (server-side apply needs it)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": dns_name(agent.name),
            "namespace": namespace,
            "labels": object_labels(plan, agent),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(plan, agent),
            "ports": [{"name": "agent", "port": agent.port, "targetPort": agent.port, "protocol": "TCP"}],
        },
    }


def compile_plan(plan: Plan, *, namespace: str = "default") -> dict[str, list[dict[str, Any]]]:
    """Per agent name: its [Deployment, Service]; distinct agents must get distinct DNS names."""
    if not _DNS1035.match(namespace) or len(namespace) > 63:
        raise InputError(f"namespace {namespace!r} is not a DNS-1035 label")
    seen: dict[str, str] = {}
    out: dict[str, list[dict[str, Any]]] = {}
    for agent in plan.workflow.agents:
        name = dns_name(agent.name)
        if name in seen:
            raise InputError(
                f"agents {seen[name]!r} and {agent.name!r} both map to the Kubernetes name {name!r}"
            )
        seen[name] = agent.name
        out[agent.name] = [
            deployment(plan, agent, namespace=namespace),
            service(plan, agent, namespace=namespace),
        ]
    return out
