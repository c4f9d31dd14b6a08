"""Prometheus text-format metrics: parsing, fetching over plain HTTP, and the names we read.

Names (one sample per label set; units in the name):
``sedma_workflow_throughput{workflow}`` ops/s, ``sedma_node_cpu_utilisation{node}`` and
``sedma_node_memory_utilisation{node}`` fractions of capacity, ``sedma_node_up{node}`` 1/0,
``sedma_edge_data_gb{src,dst}`` observed data volume of a dependency (GB per request batch).
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sedma.errors import BackendUnavailable, InputError

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,)?')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    """One sample: metric name, labels, value."""

    name: str
    labels: dict[str, str]
    value: float


def _value(text: str, where: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: bad sample value {text!r}") from None


def _labels(body: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        if m is None:
            if body[pos:].strip():
                raise InputError(f"{where}: malformed labels {{{body}}}")
            break
        out[m.group(1)] = re.sub(r"\\[\\\"n]", lambda e: _ESCAPES[e.group(0)], m.group(2))
        pos = m.end()
    return out


def parse_prometheus(text: str, *, source: str = "metrics") -> list[Sample]:
    """Parse the Prometheus text exposition format (comments, labels with escapes, timestamps)."""
    out = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{lineno}"
        m = _NAME.match(line)
        if m is None:
            raise InputError(f"{where}: expected a metric name")
        name, rest = m.group(0), line[m.end() :]
        labels: dict[str, str] = {}
        if rest.startswith("{"):
            end = _closing_brace(rest, where)
            labels, rest = _labels(rest[1:end], where), rest[end + 1 :]
        parts = rest.split()
        if not parts or len(parts) > 2:
            raise InputError(f"{where}: expected 'value [timestamp]' after {name}")
        out.append(Sample(name, labels, _value(parts[0], where)))
    return out


def _closing_brace(text: str, where: str) -> int:
    inside = False
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and inside:
            i += 2
            continue
        if ch == '"':
            inside = not inside
        elif ch == "}" and not inside:
            return i
        i += 1
    raise InputError(f"{where}: unclosed '{{'")


def fetch(url: str, *, timeout: float = 5.0) -> list[Sample]:
    """GET one Prometheus endpoint (plain HTTP(S) text format); nothing is bound or unpickled."""
    if not url.startswith(("http://", "https://")):
        raise InputError(f"metrics endpoint {url!r} must be an http:// or https:// URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read(16 * 2**20).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        raise BackendUnavailable(
            f"metrics endpoint {url} unreachable: {getattr(exc, 'reason', exc)}"
        ) from None
    return parse_prometheus(text, source=url)


def read_file(path: str | Path) -> list[Sample]:
    """Samples from a file in the text format (the simulation/offline source)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read metrics: {exc.strerror}") from None
    return parse_prometheus(text, source=str(path))


@dataclass
class Observation:
    """What the controller needs from one scrape."""

    throughput: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    mem: dict[str, float] = field(default_factory=dict)
    up: dict[str, bool] = field(default_factory=dict)
    edges: dict[tuple[str, str], float] = field(default_factory=dict)

    def utilisation(self, nodes: Iterable[str]) -> float | None:
        """Mean over live nodes of (cpu + memory)/2 utilisation, as Eq. 14's resource_utilization."""
        vals = [(self.cpu[n] + self.mem[n]) / 2 for n in nodes if n in self.cpu and n in self.mem]
        return sum(vals) / len(vals) if vals else None


def observe(samples: Iterable[Sample], *, workflow: str) -> Observation:
    """Collect the samples SEDMA reads into an Observation."""
    obs = Observation()
    for s in samples:
        if s.name == "sedma_workflow_throughput" and s.labels.get("workflow", workflow) == workflow:
            obs.throughput = s.value
        elif s.name == "sedma_node_cpu_utilisation" and "node" in s.labels:
            obs.cpu[s.labels["node"]] = s.value
        elif s.name == "sedma_node_memory_utilisation" and "node" in s.labels:
            obs.mem[s.labels["node"]] = s.value
        elif s.name == "sedma_node_up" and "node" in s.labels:
            obs.up[s.labels["node"]] = s.value >= 0.5
        elif s.name == "sedma_edge_data_gb" and {"src", "dst"} <= s.labels.keys():
            obs.edges[(s.labels["src"], s.labels["dst"])] = s.value
    return obs


def render(samples: Iterable[Sample]) -> str:
    """Samples back to the text format (what the simulator serves)."""
    lines = []
    for s in samples:
        lab = ",".join(
            f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
            for k, v in s.labels.items()
        )
        lines.append(f"{s.name}{{{lab}}} {s.value!r}" if lab else f"{s.name} {s.value!r}")
    return "\n".join(lines) + "\n"
