"""``sedma bench memory``: LTM get/put and STM throughput, each beside a floor measured in the same run.

Floors: a plain dict look-up for the cached get, the bare driver executing the same primary-key
SELECT for the uncached get, ``deque.append`` for STM appends. Goals (issue 2): cached get
p50 <= 5 µs, SQLite uncached get p50 <= 100 µs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.progress import Progress

from sedma._output import err_console, print_table
from sedma.bench._figures import default_plot_path, finish, pyplot, save_figure
from sedma.errors import ConfigError, SedmaError
from sedma.memory.engine import make_engine, with_retries
from sedma.memory.ltm import LongTermMemory
from sedma.memory.stm import ShortTermMemory
from sedma.memory.urls import (
    ENV_LTM_URL,
    ENV_STM_URL,
    parse_ltm_url,
    redact,
    sqlite_url,
    with_search_path,
)

GOAL_CACHED_P50_US = 5.0
GOAL_SQLITE_UNCACHED_P50_US = 100.0
Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Sizes of one benchmark run (issue 2: 10,000 records, 100,000 look-ups)."""

    records: int = 10_000
    lookups: int = 100_000
    stm_ops: int = 20_000
    seed: int = 0

    def validate(self) -> BenchConfig:
        """Every size must be a positive integer."""
        for name in ("records", "lookups", "stm_ops"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"bench memory: {name} must be an integer >= 1, got {v!r}")
        return self


# ---- measurement ---------------------------------------------------------------------------


def time_calls(
    fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], tick: Callable[[int], None]
) -> np.ndarray:
    """Latency of each call fn(*a) in ns; the loop is the measurement, so it stays in Python."""
    out = np.empty(len(args), dtype=np.int64)
    pc = time.perf_counter_ns
    for i, a in enumerate(args):
        t0 = pc()
        fn(*a)
        out[i] = pc() - t0
        if i % 2048 == 2047:
            tick(2048)
    tick(len(args) % 2048)
    return out


def summarize(ns: np.ndarray) -> dict[str, float]:
    """p50/p99/mean in microseconds."""
    p50, p99 = np.percentile(ns, [50, 99]) / 1000.0
    return {"p50_us": float(p50), "p99_us": float(p99), "mean_us": float(ns.mean() / 1000.0)}


def _keys(n: int) -> list[Key]:
    return [("compute", "partition", f"dense-{i:06d}/TaOx-HfOy") for i in range(n)]


def _value(i: int) -> dict[str, Any]:
    return {"tile": [256, 256], "lambda": 1e-3 * (1 + i % 7), "devices": ["EpiRAM", "TaOx-HfOy"]}


def fill(ltm: LongTermMemory, keys: list[Key], progress: Progress) -> float:
    """Put every key once (one transaction each); returns puts per second."""
    task = progress.add_task(f"{ltm.backend}: put {len(keys):,} records", total=len(keys))
    t0 = time.perf_counter()
    for i, k in enumerate(keys):
        ltm.put(*k, _value(i), score=(i % 1000) / 1000.0)
        if i % 256 == 255:
            progress.advance(task, 256)
    elapsed = time.perf_counter() - t0
    progress.update(task, completed=len(keys))
    return len(keys) / elapsed


def driver_floor(url: str, lookups: list[Key], progress: Progress) -> dict[str, float]:
    """The same primary-key SELECT issued through the bare driver: what our uncached get adds to."""
    with LongTermMemory(url, cache_size=0) as ltm:
        ltm.get(*lookups[0])  # opens the reader connection and compiles nothing further
        get = ltm._sql.get
        conn = ltm._reader
        cur = conn.cursor()
        positional = get.order is not None

        def one(layer: str, kind: str, key: str) -> None:
            p: Any = (layer, kind, key) if positional else {"layer": layer, "kind": kind, "key": key}
            cur.execute(get.sql, p)
            cur.fetchone()

        task = progress.add_task(f"{ltm.backend}: driver floor", total=len(lookups))
        ns = time_calls(one, lookups, lambda n: progress.advance(task, n))
        cur.close()
    return summarize(ns)


def bench_ltm(url: str, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Fill an empty store, then time cached, uncached, driver and dict look-ups of the same keys."""
    keys = _keys(cfg.records)
    rng = np.random.default_rng(cfg.seed)
    lookups = [keys[i] for i in rng.integers(0, len(keys), size=cfg.lookups)]
    with LongTermMemory(url, capacity=max(cfg.records, 1)) as ltm:
        ltm.clear()
        backend = ltm.backend
        put_per_s = fill(ltm, keys, progress)
    result: dict[str, Any] = {"backend": backend, "url": redact(url), "put_per_s": put_per_s}
    with LongTermMemory(url, cache_size=0) as cold:
        task = progress.add_task(f"{backend}: get, no cache", total=len(lookups))
        result["get_uncached"] = summarize(time_calls(cold.get, lookups, lambda n: progress.advance(task, n)))
    with LongTermMemory(url, cache_size=cfg.records) as warm:
        for k in keys:
            warm.get(*k)
        task = progress.add_task(f"{backend}: get, LRU cache", total=len(lookups))
        result["get_cached"] = summarize(time_calls(warm.get, lookups, lambda n: progress.advance(task, n)))
    result["floor_driver"] = driver_floor(url, lookups, progress)
    table = {k: k for k in keys}
    task = progress.add_task(f"{backend}: dict floor", total=len(lookups))
    result["floor_dict"] = summarize(
        time_calls(lambda *k: table.get(k), lookups, lambda n: progress.advance(task, n))
    )
    result["uncached_over_driver"] = result["get_uncached"]["p50_us"] / result["floor_driver"]["p50_us"]
    result["cached_over_dict"] = result["get_cached"]["p50_us"] / result["floor_dict"]["p50_us"]
    return result


def bench_stm(stm: ShortTermMemory, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Appends/s, stats/s and append+stats/s over 100 streams of a full window, beside deque.append."""
    ops = cfg.stm_ops if stm.backend == "local" else max(cfg.stm_ops // 10, 100)
    streams = [f"run/bench/s{i:03d}" for i in range(100)]
    rng = np.random.default_rng(cfg.seed)
    samples = rng.normal(1.0, 0.1, size=ops).tolist()
    args = [(streams[i % 100], samples[i]) for i in range(ops)]
    task = progress.add_task(f"stm {stm.backend}", total=3 * ops)
    tick: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
    append = time_calls(stm.append, args, tick)
    stats = time_calls(stm.stats, [(a[0],) for a in args], tick)

    def append_then_stats(stream: str, v: float) -> None:
        stm.append(stream, v)
        stm.stats(stream)

    both = time_calls(append_then_stats, args, tick)
    rings: dict[str, deque[float]] = {s: deque(maxlen=stm.window) for s in streams}
    floor = time_calls(lambda s, v: rings[s].append(v), args, lambda n: None)
    stm.clear()
    return {
        "backend": stm.backend,
        "ops": ops,
        "append_per_s": _per_s(append),
        "stats_per_s": _per_s(stats),
        "append_stats_per_s": _per_s(both),
        "floor_deque_append_per_s": _per_s(floor),
        "append_p50_us": summarize(append)["p50_us"],
        "stats_p50_us": summarize(stats)["p50_us"],
    }


def _per_s(ns: np.ndarray) -> float:
    return float(1e9 / ns.mean())


# ---- targets, goals, output ----------------------------------------------------------------


@contextlib.contextmanager
def pg_scratch_schema(url: str) -> Iterator[str]:
    """A throw-away schema in the PostgreSQL of SEDMA_LTM_URL, so the benchmark never touches real records."""
    from sqlalchemy import text

    schema = f"sedma_bench_{uuid.uuid4().hex[:10]}"
    engine = make_engine(parse_ltm_url(url))

    def run(sql: str) -> None:
        def attempt() -> None:
            with engine.begin() as conn:
                conn.execute(text(sql))

        with_retries(attempt, what="bench scratch schema", url=url)

    try:
        run(f'CREATE SCHEMA "{schema}"')
        yield with_search_path(url, schema)
    finally:
        with contextlib.suppress(SedmaError):
            run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


def goals(ltm_results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 2's goals checked against the SQLite figures of this run."""
    sqlite = next(r for r in ltm_results if r["backend"] == "sqlite")
    checks = [
        ("cached get p50 <= 5 us (sqlite)", sqlite["get_cached"]["p50_us"], GOAL_CACHED_P50_US),
        (
            "uncached get p50 <= 100 us (sqlite)",
            sqlite["get_uncached"]["p50_us"],
            GOAL_SQLITE_UNCACHED_P50_US,
        ),
    ]
    return [{"goal": g, "value_us": v, "limit_us": lim, "pass": v <= lim} for g, v, lim in checks]


def run_bench(cfg: BenchConfig, *, progress: Progress) -> dict[str, Any]:
    """One run: SQLite (+ PostgreSQL if SEDMA_LTM_URL), in-process STM (+ Redis if SEDMA_STM_URL)."""
    results: dict[str, Any] = {"config": asdict(cfg), "ltm": [], "stm": []}
    pg = os.environ.get(ENV_LTM_URL, "")
    stm_url = os.environ.get(ENV_STM_URL)
    with contextlib.ExitStack() as stack:
        # Reach every configured server before the long parts, so a bad URL fails in seconds.
        pg_url = (
            stack.enter_context(pg_scratch_schema(pg)) if pg.startswith(("postgresql", "postgres")) else None
        )
        remote = None
        if stm_url:
            ns = f"sedma-bench-{uuid.uuid4().hex[:8]}"
            remote = stack.enter_context(ShortTermMemory(stm_url, namespace=ns))
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sedma-bench-"))
        for url in (sqlite_url(Path(tmp) / "bench.db"), pg_url):
            if url is not None:
                results["ltm"].append(bench_ltm(url, cfg, progress))
        for stm in (stack.enter_context(ShortTermMemory(local=True)), remote):
            if stm is not None:
                results["stm"].append(bench_stm(stm, cfg, progress))
    results["goals"] = goals(results["ltm"])
    return results


def print_report(results: dict[str, Any]) -> None:
    """Readable tables: latencies beside their floors, put and STM throughput, goals pass/fail."""
    rows = []
    for r in results["ltm"]:
        for mode, floor, ratio in (
            ("get, no cache", "floor_driver", "uncached_over_driver"),
            ("get, LRU cache", "floor_dict", "cached_over_dict"),
        ):
            m = r["get_uncached" if "no" in mode else "get_cached"]
            rows.append(
                (r["backend"], mode, m["p50_us"], m["p99_us"], r[floor]["p50_us"], f"{r[ratio]:.2f}x")
            )
    print_table("LTM get latency (µs)", ["backend", "mode", "p50", "p99", "floor p50", "vs floor"], rows)
    print_table(
        "LTM put", ["backend", "puts/s"], [(r["backend"], f"{r['put_per_s']:,.0f}") for r in results["ltm"]]
    )
    rates = ("append_per_s", "stats_per_s", "append_stats_per_s", "floor_deque_append_per_s")
    stm_rows = [(s["backend"], s["ops"], *(f"{s[k]:,.0f}" for k in rates)) for s in results["stm"]]
    print_table(
        "STM throughput",
        ["backend", "ops", "append/s", "stats/s", "append+stats/s", "deque floor/s"],
        stm_rows,
    )
    goal_rows = [
        (g["goal"], g["value_us"], "[green]pass[/green]" if g["pass"] else "[red]FAIL[/red]")
        for g in results["goals"]
    ]
    print_table("goals", ["goal", "measured µs", "result"], goal_rows)


def plot(results: dict[str, Any], path: Path) -> Path:
    """Bar chart of p50/p99 get latency per backend and mode, with the floors, on a log scale."""
    plt = pyplot()

    labels, p50, p99 = [], [], []
    for r in results["ltm"]:
        for name, key in (("no cache", "get_uncached"), ("driver floor", "floor_driver"),
                          ("LRU cache", "get_cached"), ("dict floor", "floor_dict")):  # fmt: skip
            labels.append(f"{r['backend']}\n{name}")
            p50.append(r[key]["p50_us"])
            p99.append(r[key]["p99_us"])
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(labels)), 4))
    ax.bar(x - 0.2, p50, 0.4, label="p50")
    ax.bar(x + 0.2, p99, 0.4, label="p99")
    ax.axhline(GOAL_CACHED_P50_US, color="green", ls="--", lw=1, label="goal: cached p50 5 µs")
    ax.axhline(
        GOAL_SQLITE_UNCACHED_P50_US, color="red", ls="--", lw=1, label="goal: SQLite uncached p50 100 µs"
    )
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("get latency (µs)")
    cfg = results["config"]
    ax.set_title(f"sedma bench memory: {cfg['records']:,} records, {cfg['lookups']:,} look-ups")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


@click.command(name="memory")
@click.option(
    "--records", default=10_000, show_default=True, type=click.IntRange(min=1), help="Records stored."
)
@click.option(
    "--lookups", default=100_000, show_default=True, type=click.IntRange(min=1), help="Timed look-ups."
)
@click.option(
    "--stm-ops", default=20_000, show_default=True, type=click.IntRange(min=1), help="STM operations."
)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to save the plot [default: $SEDMA_HOME/bench/memory.png].")  # fmt: skip
@click.option("--no-plot", is_flag=True, help="Do not draw the plot.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
def memory(
    records: int, lookups: int, stm_ops: int, plot_path: Path | None, no_plot: bool, as_json: bool
) -> None:
    """LTM get p50/p99 with and without the LRU cache, put and STM throughput, beside in-run floors."""
    cfg = BenchConfig(records=records, lookups=lookups, stm_ops=stm_ops).validate()
    with Progress(console=err_console, transient=True) as progress:
        results = run_bench(cfg, progress=progress)
    results["plot"] = None if no_plot else str(plot(results, plot_path or default_plot_path("memory")))
    finish(results, as_json=as_json, report=print_report)
