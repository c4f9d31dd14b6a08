"""The controller: observe metrics, decide with Eq. 14, re-plan with few migrations, apply, learn.

One :meth:`Controller.step` per scrape. Node failures re-plan at once on the surviving nodes;
otherwise the trigger decides. A re-plan starts from the placement in force and charges every
move of a surviving agent a migration cost, so it moves an agent only when that lowers Eq. 11.
Outcomes go to LTM ("deploy", "placement", workflow hash); node utilisation and throughput to STM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sedma.deploy.lambda_mem import UTIL_STREAM
from sedma.deploy.memory_api import Memory
from sedma.deploy.metrics import Observation
from sedma.deploy.model import Cluster, Dependency, Workflow
from sedma.deploy.objective import feasible, objective
from sedma.deploy.planner import Plan, plan
from sedma.deploy.trigger import (
    Decision,
    TriggerConfig,
    expected_throughput,
    should_recompile,
    update_expected,
)
from sedma.errors import InputError

CPU_STREAM = "deploy/node_cpu_util/"
THROUGHPUT_STREAM = "deploy/throughput/"
MAX_OUTCOMES = 20


@dataclass(frozen=True)
class ControllerConfig:
    """Trigger thresholds and the planner options used for every re-plan."""

    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    solver: str = "auto"
    time_limit: float | None = None
    lambda_mem: float | None = None
    seed: int = 0

    def validate(self) -> None:
        self.trigger.validate()


@dataclass(frozen=True)
class StepReport:
    """What one control step saw and did."""

    t: float
    decision: Decision
    action: str  # none | failover | replanned | kept | unplaceable
    plan: Plan | None
    migrations: int
    solver_seconds: float
    dead: tuple[str, ...]


Sink = Callable[[Plan, str], None]


def with_volumes(workflow: Workflow, edges: Mapping[tuple[str, str], float]) -> Workflow:
    """The workflow with observed data volumes (2 significant digits, so phases recur as one key)."""
    if not edges:
        return workflow

    def vol(src: str, dep: Dependency) -> float:
        got = edges.get((src, dep.agent), edges.get((dep.agent, src)))
        return dep.data_gb if got is None or not math.isfinite(got) or got < 0 else float(f"{got:.2g}")

    agents = tuple(
        replace(a, depends_on=tuple(replace(d, data_gb=vol(a.name, d)) for d in a.depends_on))
        for a in workflow.agents
    )
    return replace(workflow, agents=agents)


class Controller:
    """Closed loop of Algorithm 1, stage 3 (lines 19–24)."""

    def __init__(
        self,
        workflow: Workflow,
        cluster: Cluster,
        *,
        memory: Memory | None,
        config: ControllerConfig,
        sink: Sink,
    ) -> None:
        config.validate()
        self.declared, self.cluster, self.memory, self.config, self.sink = (
            workflow,
            cluster,
            memory,
            config,
            sink,
        )
        self.key = workflow.digest()
        self.dead: set[str] = set()
        self.workflow = workflow
        self.current = self._plan(None)
        sink(self.current, "initial plan")

    def _live(self) -> Cluster:
        return self.cluster.without(self.dead)

    def _plan(self, previous: Mapping[str, str] | None) -> Plan:
        c = self.config
        return plan(
            self.workflow,
            self._live(),
            memory=self.memory,
            solver=c.solver,
            lambda_mem=c.lambda_mem,
            time_limit=c.time_limit,
            seed=c.seed,
            previous=previous,
        )

    def _record_stm(self, obs: Observation) -> None:
        if self.memory is None:
            return
        for node, v in obs.cpu.items():
            self.memory.observe(CPU_STREAM + node, v)
        for node, v in obs.mem.items():
            self.memory.observe(UTIL_STREAM + node, v)
        if obs.throughput is not None:
            self.memory.observe(THROUGHPUT_STREAM + self.key, obs.throughput)

    def step(self, obs: Observation, t: float) -> StepReport:
        """One scrape: record, handle failures, evaluate Eq. 14, re-plan and apply if it pays."""
        self._record_stm(obs)
        self.workflow = with_volumes(self.declared, obs.edges)
        live = {n.name for n in self._live().nodes}
        newly_dead = {n for n, up in obs.up.items() if not up and n in live}
        expected = expected_throughput(self.memory, self.key)
        decision = should_recompile(
            obs.throughput, expected, obs.utilisation(live - newly_dead), self.config.trigger
        )
        if newly_dead:
            self.dead |= newly_dead
            return self._act(t, decision, "failover", f"node failure: {', '.join(sorted(newly_dead))}")
        if decision.recompile:
            return self._act(t, decision, "replanned", decision.reason)
        if obs.throughput is not None:
            update_expected(self.memory, self.key, obs.throughput)
        return StepReport(t, decision, "none", None, 0, 0.0, tuple(sorted(self.dead)))

    def _act(self, t: float, decision: Decision, action: str, reason: str) -> StepReport:
        old = self.current
        try:
            new = self._plan(old.placement)
        except InputError as exc:
            # No placement fits the live nodes: keep what runs, say so, try again next scrape.
            return StepReport(
                t, replace(decision, reason=str(exc)), "unplaceable", None, 0, 0.0, tuple(sorted(self.dead))
            )
        pb = new.problem
        idx = {n: k for k, n in enumerate(pb.nodes)}
        old_arr = np.array([idx.get(old.placement[a], -1) for a in pb.agents], dtype=np.int64)
        old_ok = bool((old_arr >= 0).all()) and feasible(pb, old_arr)
        if action != "failover" and old_ok and not new.objective < objective(pb, old_arr) - 1e-9:
            # Nothing better exists now: re-baseline Eq. 14's expectation at today's throughput.
            if decision.ratio is not None and decision.ratio < self.config.trigger.theta:
                sample = (decision.ratio or 0.0) * (expected_throughput(self.memory, self.key) or 0.0)
                update_expected(self.memory, self.key, sample, reset=True)
            return StepReport(t, decision, "kept", None, 0, new.seconds, tuple(sorted(self.dead)))
        self.current = new
        self.sink(new, reason)
        self._record_outcome(t, action, reason, new)
        return StepReport(t, decision, action, new, new.migrations, new.seconds, tuple(sorted(self.dead)))

    def _record_outcome(self, t: float, action: str, reason: str, new: Plan) -> None:
        if self.memory is None:
            return
        rec = self.memory.recall("deploy", "placement", self.key)
        value: dict[str, Any] = dict(rec) if isinstance(rec, dict) else {}
        outcome = {
            "t": t,
            "action": action,
            "reason": reason,
            "plan_hash": new.digest,
            "objective": new.objective,
            "migrations": new.migrations,
            "dead": sorted(self.dead),
        }
        value["outcomes"] = [*list(value.get("outcomes", []))[-(MAX_OUTCOMES - 1) :], outcome]
        value["placement"] = dict(new.placement)
        self.memory.remember("deploy", "placement", self.key, value, score=1.0, force=True)
