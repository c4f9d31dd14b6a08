"""``sedma infer``: the digits MLP on crossbars, accuracy digital vs analog raw vs corrected."""

from __future__ import annotations

from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sedma._output import emit_json, err_console, print_table
from sedma.compute.inference import InferConfig, resolve_materials, run_inference

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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def infer(materials: tuple[str, ...], trials: int, seed: int, tile: int, hidden: int, as_json: bool) -> None:
    """Digits MLP accuracy: digital vs analog raw vs corrected, per material."""
    devices = resolve_materials(materials)
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
    if as_json:
        emit_json(result)
    else:
        _table(result)
