"""``sedma bench deploy``: placement solvers on seeded random instances beside k8s-native and greedy.

Instances come from :mod:`sedma.deploy.generator` (random DAG, ~2.3 edges per agent, demand at
65% of capacity, racks/zones network cost, λ_mem = 1) at 20×6, 100×20 and 500×50 agents×nodes.
Every solver runs through :func:`sedma.deploy.planner.plan`. The reference is the solver class
REFERENCES.md measured at these sizes — a capacity-aware iterated local search (relocate, swap,
random kicks, strategic oscillation with a capacity penalty) — run for 30 s (``--quick``: 3 s)
from the baselines with another seed: our :func:`local_search` with its own additions (the
zone-level start, V-cycles and exact large-neighbourhood moves, ``multilevel=False``) switched
off. Where the exact solver does not run, our full solver is also run for the same 30 s
(``self-reference``) to show how much of its own long run the 2 s plan already reaches. Gaps are
to the best value any run reached. Goals (issue 4): 20×6 proven optimal in <= 2 s (on the
bench's seed, and on ten consecutive seeds from it); 100×20 within 2 s and 500×50 within 10 s
at or below the reference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from sedma._output import err_console, print_table
from sedma.bench._figures import default_plot_path, finish, pyplot, save_figure
from sedma.deploy.baselines import first_fit_decreasing, greedy, k8s_native
from sedma.deploy.generator import random_cluster, random_workflow
from sedma.deploy.local_search import LocalSearchConfig, local_search
from sedma.deploy.objective import build_problem, feasible
from sedma.deploy.planner import plan

SIZES = ((20, 6), (100, 20), (500, 50))
GOAL_SECONDS = {(20, 6): 2.0, (100, 20): 2.0, (500, 50): 10.0}


@dataclass(frozen=True)
class BenchConfig:
    """Budgets of one run; ``quick`` shortens the reference and the exact solver's limit."""

    quick: bool = False
    seed: int = 0
    reference: float | None = None  # seconds of the reference run; None: 30 (quick: 3)

    @property
    def reference_seconds(self) -> float:
        if self.reference is not None:
            return self.reference
        return 3.0 if self.quick else 30.0

    def solver_seconds(self, size: tuple[int, int]) -> float:
        """The goal's budget, less a margin for building the instance and the plan."""
        return GOAL_SECONDS.get(size, 1.0) * 0.9


def _timed_plan(wf: Any, cl: Any, solver: str, limit: float | None, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = plan(wf, cl, memory=None, solver=solver, lambda_mem=1.0, time_limit=limit, seed=seed)
    return {
        "solver": solver,
        "objective": res.objective,
        "seconds": time.perf_counter() - t0,
        "bound": res.bound,
        "proven_optimal": res.optimal,
        "feasible": feasible(res.problem, res.array),
    }


def _long_run(wf: Any, cl: Any, cfg: BenchConfig, *, classic: bool) -> dict[str, Any]:
    """A local search for the full reference time (no early stop), started from the baselines:
    the classic one REFERENCES.md measured (``classic``) or ours with everything on."""
    pb = build_problem(wf, cl, lam=1.0)
    t0 = time.perf_counter()
    starts = [
        p for p in (greedy(pb), k8s_native(pb, seed=cfg.seed), first_fit_decreasing(pb)) if p is not None
    ]
    config = LocalSearchConfig(time_limit=cfg.reference_seconds, seed=cfg.seed + 1, multilevel=not classic)
    p, v = local_search(pb, starts, config)
    secs = f"{cfg.reference_seconds:.0f} s"
    return {
        "solver": f"reference ({secs} classic local search)" if classic else f"self-reference ({secs} local)",
        "objective": v,
        "seconds": time.perf_counter() - t0,
        "bound": None,
        "proven_optimal": False,
        "feasible": feasible(pb, p),
    }


def run_case(n: int, m: int, cfg: BenchConfig, progress: Progress, task: Any) -> dict[str, Any]:
    """All solvers on one generated instance; gaps against the best value found by any of them."""
    cl = random_cluster(m, seed=cfg.seed)
    wf = random_workflow(n, cl, seed=cfg.seed)
    budget = cfg.solver_seconds((n, m))
    runs = []
    steps: list[tuple[str, float | None]] = [("k8s-native", None), ("greedy", None), ("local", budget)]
    if n <= 24:
        steps.append(("exact", budget))
    for solver, limit in steps:
        progress.update(task, description=f"{n}x{m}: {solver}")
        runs.append(_timed_plan(wf, cl, solver, limit, cfg.seed))
    progress.update(task, description=f"{n}x{m}: reference {cfg.reference_seconds:.0f} s")
    ref = _long_run(wf, cl, cfg, classic=True)
    runs.append(ref)
    own = None
    if n > 24:
        progress.update(task, description=f"{n}x{m}: self-reference {cfg.reference_seconds:.0f} s")
        own = _long_run(wf, cl, cfg, classic=False)
        runs.append(own)
    best = min(r["objective"] for r in runs)
    for r in runs:
        r["gap"] = (r["objective"] - best) / best if best > 0 else 0.0
    return {
        "agents": n,
        "nodes": m,
        "best_known": best,
        "reference": ref["objective"],
        "self_reference": None if own is None else own["objective"],
        "runs": runs,
    }


SWEEP_SEEDS = 10  # the 20x6 exact goal is also judged on this many consecutive seeds


def exact_sweep(
    cfg: BenchConfig, *, size: tuple[int, int] = (20, 6), seeds: int = SWEEP_SEEDS
) -> dict[str, Any]:
    """The exact solver on ``seeds`` consecutive seeds of one size: a goal that held only on a
    lucky seed would not be met (before the group-first search, 20x6 held on seeds 0-1 only)."""
    n, m = size
    rows = []
    for seed in range(cfg.seed, cfg.seed + seeds):
        cl = random_cluster(m, seed=seed)
        run = _timed_plan(random_workflow(n, cl, seed=seed), cl, "exact", cfg.solver_seconds(size), seed)
        rows.append(
            {"seed": seed, **{k: run[k] for k in ("objective", "seconds", "bound", "proven_optimal")}}
        )
    limit = GOAL_SECONDS.get(size, 1.0)
    name = f"{n}x{m} proven optimal <= {limit:.0f} s on seeds {cfg.seed}-{cfg.seed + seeds - 1}"
    met = all(r["proven_optimal"] and r["seconds"] <= limit for r in rows)
    return {"agents": n, "nodes": m, "runs": rows, "goal": name, "met": met}


def goals(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 4's goals, judged on this run's measurements."""
    out: dict[str, Any] = {}
    for case in cases:
        size = (case["agents"], case["nodes"])
        by = {r["solver"]: r for r in case["runs"]}
        limit = GOAL_SECONDS.get(size, 1.0)
        if "exact" in {r["solver"] for r in case["runs"]}:
            r = by["exact"]
            out[f"{size[0]}x{size[1]} proven optimal <= {limit:.0f} s"] = bool(
                r["proven_optimal"] and r["seconds"] <= limit
            )
        else:
            r = by["local"]
            ok = r["seconds"] <= limit and r["objective"] <= case["reference"] * (1 + 1e-9)
            out[f"{size[0]}x{size[1]} <= {limit:.0f} s at or below reference"] = bool(ok)
    return out


def plot(cases: list[dict[str, Any]], path: Path) -> Path:
    """Gap to best known per solver and size (log scale), and solver seconds."""
    plt = pyplot()

    solvers = ["k8s-native", "greedy", "local", "exact", "reference", "self-reference"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    width = 0.14
    for j, solver in enumerate(solvers):
        xs, gaps, secs = [], [], []
        for i, case in enumerate(cases):
            run = next((r for r in case["runs"] if r["solver"].startswith(solver)), None)
            if run is not None:
                xs.append(i + (j - 2.5) * width)
                gaps.append(100 * run["gap"] + 1e-3)
                secs.append(run["seconds"])
        axes[0].bar(xs, gaps, width, label=solver)
        axes[1].bar(xs, secs, width, label=solver)
    labels = [f"{c['agents']}x{c['nodes']}" for c in cases]
    for ax, title in zip(axes, ("gap to best known (%)", "seconds"), strict=True):
        ax.set_xticks(range(len(cases)), labels)
        ax.set_yscale("log")
        ax.set_title(title)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=6, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return save_figure(fig, path, dpi=110)


@click.command("deploy")
@click.option("--quick", is_flag=True, help="3 s reference runs instead of 30 s.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to save the plot [default: $SEDMA_HOME/bench/deploy.png].")  # fmt: skip
@click.option("--no-plot", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def deploy(quick: bool, seed: int, plot_path: Path | None, no_plot: bool, as_json: bool) -> None:
    """Placement solvers vs k8s-native and greedy on 20x6, 100x20, 500x50 (Eq. 11, λ_mem = 1)."""
    cfg = BenchConfig(quick=quick, seed=seed)
    cases = []
    with Progress(console=err_console, transient=True, disable=as_json) as progress:
        task = progress.add_task("deploy", total=len(SIZES))
        for n, m in SIZES:
            cases.append(run_case(n, m, cfg, progress, task))
            progress.advance(task)
        progress.update(task, description=f"20x6: exact on {SWEEP_SEEDS} seeds")
        sweep = exact_sweep(cfg)
    verdict = {**goals(cases), sweep["goal"]: sweep["met"]}
    result: dict[str, Any] = {
        "quick": quick,
        "seed": seed,
        "cases": cases,
        "exact_sweep": sweep,
        "goals": verdict,
    }
    result["plot"] = None if no_plot else str(plot(cases, plot_path or default_plot_path("deploy")))
    finish(result, as_json=as_json, report=print_report)


def print_report(result: dict[str, Any]) -> None:
    """One table per instance size, then the goals."""
    for case in result["cases"]:
        rows = [
            (
                r["solver"],
                r["objective"],
                f"{r['seconds']:.3f}",
                f"{100 * r['gap']:.2f}%",
                "no bound"
                if r["bound"] is None
                else ("optimal" if r["proven_optimal"] else f"{r['bound']:.4g}"),
            )
            for r in case["runs"]
        ]
        title = f"{case['agents']} agents x {case['nodes']} nodes (best known {case['best_known']:.6g})"
        print_table(title, ["solver", "objective", "seconds", "gap", "bound"], rows)
    sweep = result["exact_sweep"]
    seeds = [
        (
            r["seed"],
            r["objective"],
            f"{r['seconds']:.3f}",
            "optimal" if r["proven_optimal"] else f"{r['bound']:.4g}",
        )
        for r in sweep["runs"]
    ]
    title = f"exact, {sweep['agents']} agents x {sweep['nodes']} nodes, one instance per seed"
    print_table(title, ["seed", "objective", "seconds", "bound"], seeds)
    print_table("goals", ["goal", "met"], [(k, "yes" if v else "no") for k, v in result["goals"].items()])
