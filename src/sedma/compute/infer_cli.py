"""``sedma infer``: the digits MLP on crossbars, accuracy digital vs analog raw vs corrected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sedma._output import emit_json, err_console, print_table
from sedma.compute.inference import InferConfig, resolve_materials, run_inference
from sedma.errors import InputError

COLUMNS = ("material", "digital", "raw", "corrected", "raw_error", "corrected_error")


def _table(result: dict[str, Any]) -> None:
    rows = [
        [name, *(f"{row[c]:.2%}" for c in COLUMNS[1:4]), *(row[c] for c in COLUMNS[4:])]
        for name, row in result["materials"].items()
    ]
    title = (
        f"Digits MLP (64-{result['hidden']}-10) on {result['tile']}x{result['tile']} crossbars: "
        f"{result['test_samples']} test images, mean of {result['trials']} programming seed(s)"
    )
    print_table(title, COLUMNS, rows)


@click.command(name="infer")
@click.option(
    "--material",
    "materials",
    multiple=True,
    required=True,
    help="RRAM material (repeatable), 'all', or a YAML/JSON device file.",
)
@click.option("--trials", default=3, show_default=True, help="Programming seeds averaged per material.")
@click.option(
    "--seed", default=0, show_default=True, help="Seed of the data split, training and programming."
)
@click.option("--tile", default=64, show_default=True, help="Crossbar size (tile × tile cells).")
@click.option("--hidden", default=64, show_default=True, help="Hidden units of the MLP.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Also write a bar chart (PNG).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def infer(
    materials: tuple[str, ...],
    trials: int,
    seed: int,
    tile: int,
    hidden: int,
    plot: str | None,
    as_json: bool,
) -> None:
    """Digits MLP accuracy: digital vs analog raw vs corrected, per material."""
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    devices = resolve_materials(materials)
    for dev in devices:  # before training: a tile no device can hold fails now, not minutes later
        dev.check_tile(tile, "--tile")
    if plot and not Path(plot).resolve().parent.is_dir():
        raise InputError(f"cannot write plot {plot}: its folder does not exist")
    config = InferConfig(hidden=hidden, seed=seed, trials=trials, tile=tile)
    config.validate()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        task = progress.add_task("training / loading the digits MLP", total=None)

        def step(name: str) -> None:
            progress.update(task, description=f"programming and reading on {name}")

        result = run_inference(devices, config, progress=step)
    if plot:
        write_plot(result, Path(plot))
    if as_json:
        emit_json(result)
    else:
        _table(result)


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Grouped bars: digital, raw and corrected accuracy per material (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["materials"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.5))
    for k, col in enumerate(("digital", "raw", "corrected")):
        values = [100 * result["materials"][n][col] for n in names]
        ax.bar(x + (k - 1) * 0.27, values, 0.27, label=col)
    ax.set_xticks(x, names)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(max(0.0, min(100 * r["raw"] for r in result["materials"].values()) - 5), 100)
    ax.set_title(f"digits MLP on crossbars ({result['test_samples']} images, {result['trials']} seed(s))")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise InputError(f"cannot write plot {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)
