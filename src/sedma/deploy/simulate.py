"""Scripted simulation of the controller against a metrics timeline (phase changes, node failure).

Throughput model (from the objective): a workflow request moves every dependency's data once,
so its network time grows with Eq. 12's communication cost under the *current* volumes:
``T = T0 / (1 + comm / c_ref)``, with ``c_ref`` the cost if every declared edge crossed the
cluster's fastest link. If any agent sits on a failed node (or has not started yet) the pipeline is
broken and ``T = 0``. Time is virtual: scrapes every ``interval_s``; a new placement is in force
``solver seconds (measured) + rollout_s`` after the scrape that triggered it. Policies: ``sedma``
(the controller), ``k8s-native`` (default-scheduler placement; after a node failure the pods are
evicted after ``k8s_eviction_s`` and re-scheduled by the same scoring) and ``static`` (the first
plan, kept whatever happens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sedma.deploy import baselines
from sedma.deploy.controller import Controller, ControllerConfig
from sedma.deploy.loader import _load, _Src, _unknown
from sedma.deploy.memory_api import Memory
from sedma.deploy.metrics import Sample, observe, parse_prometheus, render
from sedma.deploy.model import Cluster, Workflow
from sedma.deploy.objective import Ints, Problem, build_problem
from sedma.deploy.planner import Plan
from sedma.errors import InputError

POLICIES = ("sedma", "k8s-native", "static")


@dataclass(frozen=True)
class Event:
    """A scripted change: a workload phase (volume factors, load) or a node failure."""

    t: float
    kind: str
    name: str = ""
    node: str = ""
    agents: dict[str, float] = field(default_factory=dict)
    load: float | None = None


@dataclass(frozen=True)
class Timeline:
    """The simulation script and its model constants (seconds, ops/s)."""

    duration_s: float = 900.0
    interval_s: float = 15.0
    rollout_s: float = 20.0
    k8s_eviction_s: float = 340.0  # node-monitor grace 40 s + default tolerationSeconds 300 s
    base_throughput: float = 150.0
    load: float = 0.6
    events: tuple[Event, ...] = ()


def load_timeline(path: str | Path) -> Timeline:
    """Read a timeline YAML; errors name file, line and field."""
    root = _load(path)
    f = root.mapping()
    consts = ("duration_s", "interval_s", "rollout_s", "k8s_eviction_s", "base_throughput", "load")
    _unknown(f, {*consts, "events"})
    values = {k: f[k].number(positive=k not in ("rollout_s", "k8s_eviction_s")) for k in consts if k in f}
    events = tuple(_event(e) for e in f["events"].items()) if "events" in f else ()
    return Timeline(**values, events=tuple(sorted(events, key=lambda e: e.t)))


def _event(src: _Src) -> Event:
    f = src.mapping()
    _unknown(f, {"t", "kind", "name", "node", "agents", "load"})
    if "kind" not in f or f["kind"].text() not in ("phase", "node_failure"):
        raise src.error("kind must be 'phase' or 'node_failure'")
    kind = f["kind"].text()
    if kind == "node_failure" and "node" not in f:
        raise src.error("a node_failure names its node (or 'busiest')")
    agents = {k: v.number() for k, v in f["agents"].mapping().items()} if "agents" in f else {}
    return Event(
        t=f["t"].number(positive=False) if "t" in f else 0.0,
        kind=kind,
        name=f["name"].text() if "name" in f else kind,
        node=f["node"].text() if "node" in f else "",
        agents=agents,
        load=f["load"].number() if "load" in f else None,
    )


@dataclass
class _World:
    """The simulated cluster: declared problem, current volume factors, load, failed nodes."""

    problem: Problem
    factors: np.ndarray[Any, np.dtype[np.float64]]
    load: float
    dead: set[int]
    c_ref: float

    def traffic(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.asarray(self.problem.traffic * np.outer(self.factors, self.factors), dtype=np.float64)

    def throughput(self, p: Ints, t0: float) -> float:
        if (p < 0).any() or any(int(k) in self.dead for k in p):
            return 0.0
        comm = 0.5 * float((self.traffic() * self.problem.netcost[np.ix_(p, p)]).sum())
        return t0 / (1.0 + comm / self.c_ref)

    def utilisation(self, p: Ints) -> float:
        """Requested ÷ capacity of the live nodes in use (mean of CPU and memory), SPEC's Res. Util."""
        used = sorted({int(k) for k in p if k >= 0 and int(k) not in self.dead})
        if not used:
            return 0.0
        run = (p >= 0) & np.isin(p, used)
        cpu = self.problem.cpu[run].sum() / self.problem.cap_cpu[used].sum()
        mem = self.problem.mem[run].sum() / self.problem.cap_mem[used].sum()
        return float((cpu + mem) / 2)

    def samples(self, p: Ints, t0: float, workflow: str) -> list[Sample]:
        pb, out = (
            self.problem,
            [Sample("sedma_workflow_throughput", {"workflow": workflow}, self.throughput(p, t0))],
        )
        run = p >= 0
        cpu = np.bincount(p[run], weights=pb.cpu[run], minlength=pb.m) * self.load / pb.cap_cpu
        mem = np.bincount(p[run], weights=pb.mem[run], minlength=pb.m) * self.load / pb.cap_mem
        for k, node in enumerate(pb.nodes):
            out.append(Sample("sedma_node_up", {"node": node}, 0.0 if k in self.dead else 1.0))
            if k not in self.dead:
                out.append(Sample("sedma_node_cpu_utilisation", {"node": node}, float(cpu[k])))
                out.append(Sample("sedma_node_memory_utilisation", {"node": node}, float(mem[k])))
        tr = self.traffic()
        for i, j in zip(*np.nonzero(np.triu(pb.traffic)), strict=True):
            labels = {"src": pb.agents[int(i)], "dst": pb.agents[int(j)]}
            out.append(Sample("sedma_edge_data_gb", labels, float(tr[i, j])))
        return out


@dataclass
class _Run:
    """One policy's trajectory: placement in force, pending change, and what was measured."""

    policy: str
    placement: Ints
    pending: list[tuple[float, Ints]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    utilisation: list[float] = field(default_factory=list)
    in_force: list[float] = field(default_factory=list)  # times new placements took effect
    migrations: int = 0
    replans: int = 0

    def advance(self, t: float) -> None:
        for when, p in sorted(self.pending, key=lambda x: x[0]):
            if when <= t:
                self.placement = p
                self.in_force.append(when)
        self.pending = [x for x in self.pending if x[0] > t]


def _to_array(plan: Plan, nodes: tuple[str, ...]) -> Ints:
    idx = {n: k for k, n in enumerate(nodes)}
    return np.array([idx[plan.placement[a]] for a in plan.problem.agents], dtype=np.int64)


def _busiest(problem: Problem, p: Ints) -> str:
    share = np.bincount(p, weights=problem.cpu, minlength=problem.m) / problem.cap_cpu.sum()
    share += np.bincount(p, weights=problem.mem, minlength=problem.m) / problem.cap_mem.sum()
    return problem.nodes[int(np.argmax(share))]


def _apply_event(world: _World, ev: Event, index: dict[str, int], nodes: dict[str, int]) -> None:
    if ev.kind == "phase":
        world.factors = np.ones(world.problem.n)
        for agent, factor in ev.agents.items():
            if agent not in index:
                raise InputError(f"timeline event {ev.name!r}: unknown agent {agent!r}")
            world.factors[index[agent]] = factor
        world.load = ev.load if ev.load is not None else world.load
    else:
        if ev.node not in nodes:
            raise InputError(f"timeline event {ev.name!r}: unknown node {ev.node!r}")
        world.dead.add(nodes[ev.node])


class _Sink:
    """Receives the controller's plans: the first is in force at once, later ones after the
    measured solver time plus the rollout; each is also written out when ``out`` is set."""

    def __init__(self, nodes: tuple[str, ...], timeline: Timeline, out: Path | None) -> None:
        self.nodes, self.timeline, self.out = nodes, timeline, out
        self.run: _Run | None = None
        self.t = 0.0
        self.count = 0

    def __call__(self, plan: Plan, reason: str) -> None:
        arr = _to_array(plan, self.nodes)
        if self.run is None:
            self.run = _Run("sedma", arr)
        else:
            self.run.pending.append((self.t + plan.seconds + self.timeline.rollout_s, arr))
        if self.out is not None:
            from sedma.deploy.report import write_plan_dir

            write_plan_dir(plan, self.out / f"step-{self.count:03d}-t{int(self.t)}")
            self.count += 1


def simulate(
    workflow: Workflow,
    cluster: Cluster,
    timeline: Timeline,
    *,
    memory: Memory | None,
    config: ControllerConfig | None = None,
    sink_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the three policies through ``timeline``; returns the measured report (JSON-able)."""
    config = config or ControllerConfig()
    base = build_problem(workflow, cluster)
    sink = _Sink(base.nodes, timeline, sink_dir)
    ctl = Controller(workflow, cluster, memory=memory, config=config, sink=sink)
    assert sink.run is not None
    first = sink.run.placement
    k8s = baselines.k8s_native(base, seed=config.seed)
    if k8s is None:
        raise InputError("k8s-native baseline cannot place the workflow on this cluster")
    runs = {
        "sedma": sink.run,
        "k8s-native": _Run("k8s-native", k8s),
        "static": _Run("static", baselines.static(first)),
    }
    events = [
        Event(e.t, e.kind, e.name, _busiest(base, first), e.agents, e.load) if e.node == "busiest" else e
        for e in timeline.events
    ]
    off = base.netcost[~np.eye(base.m, dtype=bool)]
    c_ref = float(base.traffic.sum() / 2 * (off.min() if off.size else 1.0)) or 1.0
    worlds = {p: _World(base, np.ones(base.n), timeline.load, set(), c_ref) for p in POLICIES}
    _play(ctl, sink, runs, worlds, events, timeline, workflow.name, config.seed)
    return _report(runs, events, timeline)


def _play(
    ctl: Controller,
    sink: _Sink,
    runs: dict[str, _Run],
    worlds: dict[str, _World],
    events: list[Event],
    tl: Timeline,
    wf: str,
    seed: int,
) -> None:
    """The virtual clock: events take effect, then every policy is scraped and measured."""
    index = {a: i for i, a in enumerate(ctl.declared.names)}
    nodes = {n: k for k, n in enumerate(ctl.cluster.names)}
    pending = list(events)
    t = 0.0
    while t <= tl.duration_s + 1e-9:
        sink.t = t
        while pending and pending[0].t <= t:
            ev = pending.pop(0)
            for name, world in worlds.items():
                _apply_event(world, ev, index, nodes)
                if ev.kind == "node_failure" and name == "k8s-native":
                    _k8s_failover(runs[name], world, ev, tl, seed)
        _tick_sedma(ctl, runs["sedma"], worlds["sedma"], tl, wf, t)
        for name in ("k8s-native", "static"):
            runs[name].advance(t)
            _measure(runs[name], worlds[name], tl, t)
        t += tl.interval_s


def _tick_sedma(ctl: Controller, run: _Run, world: _World, tl: Timeline, wf: str, t: float) -> None:
    run.advance(t)
    text = render(world.samples(run.placement, tl.base_throughput, wf))
    rep = ctl.step(observe(parse_prometheus(text, source="simulation"), workflow=wf), t)
    if rep.plan is not None:
        run.replans += 1
        run.migrations += rep.migrations
    _measure(run, world, tl, t)


def _measure(run: _Run, world: _World, tl: Timeline, t: float) -> None:
    run.times.append(t)
    run.throughput.append(world.throughput(run.placement, tl.base_throughput))
    run.utilisation.append(world.utilisation(run.placement))


def _k8s_failover(run: _Run, world: _World, ev: Event, tl: Timeline, seed: int) -> None:
    """Evict the failed node's pods after the eviction timeout and re-schedule them by k8s scoring."""
    dead = sorted(world.dead)
    p = run.placement.copy()
    displaced = np.isin(p, dead)
    if not displaced.any():
        return
    live = [k for k in range(world.problem.m) if k not in world.dead]
    sub = _subproblem(world.problem, live)
    fixed = np.where(displaced, -1, np.searchsorted(live, np.where(displaced, live[0], p)))
    placed = baselines.k8s_native(sub, seed=seed, fixed=fixed)
    new = np.array(live)[placed] if placed is not None else np.where(displaced, -1, p)
    run.pending.append((ev.t + tl.k8s_eviction_s + tl.rollout_s, new.astype(np.int64)))
    run.migrations += int(displaced.sum())
    run.replans += 1


def _subproblem(pb: Problem, live: list[int]) -> Problem:
    return Problem(
        agents=pb.agents,
        nodes=tuple(pb.nodes[k] for k in live),
        traffic=pb.traffic,
        netcost=pb.netcost[np.ix_(live, live)],
        cpu=pb.cpu,
        mem=pb.mem,
        cap_cpu=pb.cap_cpu[live],
        cap_mem=pb.cap_mem[live],
        lam=pb.lam,
    )


def _report(runs: dict[str, _Run], events: list[Event], tl: Timeline) -> dict[str, Any]:
    out: dict[str, Any] = {
        "timeline": {"duration_s": tl.duration_s, "interval_s": tl.interval_s},
        "policies": {},
    }
    for name, run in runs.items():
        times, thr = np.array(run.times), np.array(run.throughput)
        per_event = []
        for k, ev in enumerate(events):
            end = events[k + 1].t if k + 1 < len(events) else tl.duration_s + tl.interval_s
            before = thr[times < ev.t]
            after = thr[(times >= ev.t) & (times < end)]
            forced = [x for x in run.in_force if ev.t <= x < end]
            per_event.append(
                {
                    "event": ev.name,
                    "kind": ev.kind,
                    "node": ev.node or None,
                    "t": ev.t,
                    "adaptation_s": (forced[0] - ev.t) if forced else None,
                    "throughput_before": float(before[-1]) if before.size else None,
                    "throughput_after": float(after[-1]) if after.size else None,
                    "retained": float(after[-1] / before[-1])
                    if before.size and after.size and before[-1]
                    else None,
                }
            )
        out["policies"][name] = {
            "mean_throughput": float(thr.mean()),
            "resource_utilisation": float(np.mean(run.utilisation)),
            "migrations": run.migrations,
            "replans": run.replans,
            "events": per_event,
            "series": {"t": run.times, "throughput": run.throughput},
        }
    return out
