"""What every benchmark does at its end: draw with a headless backend, save the PNG, print or emit JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sedma._output import console, emit_json
from sedma.memory.urls import resolve_home


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (benchmarks run headless), imported only when plotting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def default_plot_path(name: str) -> Path:
    """``$SEDMA_HOME/bench/<name>.png``, where every benchmark keeps its plot unless told otherwise."""
    return resolve_home() / "bench" / f"{name}.png"


def save_figure(fig: Any, path: Path, *, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` (creating its folder) and free it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def finish(results: dict[str, Any], *, as_json: bool, report: Callable[[dict[str, Any]], None]) -> None:
    """One JSON document for machines, else the readable report and where the plot went."""
    if as_json:
        emit_json(results)
        return
    report(results)
    if results.get("plot"):
        console.print(f"plot: {results['plot']}")
