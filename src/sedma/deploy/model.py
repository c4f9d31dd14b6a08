"""Workflow and cluster descriptions (the YAML inputs of issue 4) as frozen dataclasses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sedma.errors import InputError


@dataclass(frozen=True)
class Dependency:
    """One edge of the workflow graph: expected data exchanged with ``agent`` in GB (Eq. 12)."""

    agent: str
    data_gb: float


@dataclass(frozen=True)
class Agent:
    """An agent: container image, CPU in cores, memory in bytes, its dependencies."""

    name: str
    image: str
    cpu: float
    memory: float
    depends_on: tuple[Dependency, ...] = ()
    port: int = 8080
    source: str = field(default="", compare=False)  # "file:line: agents[i]" for located errors

    @property
    def where(self) -> str:
        """Prefix for errors about this agent: its source location, else its name."""
        return self.source or f"agent {self.name!r}"

    def validate(self) -> None:
        """Raise InputError for values no scheduler could use."""
        if self.cpu <= 0 or self.memory <= 0:
            raise InputError(f"{self.where}: cpu and memory must be > 0")
        if not 1 <= self.port <= 65535:
            raise InputError(f"{self.where}: port {self.port} outside 1..65535")


@dataclass(frozen=True)
class Workflow:
    """A named graph of agents; ``acyclic`` forbids dependency cycles."""

    name: str
    agents: tuple[Agent, ...]
    acyclic: bool = True

    def validate(self) -> None:
        """Check names are unique and every dependency names a known agent."""
        names = [a.name for a in self.agents]
        if not names:
            raise InputError(f"workflow {self.name!r}: no agents")
        if len(set(names)) != len(names):
            raise InputError(f"workflow {self.name!r}: duplicate agent names")
        for agent in self.agents:
            agent.validate()
            for dep in agent.depends_on:
                if dep.agent not in names:
                    raise InputError(f"agent {agent.name!r}: depends_on unknown agent {dep.agent!r}")

    @property
    def names(self) -> list[str]:
        """Agent names in file order."""
        return [a.name for a in self.agents]

    def digest(self) -> str:
        """Stable hash of the graph and demands: the LTM key of this workflow's placements."""
        body = {
            "name": self.name,
            "agents": [
                [a.name, a.image, a.cpu, a.memory, [[d.agent, d.data_gb] for d in a.depends_on]]
                for a in self.agents
            ],
        }
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Node:
    """A cluster node: allocatable cores and memory bytes, and its labels."""

    name: str
    cpu: float
    memory: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    """A symmetric network link: latency in ms and bandwidth in Gbps (Eq. 13)."""

    latency_ms: float
    bandwidth_gbps: float

    @property
    def cost(self) -> float:
        """network_cost = latency · bandwidth⁻¹ (Eq. 13)."""
        return self.latency_ms / self.bandwidth_gbps


@dataclass(frozen=True)
class LabelLink:
    """Topology rule: nodes sharing the value of ``label`` talk over ``link``."""

    label: str
    link: Link


@dataclass(frozen=True)
class Cluster:
    """Nodes plus links: explicit pairs, then shared-label rules in order, then the default."""

    nodes: tuple[Node, ...]
    default: Link = Link(1.0, 10.0)
    pairs: Mapping[tuple[str, str], Link] = field(default_factory=dict)
    by_label: tuple[LabelLink, ...] = ()

    @property
    def names(self) -> list[str]:
        """Node names in file order."""
        return [n.name for n in self.nodes]

    def link(self, a: str, b: str) -> Link:
        """The link between nodes ``a`` and ``b`` (pairs are symmetric)."""
        pair = self.pairs.get((a, b)) or self.pairs.get((b, a))
        if pair is not None:
            return pair
        na, nb = self.node(a), self.node(b)
        for rule in self.by_label:
            value = na.labels.get(rule.label)
            if value is not None and value == nb.labels.get(rule.label):
                return rule.link
        return self.default

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise InputError(f"unknown node {name!r}")

    def without(self, dead: set[str]) -> Cluster:
        """The same cluster with the ``dead`` nodes removed (node failure)."""
        live = tuple(n for n in self.nodes if n.name not in dead)
        if not live:
            raise InputError("every node has failed")
        return Cluster(nodes=live, default=self.default, pairs=self.pairs, by_label=self.by_label)


def workflow_to_dict(workflow: Workflow) -> dict[str, Any]:
    """Plain-data form of a workflow (stored in plan.json so a plan directory is self-contained)."""
    return {
        "name": workflow.name,
        "acyclic": workflow.acyclic,
        "agents": [
            {
                "name": a.name,
                "image": a.image,
                "cpu": a.cpu,
                "memory": a.memory,
                "port": a.port,
                "depends_on": [{"agent": d.agent, "data_gb": d.data_gb} for d in a.depends_on],
            }
            for a in workflow.agents
        ],
    }


def workflow_from_dict(data: Mapping[str, Any]) -> Workflow:
    """Inverse of :func:`workflow_to_dict`."""
    try:
        agents = tuple(
            Agent(
                name=str(a["name"]),
                image=str(a["image"]),
                cpu=float(a["cpu"]),
                memory=float(a["memory"]),
                port=int(a.get("port", 8080)),
                depends_on=tuple(Dependency(str(d["agent"]), float(d["data_gb"])) for d in a["depends_on"]),
            )
            for a in data["agents"]
        )
        wf = Workflow(name=str(data["name"]), agents=agents, acyclic=bool(data.get("acyclic", True)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed workflow record: {exc}") from None
    wf.validate()
    return wf


def _link_dict(link: Link) -> dict[str, float]:
    return {"latency_ms": link.latency_ms, "bandwidth_gbps": link.bandwidth_gbps}


def cluster_to_dict(cluster: Cluster) -> dict[str, Any]:
    """Plain-data form of a cluster."""
    return {
        "nodes": [
            {"name": n.name, "cpu": n.cpu, "memory": n.memory, "labels": dict(n.labels)}
            for n in cluster.nodes
        ],
        "links": {
            "default": _link_dict(cluster.default),
            "pairs": [{"a": a, "b": b, **_link_dict(lk)} for (a, b), lk in cluster.pairs.items()],
            "by_label": [{"label": r.label, **_link_dict(r.link)} for r in cluster.by_label],
        },
    }


def cluster_from_dict(data: Mapping[str, Any]) -> Cluster:
    """Inverse of :func:`cluster_to_dict`."""
    try:
        links = data["links"]

        def mk(d: Mapping[str, Any]) -> Link:
            return Link(float(d["latency_ms"]), float(d["bandwidth_gbps"]))

        return Cluster(
            nodes=tuple(
                Node(str(n["name"]), float(n["cpu"]), float(n["memory"]), dict(n.get("labels", {})))
                for n in data["nodes"]
            ),
            default=mk(links["default"]),
            pairs={(str(p["a"]), str(p["b"])): mk(p) for p in links.get("pairs", [])},
            by_label=tuple(LabelLink(str(r["label"]), mk(r)) for r in links.get("by_label", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed cluster record: {exc}") from None
