"""YAML loading of workflows and clusters; every error names file, line and field."""

from __future__ import annotations

from pathlib import Path

import yaml

from sedma.deploy.model import Agent, Cluster, Dependency, LabelLink, Link, Node, Workflow
from sedma.deploy.quantity import parse_quantity
from sedma.errors import InputError

_NUM_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Src:
    """A YAML node with its source file and dotted field path, for located errors."""

    def __init__(self, path: str, node: yaml.Node, field: str) -> None:
        self.path, self.node, self.field = path, node, field

    def error(self, message: str) -> InputError:
        line = self.node.start_mark.line + 1
        return InputError(f"{self.path}:{line}: {self.field or '<root>'}: {message}")

    def _child(self, node: yaml.Node, name: str) -> _Src:
        sep = "" if not self.field or name.startswith("[") else "."
        return _Src(self.path, node, f"{self.field}{sep}{name}")

    def mapping(self) -> dict[str, _Src]:
        """The fields of a mapping; duplicate keys are an error."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error("expected a mapping")
        out: dict[str, _Src] = {}
        for key, value in self.node.value:
            name = str(key.value)
            if name in out:
                raise _Src(self.path, key, self.field).error(f"duplicate key {name!r}")
            out[name] = self._child(value, name)
        return out

    def items(self) -> list[_Src]:
        """The elements of a sequence."""
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error("expected a list")
        return [self._child(v, f"[{i}]") for i, v in enumerate(self.node.value)]

    def text(self) -> str:
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag != "tag:yaml.org,2002:str":
            raise self.error("expected a string")
        if not self.node.value:
            raise self.error("must not be empty")
        return str(self.node.value)

    def number(self, *, positive: bool = True) -> float:
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag not in _NUM_TAGS:
            raise self.error(f"expected a number, got {self._shown()}")
        return self._checked(float(self.node.value.replace("_", "")), positive)

    def quantity(self, *, positive: bool = True) -> float:
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error("expected a quantity such as 4Gi or 500m")
        try:
            value = parse_quantity(str(self.node.value))
        except ValueError:
            raise self.error(f"malformed quantity {self._shown()}") from None
        return self._checked(value, positive)

    def _checked(self, value: float, positive: bool) -> float:
        if value != value or value in (float("inf"), float("-inf")):
            raise self.error("must be finite")
        if value < 0 or (positive and value == 0):
            raise self.error(f"must be {'> 0' if positive else '>= 0'}, got {self._shown()}")
        return value

    def _shown(self) -> str:
        return repr(self.node.value) if isinstance(self.node, yaml.ScalarNode) else "a collection"


def _load(path: str | Path) -> _Src:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{p}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        raise InputError(f"{p}: empty file")
    return _Src(str(p), node, "")


def _require(fields: dict[str, _Src], owner: _Src, name: str) -> _Src:
    if name not in fields:
        raise owner.error(f"missing field {name!r}")
    return fields[name]


def _unknown(fields: dict[str, _Src], allowed: set[str]) -> None:
    for name, src in fields.items():
        if name not in allowed:
            raise src.error(f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _dependency(src: _Src) -> tuple[Dependency, _Src]:
    f = src.mapping()
    _unknown(f, {"agent", "data_gb"})
    agent = _require(f, src, "agent")
    data = _require(f, src, "data_gb").number(positive=False)
    return Dependency(agent=agent.text(), data_gb=data), agent


def _agent(src: _Src) -> tuple[Agent, list[_Src]]:
    f = src.mapping()
    _unknown(f, {"name", "image", "cpu", "memory", "depends_on", "port"})
    deps = [_dependency(d) for d in f["depends_on"].items()] if "depends_on" in f else []
    port = int(f["port"].number()) if "port" in f else 8080
    if not 1 <= port <= 65535:
        raise f["port"].error(f"port {port} outside 1..65535")
    agent = Agent(
        name=_require(f, src, "name").text(),
        image=_require(f, src, "image").text(),
        cpu=_require(f, src, "cpu").quantity(),
        memory=_require(f, src, "memory").quantity(),
        depends_on=tuple(d for d, _ in deps),
        port=port,
        source=f"{src.path}:{src.node.start_mark.line + 1}: {src.field}",
    )
    return agent, [s for _, s in deps]


def load_workflow(path: str | Path) -> Workflow:
    """Read and check a workflow YAML (names, dependencies, cycles, quantities)."""
    root = _load(path)
    f = root.mapping()
    _unknown(f, {"name", "agents", "acyclic"})
    acyclic = True
    if "acyclic" in f:
        node = f["acyclic"].node
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            raise f["acyclic"].error("expected true or false")
        acyclic = node.value.lower() in ("true", "yes", "on")
    parsed = [_agent(a) for a in _require(f, root, "agents").items()]
    if not parsed:
        raise f["agents"].error("no agents")
    _check_names(parsed, f["agents"])
    _check_graph(parsed, acyclic)
    return Workflow(
        name=_require(f, root, "name").text(), agents=tuple(a for a, _ in parsed), acyclic=acyclic
    )


def _check_names(parsed: list[tuple[Agent, list[_Src]]], agents: _Src) -> None:
    seen: set[str] = set()
    for (agent, _), src in zip(parsed, agents.items(), strict=True):
        if agent.name in seen:
            raise src.mapping()["name"].error(f"duplicate agent name {agent.name!r}")
        seen.add(agent.name)
    for agent, dep_srcs in parsed:
        for dep, src in zip(agent.depends_on, dep_srcs, strict=True):
            if dep.agent not in seen:
                raise src.error(f"unknown agent {dep.agent!r} in depends_on of {agent.name!r}")
            if dep.agent == agent.name:
                raise src.error(f"agent {agent.name!r} depends on itself")


def _check_graph(parsed: list[tuple[Agent, list[_Src]]], acyclic: bool) -> None:
    if not acyclic:
        return
    graph = {a.name: [(d.agent, s) for d, s in zip(a.depends_on, srcs, strict=True)] for a, srcs in parsed}
    state: dict[str, int] = {}
    for start in graph:
        if state.get(start):
            continue
        # Iterative DFS (grey=1, black=2); a grey target closes a cycle.
        stack = [(start, iter(graph[start]))]
        state[start] = 1
        while stack:
            name, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                state[name] = 2
                stack.pop()
                continue
            target, src = nxt
            if state.get(target) == 1:
                path = [n for n, _ in stack] + [target]
                cycle = " -> ".join(path[path.index(target) :])
                raise src.error(f"dependency cycle {cycle} (set 'acyclic: false' to allow cycles)")
            if not state.get(target):
                state[target] = 1
                stack.append((target, iter(graph[target])))


def _link(src: _Src) -> Link:
    f = src.mapping()
    _unknown(f, {"latency_ms", "bandwidth_gbps", "a", "b", "label"})
    return Link(
        latency_ms=_require(f, src, "latency_ms").number(positive=False),
        bandwidth_gbps=_require(f, src, "bandwidth_gbps").number(),
    )


def _node(src: _Src) -> Node:
    f = src.mapping()
    _unknown(f, {"name", "cpu", "memory", "labels"})
    labels: dict[str, str] = {}
    if "labels" in f:
        for key, value in f["labels"].mapping().items():
            if not isinstance(value.node, yaml.ScalarNode):
                raise value.error("label values must be scalars")
            labels[key] = str(value.node.value)
    return Node(
        name=_require(f, src, "name").text(),
        cpu=_require(f, src, "cpu").quantity(),
        memory=_require(f, src, "memory").quantity(),
        labels=labels,
    )


def load_cluster(path: str | Path) -> Cluster:
    """Read and check a cluster YAML (nodes, default link, symmetric pairs, label rules)."""
    root = _load(path)
    f = root.mapping()
    _unknown(f, {"nodes", "links"})
    node_srcs = _require(f, root, "nodes").items()
    if not node_srcs:
        raise f["nodes"].error("no nodes")
    nodes = [_node(s) for s in node_srcs]
    names: set[str] = set()
    for node, src in zip(nodes, node_srcs, strict=True):
        if node.name in names:
            raise src.mapping()["name"].error(f"duplicate node name {node.name!r}")
        names.add(node.name)
    default, pairs, rules = Link(1.0, 10.0), {}, []
    if "links" in f:
        links = f["links"].mapping()
        _unknown(links, {"default", "pairs", "by_label"})
        default = _link(links["default"]) if "default" in links else default
        pairs = _pairs(links["pairs"], names) if "pairs" in links else {}
        for rule in links["by_label"].items() if "by_label" in links else []:
            rules.append(LabelLink(label=_require(rule.mapping(), rule, "label").text(), link=_link(rule)))
    return Cluster(nodes=tuple(nodes), default=default, pairs=pairs, by_label=tuple(rules))


def _pairs(src: _Src, names: set[str]) -> dict[tuple[str, str], Link]:
    out: dict[tuple[str, str], Link] = {}
    for item in src.items():
        f = item.mapping()
        a, b = _require(f, item, "a"), _require(f, item, "b")
        for end in (a, b):
            if end.text() not in names:
                raise end.error(f"unknown node {end.text()!r}")
        if a.text() == b.text():
            raise b.error("a link joins two different nodes")
        key = (a.text(), b.text())
        if key in out or key[::-1] in out:
            raise item.error(f"duplicate link {key[0]}-{key[1]}")
        out[key] = _link(item)
    return out
