"""Manifest checks: the official schema (kubernetes-validate, offline) plus what it misses.

kubernetes-validate accepts a selector that matches no template label, an invalid
``imagePullPolicy`` and a malformed quantity, all of which a real API server rejects
(REFERENCES.md); :func:`semantic_problems` checks those and the placement's node affinity.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sedma.deploy.quantity import parse_quantity

K8S_VERSION = "1.30"
PULL_POLICIES = {"Always", "IfNotPresent", "Never"}
PROTOCOLS = {"TCP", "UDP", "SCTP"}
DEPLOYMENT_RESTART = {"Always"}  # a Deployment's pods may only restart Always
SERVICE_TYPES = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@functools.lru_cache(maxsize=16)
def _validator(kind: str, api_version: str) -> Any:
    """A jsonschema validator over kubernetes-validate's bundled strict schema, built once per kind."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    version = max(
        (v for v in utils.all_versions() if utils.major_minor(v) <= K8S_VERSION), key=utils.major_minor
    )
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        return None
    defs = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry: Any = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_problems(obj: Mapping[str, Any]) -> list[str]:
    """Problems the official Kubernetes JSON schema (strict, offline, bundled) reports for ``obj``."""
    validator = _validator(str(obj.get("kind")), str(obj.get("apiVersion")))
    if validator is None:
        return [
            f"schema: no schema for {obj.get('apiVersion')}/{obj.get('kind')} in Kubernetes {K8S_VERSION}"
        ]
    out = []
    for err in sorted(validator.iter_errors(dict(obj)), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(x) for x in err.absolute_path) or "<object>"
        out.append(f"schema: {where}: {err.message}")
    return out


def _label_problems(labels: Mapping[str, Any], where: str) -> list[str]:
    out = []
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS1123_SUB.match(prefix))) or not (
            0 < len(name) <= 63 and _LABEL_NAME.match(name)
        ):
            out.append(f"{where}: invalid label key {key!r}")
        if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
            out.append(f"{where}: invalid label value {value!r} for {key!r}")
    return out


def _quantity_problems(resources: Mapping[str, Any], where: str) -> list[str]:
    out = []
    parsed: dict[str, dict[str, float]] = {}
    for kind in ("requests", "limits"):
        for res, text in (resources.get(kind) or {}).items():
            try:
                value = parse_quantity(str(text))
            except ValueError:
                out.append(f"{where}.resources.{kind}.{res}: malformed quantity {text!r}")
                continue
            if value < 0:
                out.append(f"{where}.resources.{kind}.{res}: negative quantity {text!r}")
            parsed.setdefault(kind, {})[res] = value
    for res, req in parsed.get("requests", {}).items():
        lim = parsed.get("limits", {}).get(res)
        if lim is not None and req > lim:
            out.append(f"{where}.resources: request {res} exceeds its limit")
    return out


def _container_problems(c: Mapping[str, Any], where: str) -> list[str]:
    out = []
    if c.get("imagePullPolicy") not in PULL_POLICIES | {None}:
        out.append(f"{where}.imagePullPolicy: {c.get('imagePullPolicy')!r} not in {sorted(PULL_POLICIES)}")
    for j, port in enumerate(c.get("ports") or []):
        if port.get("protocol") not in PROTOCOLS:
            out.append(f"{where}.ports[{j}].protocol: {port.get('protocol')!r} not in {sorted(PROTOCOLS)}")
        if not 1 <= int(port.get("containerPort", 0)) <= 65535:
            out.append(f"{where}.ports[{j}].containerPort: outside 1..65535")
    return out + _quantity_problems(c.get("resources") or {}, where)


def _deployment_problems(obj: Mapping[str, Any], node: str | None) -> list[str]:
    spec = obj.get("spec") or {}
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    out = []
    if not selector:
        out.append("spec.selector.matchLabels: empty selector")
    for key, value in selector.items():
        if labels.get(key) != value:
            out.append(f"spec.selector.matchLabels: {key}={value} does not match the template labels")
    out += _label_problems(labels, "spec.template.metadata.labels")
    pod = tmpl.get("spec") or {}
    if pod.get("restartPolicy", "Always") not in DEPLOYMENT_RESTART:
        out.append(f"spec.template.spec.restartPolicy: {pod.get('restartPolicy')!r} must be 'Always'")
    for i, c in enumerate(pod.get("containers") or []):
        out += _container_problems(c, f"spec.template.spec.containers[{i}]")
    if node is not None and affinity_node(obj) != node:
        out.append(f"node affinity names {affinity_node(obj)!r}, the plan places it on {node!r}")
    return out


def affinity_node(obj: Mapping[str, Any]) -> str | None:
    """The node a Deployment's required node affinity pins it to (kubernetes.io/hostname In [x])."""
    try:
        terms = obj["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        for expr in terms[0]["matchExpressions"]:
            if (
                expr["key"] == "kubernetes.io/hostname"
                and expr["operator"] == "In"
                and len(expr["values"]) == 1
            ):
                return str(expr["values"][0])
    except (KeyError, IndexError, TypeError):
        return None
    return None


def _service_problems(obj: Mapping[str, Any], pods: Iterable[Mapping[str, str]]) -> list[str]:
    spec = obj.get("spec") or {}
    out = []
    if spec.get("type", "ClusterIP") not in SERVICE_TYPES:
        out.append(f"spec.type: {spec.get('type')!r} not in {sorted(SERVICE_TYPES)}")
    for j, port in enumerate(spec.get("ports") or []):
        if port.get("protocol") not in PROTOCOLS:
            out.append(
                f"spec.ports[{j}].protocol: {port.get('protocol')!r} must be one of {sorted(PROTOCOLS)}"
            )
    selector = spec.get("selector") or {}
    if not any(all(p.get(k) == v for k, v in selector.items()) for p in pods):
        out.append("spec.selector: matches no Deployment's pod template labels")
    return out


def semantic_problems(
    objs: Sequence[Mapping[str, Any]], *, nodes: Mapping[str, str] | None = None
) -> list[str]:
    """Checks the schema misses; ``nodes`` maps Deployment name -> the plan's node for it."""
    pods = [
        ((o.get("spec") or {}).get("template", {}).get("metadata") or {}).get("labels") or {}
        for o in objs
        if o.get("kind") == "Deployment"
    ]
    out: list[str] = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name"))
        where = f"{obj.get('kind')}/{name}"
        found = [] if _DNS1035.match(name) and len(name) <= 63 else ["metadata.name: not a DNS-1035 label"]
        found += _label_problems(meta.get("labels") or {}, "metadata.labels")
        if obj.get("kind") == "Deployment":
            found += _deployment_problems(obj, None if nodes is None else nodes.get(name, "<not in plan>"))
        elif obj.get("kind") == "Service":
            found += _service_problems(obj, pods)
        out += [f"{where}: {p}" for p in found]
    return out


def check_objects(objs: Sequence[Mapping[str, Any]], *, nodes: Mapping[str, str] | None = None) -> list[str]:
    """Schema and semantic problems of a set of objects (empty list = valid)."""
    out: list[str] = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        out += [f"{obj.get('kind')}/{meta.get('name')}: {p}" for p in schema_problems(obj)]
    return out + semantic_problems(objs, nodes=nodes)
