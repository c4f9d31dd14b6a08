"""Layer 3: the deployment compiler and controller (Eq. 11–14).

``plan(workflow, cluster, *, memory, ...)`` is the one library entry point; the rest are the
inputs it takes and the steps that turn a Plan into running Kubernetes objects.
"""

from sedma.deploy.apply import apply_objects, dry_run
from sedma.deploy.controller import Controller, ControllerConfig, StepReport
from sedma.deploy.explain import explain
from sedma.deploy.loader import load_cluster, load_workflow
from sedma.deploy.manifests import compile_plan
from sedma.deploy.model import Agent, Cluster, Dependency, Link, Node, Workflow
from sedma.deploy.planner import SOLVERS, Plan, plan
from sedma.deploy.report import load_plan_dir, write_plan_dir
from sedma.deploy.simulate import Timeline, load_timeline, simulate
from sedma.deploy.trigger import Decision, TriggerConfig, should_recompile
from sedma.deploy.validate import check_objects

__all__ = [
    "SOLVERS",
    "Agent",
    "Cluster",
    "Controller",
    "ControllerConfig",
    "Decision",
    "Dependency",
    "Link",
    "Node",
    "Plan",
    "StepReport",
    "Timeline",
    "TriggerConfig",
    "Workflow",
    "apply_objects",
    "check_objects",
    "compile_plan",
    "dry_run",
    "explain",
    "load_cluster",
    "load_plan_dir",
    "load_timeline",
    "load_workflow",
    "plan",
    "should_recompile",
    "simulate",
    "write_plan_dir",
]
