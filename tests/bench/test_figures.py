"""The shared end of every benchmark: the plot lands under SEDMA_HOME, JSON or a report is printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sedma.bench._figures import default_plot_path, finish, pyplot, save_figure


def test_plots_default_to_the_bench_folder_of_sedma_home(_isolated_home: Path) -> None:
    assert default_plot_path("net") == _isolated_home / "bench" / "net.png"


def test_save_figure_creates_the_folder_and_writes_a_png(tmp_path: Path) -> None:
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "deep" / "er" / "x.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_finish_prints_json_for_machines_and_the_report_for_people(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[dict[str, Any]] = []
    results = {"value": 1.5, "plot": None}
    finish(results, as_json=True, report=seen.append)
    assert json.loads(capsys.readouterr().out) == results and not seen
    finish(results, as_json=False, report=seen.append)
    assert seen == [results]
