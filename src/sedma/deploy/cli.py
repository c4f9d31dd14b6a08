"""``sedma deploy``: plan, apply, explain, validate and watch agent placements (a thin layer)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import click

from sedma._output import console, emit_json, err_console, print_table

SOLVER_CHOICES = click.Choice(["auto", "exact", "local", "k8s-native"])


@click.group()
def deploy() -> None:
    """Compile agent workflows into placements and Kubernetes manifests, and keep them tuned."""


def _memory() -> Any:
    from sedma.memory import DualMemory

    return DualMemory.open()


def _baselines(result: Any) -> dict[str, float]:
    from sedma.deploy import baselines
    from sedma.deploy.objective import objective

    out = {}
    for name, p in (
        ("k8s-native", baselines.k8s_native(result.problem)),
        ("greedy", baselines.greedy(result.problem)),
    ):
        if p is not None:
            out[name] = objective(result.problem, p)
    return out


@deploy.command("plan")
@click.argument("workflow", type=click.Path(dir_okay=False))
@click.argument("cluster", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--out", "out", required=True, type=click.Path(file_okay=False), help="Plan directory to write."
)
@click.option("--solver", type=SOLVER_CHOICES, default="auto", show_default=True)
@click.option("--lambda-mem", type=float, default=None, help="Fix λ_mem (default: adapt to memory pressure).")
@click.option("--time-limit", type=float, default=None, help="Solver time limit in seconds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--namespace", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def plan_cmd(
    workflow: str,
    cluster: str,
    out: str,
    solver: str,
    lambda_mem: float | None,
    time_limit: float | None,
    seed: int,
    namespace: str,
    as_json: bool,
) -> None:
    """Place WORKFLOW on CLUSTER (Eq. 11-13) and write manifests, Dockerfiles and a report."""
    from sedma.deploy.loader import load_cluster, load_workflow
    from sedma.deploy.planner import plan
    from sedma.deploy.report import write_plan_dir

    wf, cl = load_workflow(workflow), load_cluster(cluster)
    mem = _memory()
    try:
        with _status(f"solving {len(wf.agents)} agents x {len(cl.nodes)} nodes ({solver})", as_json):
            result = plan(
                wf, cl, memory=mem, solver=solver, lambda_mem=lambda_mem, time_limit=time_limit, seed=seed
            )
    finally:
        mem.close()
    base = _baselines(result)
    problems = write_plan_dir(result, out, namespace=namespace, baselines=base)
    if as_json:
        emit_json({**result.to_json(), "baselines": base, "out": str(out), "valid": not problems})
        return
    _print_plan(result, base, out, problems)


def _status(text: str, quiet: bool) -> contextlib.AbstractContextManager[Any]:
    """A spinner on stderr while work runs (none in --json mode)."""
    return contextlib.nullcontext() if quiet else err_console.status(text)


def _print_plan(result: Any, base: dict[str, float], out: str, problems: list[str]) -> None:
    bound = "no bound" if result.bound is None else f"{result.bound:.6g} ({result.bound_status})"
    console.print(
        f"[bold]{result.workflow.name}[/]: objective [bold]{result.objective:.6g}[/] "
        f"(comm {result.comm_cost:.6g} + λ_mem {result.lambda_mem:.3g} × mem {result.memory_overhead:.4g}); "
        f"bound {bound}; solver {result.solver}; {result.seconds:.3f} s"
    )
    print_table("placement", ["agent", "node"], sorted(result.placement.items()))
    if base:
        rows = [(k, v, f"{v / max(result.objective, 1e-12):.2f}x") for k, v in base.items()]
        print_table("baselines (same objective)", ["policy", "objective", "vs plan"], rows)
    status = "[green]valid[/]" if not problems else f"[red]{len(problems)} problem(s)[/]"
    console.print(f"wrote {out}/ (manifests/, docker/, plan.json, plan.md): manifests {status}")
    for p in problems:
        console.print(f"  [red]{p}[/]")


@deploy.command("validate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def validate_cmd(directory: str, as_json: bool) -> None:
    """Check a plan directory's manifests: official schema plus semantic checks."""
    from sedma.deploy.manifests import dns_name
    from sedma.deploy.report import load_plan_dir, read_manifests
    from sedma.deploy.validate import check_objects
    from sedma.errors import InputError

    result, _ = load_plan_dir(directory)
    objs = read_manifests(directory)
    problems = check_objects(objs, nodes={dns_name(a): n for a, n in result.placement.items()})
    if as_json:
        emit_json({"objects": len(objs), "problems": problems, "valid": not problems})
    else:
        console.print(
            f"{len(objs)} objects checked: " + ("[green]valid[/]" if not problems else "[red]invalid[/]")
        )
        for p in problems:
            console.print(f"  [red]{p}[/]")
    if problems:
        raise InputError(f"{directory}: {len(problems)} manifest problem(s)")


@deploy.command("explain")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--agent", default=None, help="Only this agent.")
@click.option("--json", "as_json", is_flag=True)
def explain_cmd(directory: str, agent: str | None, as_json: bool) -> None:
    """Why each agent sits where it sits: its traffic and what the alternatives would cost."""
    from sedma.deploy.explain import explain
    from sedma.deploy.report import load_plan_dir
    from sedma.errors import InputError

    result, _ = load_plan_dir(directory)
    rows = explain(result)
    if agent is not None:
        rows = [r for r in rows if r["agent"] == agent]
        if not rows:
            raise InputError(f"no agent {agent!r} in {directory}/plan.json")
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        console.print(
            f"[bold]{r['agent']}[/] on [bold]{r['node']}[/]: cost {r['cost_here']:.4g} "
            f"(comm {r['comm_cost']:.4g}, memory share {r['memory_overhead']:.3g})"
        )
        for t in r["traffic"]:
            console.print(
                f"   talks to {t['agent']} on {t['node']}: {t['data_gb']:.3g} GB, cost {t['cost']:.4g}"
            )
        alts = ", ".join(
            f"{a['node']} {a['delta']:+.4g}{'' if a['fits'] else ' (no room)'}" for a in r["alternatives"][:4]
        )
        console.print(f"   moving it alone: {alts or 'no other node'}")


@deploy.command("apply")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option("--kubeconfig", default=None, help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--context", default=None, help="Kubeconfig context (default: the current one).")
@click.option("--json", "as_json", is_flag=True)
def apply_cmd(
    directory: str, dry_run: bool, kubeconfig: str | None, context: str | None, as_json: bool
) -> None:
    """Server-side apply a plan directory's manifests to the current cluster (field manager sedma)."""
    from sedma.deploy.apply import api_client, apply_objects
    from sedma.deploy.report import read_manifests
    from sedma.deploy.validate import check_objects
    from sedma.errors import InputError

    objs = read_manifests(directory)
    problems = check_objects(objs)
    if problems:
        raise InputError(f"{directory}: refusing to apply invalid manifests: {problems[0]}")
    if dry_run:
        _dry_run(objs, kubeconfig, context, as_json)
        return
    changes = apply_objects(api_client(kubeconfig, context), objs)
    if as_json:
        emit_json([c.__dict__ for c in changes])
        return
    for c in changes:
        console.print(f"{c.kind.lower()}/{c.name} ({c.namespace}) [green]{c.action}[/] (server-side apply)")


def _dry_run(objs: list[dict[str, Any]], kubeconfig: str | None, context: str | None, as_json: bool) -> None:
    from sedma.deploy.apply import api_client, dry_run
    from sedma.errors import SedmaError

    note = ""
    try:
        client = api_client(kubeconfig, context)
        changes = dry_run(client, objs)
    except SedmaError as exc:
        note = f"cluster not reachable ({exc}); showing the full objects"
        changes = dry_run(None, objs)
    if as_json:
        emit_json({"note": note, "changes": [c.__dict__ for c in changes]})
        return
    if note:
        err_console.print(f"[yellow]{note}[/]")
    for c in changes:
        console.print(f"[bold]{c.kind.lower()}/{c.name}[/] ({c.namespace}): would {c.action}")
        if c.diff:
            console.print(c.diff, markup=False, highlight=False)


@deploy.command("watch")
@click.argument("workflow", type=click.Path(dir_okay=False))
@click.argument("cluster", type=click.Path(dir_okay=False))
@click.option("--metrics", "urls", multiple=True, help="Prometheus endpoint URL (repeatable).")
@click.option("--metrics-file", type=click.Path(dir_okay=False), default=None, help="Re-read each interval.")
@click.option(
    "--simulate", "timeline", type=click.Path(dir_okay=False), default=None, help="Scripted timeline."
)
@click.option(
    "-o", "--out", type=click.Path(file_okay=False), default=None, help="Write plans (and plots) here."
)
@click.option("--apply", "do_apply", is_flag=True, help="Server-side apply each new plan.")
@click.option("--kubeconfig", default=None)
@click.option("--interval", type=float, default=15.0, show_default=True, help="Seconds between scrapes.")
@click.option(
    "--iterations", type=int, default=0, show_default=True, help="Stop after N scrapes (0: run on)."
)
@click.option("--solver", type=SOLVER_CHOICES, default="auto", show_default=True)
@click.option("--time-limit", type=float, default=None)
@click.option("--lambda-mem", type=float, default=None)
@click.option("--theta", type=float, default=0.8, show_default=True, help="Eq. 14 throughput ratio floor.")
@click.option("--rho", type=float, default=0.85, show_default=True, help="Eq. 14 utilisation ceiling.")
@click.option("--json", "as_json", is_flag=True)
def watch_cmd(
    workflow: str,
    cluster: str,
    urls: tuple[str, ...],
    metrics_file: str | None,
    timeline: str | None,
    out: str | None,
    do_apply: bool,
    kubeconfig: str | None,
    interval: float,
    iterations: int,
    solver: str,
    time_limit: float | None,
    lambda_mem: float | None,
    theta: float,
    rho: float,
    as_json: bool,
) -> None:
    """Watch metrics, decide with Eq. 14, re-plan with few migrations and apply (or simulate)."""
    from sedma.deploy.controller import ControllerConfig
    from sedma.deploy.loader import load_cluster, load_workflow
    from sedma.deploy.trigger import TriggerConfig
    from sedma.errors import InputError

    sources = sum(bool(x) for x in (urls, metrics_file, timeline))
    if sources != 1:
        raise InputError("give exactly one of --metrics URL, --metrics-file FILE or --simulate TIMELINE")
    trig = TriggerConfig(theta=theta, rho=rho)
    try:
        trig.validate()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    config = ControllerConfig(trigger=trig, solver=solver, time_limit=time_limit, lambda_mem=lambda_mem)
    wf, cl = load_workflow(workflow), load_cluster(cluster)
    if timeline is not None:
        _simulate(wf, cl, timeline, config, out, as_json)
        return
    _watch_live(wf, cl, config, urls, metrics_file, out, do_apply, kubeconfig, interval, iterations, as_json)


def _simulate(wf: Any, cl: Any, timeline: str, config: Any, out: str | None, as_json: bool) -> None:
    from sedma.deploy.simulate import load_timeline, simulate

    tl = load_timeline(timeline)
    mem = _memory()
    try:
        with _status("simulating the timeline", as_json):
            report = simulate(
                wf, cl, tl, memory=mem, config=config, sink_dir=Path(out) / "steps" if out else None
            )
    finally:
        mem.close()
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "simulation.json").write_text(json.dumps(report, indent=2) + "\n")
        _plot_simulation(report, Path(out) / "simulation.png")
    if as_json:
        emit_json(report)
        return
    rows = []
    for name, pol in report["policies"].items():
        for ev in pol["events"]:
            adapt = "-" if ev["adaptation_s"] is None else f"{ev['adaptation_s']:.1f} s"
            kept = "-" if ev["retained"] is None else f"{100 * ev['retained']:.0f}%"
            util = f"{100 * pol['resource_utilisation']:.1f}%"
            rows.append((name, ev["event"], adapt, kept, util, pol["mean_throughput"]))
    print_table(
        "simulation",
        ["policy", "event", "adaptation", "throughput retained", "res. util.", "mean ops/s"],
        rows,
    )
    if out:
        console.print(f"wrote {out}/simulation.json, {out}/simulation.png and per-step plans in {out}/steps/")


def _plot_simulation(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, pol in report["policies"].items():
        ax.step(pol["series"]["t"], pol["series"]["throughput"], where="post", label=name)
    for ev in next(iter(report["policies"].values()))["events"]:
        ax.axvline(ev["t"], color="grey", ls=":")
        ax.annotate(ev["event"], (ev["t"], 0), rotation=90, fontsize=7, va="bottom")
    ax.set_xlabel("time (s, simulated)")
    ax.set_ylabel("throughput (ops/s)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _watch_live(
    wf: Any,
    cl: Any,
    config: Any,
    urls: tuple[str, ...],
    metrics_file: str | None,
    out: str | None,
    do_apply: bool,
    kubeconfig: str | None,
    interval: float,
    iterations: int,
    as_json: bool,
) -> None:
    from sedma.deploy import metrics
    from sedma.deploy.controller import Controller
    from sedma.errors import InputError

    if not do_apply and not out:
        raise InputError("watch needs -o DIR (write plans) or --apply (server-side apply them)")
    if interval <= 0 or iterations < 0:
        raise InputError("--interval must be > 0 and --iterations >= 0")
    sink = _sink(out, do_apply, kubeconfig, as_json)
    mem = _memory()
    try:
        ctl = Controller(wf, cl, memory=mem, config=config, sink=sink)
        n = 0
        while iterations == 0 or n < iterations:
            samples = (
                metrics.read_file(metrics_file)
                if metrics_file
                else [s for u in urls for s in metrics.fetch(u)]
            )
            rep = ctl.step(metrics.observe(samples, workflow=wf.name), time.time())
            _print_step(rep, as_json)
            n += 1
            if iterations == 0 or n < iterations:
                time.sleep(interval)
    finally:
        mem.close()


def _sink(out: str | None, do_apply: bool, kubeconfig: str | None, as_json: bool) -> Any:
    def sink(result: Any, reason: str) -> None:
        from sedma.deploy.apply import api_client, apply_objects
        from sedma.deploy.manifests import compile_plan
        from sedma.deploy.report import write_plan_dir

        if out:
            write_plan_dir(result, out)
        if do_apply:
            objs = [o for pair in compile_plan(result).values() for o in pair]
            apply_objects(api_client(kubeconfig), objs)
        if not as_json:
            console.print(
                f"[bold]{reason}[/]: plan {result.digest} objective {result.objective:.6g}, "
                f"{result.migrations} migration(s), {result.seconds:.3f} s"
            )

    return sink


def _print_step(rep: Any, as_json: bool) -> None:
    d = rep.decision
    if as_json:
        sys_line = {
            "t": rep.t,
            "action": rep.action,
            "reason": d.reason,
            "ratio": d.ratio,
            "utilisation": d.utilisation,
            "migrations": rep.migrations,
            "dead": list(rep.dead),
        }
        click.echo(json.dumps(sys_line))
        return
    ratio = "-" if d.ratio is None else f"{d.ratio:.2f}"
    util = "-" if d.utilisation is None else f"{d.utilisation:.2f}"
    console.print(f"throughput/expected {ratio}, utilisation {util}: {rep.action} ({d.reason})")
