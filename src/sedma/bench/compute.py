"""``sedma bench compute``: crossbar MVM/s, error, programming time and peak RSS beside numpy float32.

Each case (n, B) runs in a fresh spawned process so its peak RSS is its own: A (float32, uniform
[0, 1)) is programmed on TaOx-HfOy tiles of 512 (write-and-verify), then corrected reads (full
MELISO+ correction, per-read noise, 8-bit converters, λ chosen adaptively on the first read) are
timed for a fixed wall-clock budget beside numpy's float32 ``A @ x`` on the same data in the
same process. ``slowdown`` = our time per vector ÷ numpy's; ``rss_ratio`` = (peak RSS − RSS
before A existed, code already loaded) ÷ the float32 matrix's bytes.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import click
import numpy as np
import psutil

from sedma._output import emit_json, print_table
from sedma.bench._figures import default_plot_path, pyplot, save_figure

MATERIAL = "TaOx-HfOy"
TILE = 512


def _rate(fn: Any, budget_s: float) -> float:
    """Calls per second of ``fn`` over about ``budget_s`` (at least 2 calls)."""
    reps, t0 = 0, time.perf_counter()
    while reps < 2 or time.perf_counter() - t0 < budget_s:
        fn()
        reps += 1
    return reps / (time.perf_counter() - t0)


def _interleaved(ours: Any, floor: Any, budget_s: float, rounds: int = 5) -> tuple[float, float]:
    """Best-of-rounds rates of both, alternating, so load from other processes hits both alike."""
    ours(), floor()
    best_ours = best_floor = 0.0
    for _ in range(rounds):
        best_floor = max(best_floor, _rate(floor, budget_s / (2 * rounds)))
        best_ours = max(best_ours, _rate(ours, budget_s / (2 * rounds)))
    return best_ours, best_floor


def run_case(n: int, batch: int, seed: int, budget_s: float, threads: int) -> dict[str, Any]:
    """One case, meant to run in its own process (peak RSS is per process)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _case(n, batch, seed, budget_s, threads)


def _case(n: int, batch: int, seed: int, budget_s: float, threads: int) -> dict[str, Any]:
    from sedma.compute.crossbar import CrossbarConfig, exact_product, program
    from sedma.compute.lam import choose_lambda

    # Code is not the matrix's memory: load it (imports, the compiled read kernel) on a tiny
    # matrix first, so the baseline below holds everything but A and its tiles.
    tiny = program(np.eye(8, dtype=np.float32), device=MATERIAL, tile=8, seed=seed)
    tiny.read(np.ones(8, dtype=np.float32)), tiny.read(np.ones((8, batch), dtype=np.float32))
    tiny.close()
    base_mb = psutil.Process().memory_info().rss / 2**20
    rng = np.random.default_rng(seed)
    a = rng.random((n, n), dtype=np.float32)
    x = rng.random((n, batch), dtype=np.float32)
    t0 = time.perf_counter()
    # Programming has no numpy counterpart: it may use every core. Reads use ``threads`` workers,
    # one shard each (a shard per worker is the local layout; Ray would spread them over actors).
    cfg = CrossbarConfig(threads=threads, shards=threads, program_threads=os.cpu_count() or 1)
    pm = program(a, device=MATERIAL, tile=TILE, seed=seed, config=cfg)
    program_s = time.perf_counter() - t0
    first = pm.read(x, correction="full", lam=lambda p, var: choose_lambda(p, var)[0])
    lam = pm.last_lam
    exact = exact_product(a, x)
    error = float(np.linalg.norm(first.output - exact) / np.linalg.norm(exact))
    ours_calls, numpy_calls = _interleaved(
        lambda: pm.read(x, correction="full", lam=lam), lambda: a @ x, budget_s
    )
    ours, numpy_rate = ours_calls * batch, numpy_calls * batch
    pm.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    matrix_mb = a.nbytes / 2**20
    return {
        "n": n,
        "batch": batch,
        "mvm_per_s": ours,
        "numpy_f32_mvm_per_s": numpy_rate,
        "slowdown": numpy_rate / ours,
        "relative_error": error,
        "raw_relative_error": float(np.linalg.norm(first.raw - exact) / np.linalg.norm(exact)),
        "lambda": lam,
        "program_s": program_s,
        "program_iterations": pm.stats.iterations,
        "peak_rss_mb": peak_mb,
        "baseline_rss_mb": base_mb,
        "matrix_mb": matrix_mb,
        "rss_ratio": (peak_mb - base_mb) / matrix_mb,
        "material": MATERIAL,
        "tile": TILE,
        "threads": threads,
    }


def _in_child(n: int, batch: int, seed: int, budget_s: float, threads: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(run_case, n, batch, seed, budget_s, threads).result()


SLOWDOWN_GOAL = 4.0  # corrected MVM with per-read noise within 4x of numpy float32
PROGRAM_GOAL_S, PROGRAM_GOAL_N = 3.0, 4096  # programming a 4096² matrix
RSS_GOAL = 6.0  # peak memory growth over the loaded code, in float32 matrices


def goals(cases: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """The issue's goals judged on this run's cases: (goal, what was measured, met)."""
    out = []
    for c in cases:
        out.append((f"n={c['n']} B={c['batch']}: slowdown <= {SLOWDOWN_GOAL:g}x", f"{c['slowdown']:.2f}x",
                    c["slowdown"] <= SLOWDOWN_GOAL))  # fmt: skip
    for c in cases:
        if c["n"] == PROGRAM_GOAL_N:
            out.append((f"program {PROGRAM_GOAL_N}² (B={c['batch']} run) <= {PROGRAM_GOAL_S:g} s",
                        f"{c['program_s']:.2f} s", c["program_s"] <= PROGRAM_GOAL_S))  # fmt: skip
    worst = max(cases, key=lambda c: c["rss_ratio"])
    where = f"{worst['rss_ratio']:.2f}x (n={worst['n']} B={worst['batch']})"
    goal = f"peak RSS growth <= {RSS_GOAL:g}x the matrix (worst case)"
    out.append((goal, where, worst["rss_ratio"] <= RSS_GOAL))
    return out


def _plot(cases: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()

    labels = [f"n={c['n']}\nB={c['batch']}" for c in cases]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.bar(labels, [c["slowdown"] for c in cases], color="tab:blue")
    left.axhline(SLOWDOWN_GOAL, color="tab:red", ls="--", label="goal: 4x numpy float32")
    left.set_ylabel("time per MVM / numpy float32")
    left.legend()
    pos = np.arange(len(cases))
    right.bar(pos - 0.2, [c["raw_relative_error"] for c in cases], 0.4, color="tab:gray", label="raw")
    right.bar(pos + 0.2, [c["relative_error"] for c in cases], 0.4, color="tab:green", label="corrected")
    right.set_xticks(pos, labels)
    right.set_yscale("log")
    right.set_ylabel("relative error")
    right.legend()
    fig.suptitle(f"sedma bench compute: {MATERIAL}, tile {TILE}, full correction, read noise")
    fig.tight_layout()
    save_figure(fig, path)


@click.command()
@click.option("--quick", is_flag=True, help="n = 1024 only (under a minute).")
@click.option("--json", "as_json", is_flag=True, help="Print the cases as a JSON list.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the PNG plot [default: $SEDMA_HOME/bench/compute.png].")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
              help="BLAS and worker threads, the same for numpy and SEDMA.")  # fmt: skip
def compute(quick: bool, as_json: bool, plot_path: str | None, seed: int, threads: int) -> None:
    """Crossbar MVM/s, error, programming time and peak RSS beside numpy float32."""
    from tqdm import tqdm

    sizes = (1024,) if quick else (1024, 4096)
    grid = [(n, b) for n in sizes for b in (1, 32)]
    budget = 2.0 if quick else 4.0
    progress = tqdm(grid, desc="bench compute", disable=as_json)
    cases = [_in_child(n, b, seed, budget, threads) for n, b in progress]
    plot_file = Path(plot_path) if plot_path else default_plot_path("compute")
    _plot(cases, plot_file)
    if as_json:
        emit_json(cases)
        return
    cols = ["n", "batch", "mvm_per_s", "numpy_f32_mvm_per_s", "slowdown", "relative_error", "program_s",
            "peak_rss_mb", "rss_ratio"]  # fmt: skip
    print_table("sedma bench compute", cols, [[c[k] for k in cols] for c in cases])
    verdicts = [(g, m, "yes" if ok else "no") for g, m, ok in goals(cases)]
    print_table("goals", ["goal", "measured", "met"], verdicts)
    click.echo(f"plot: {plot_file}")
