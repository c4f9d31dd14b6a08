"""``sedma bench memory`` (src/sedma/bench/memory.py) runs end to end at small sizes.

It lives beside the memory tests because tests/bench/ is not this layer's; speed goals are
checked by the benchmark itself, never here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sedma.bench.memory import BenchConfig, memory, summarize, time_calls
from sedma.errors import ConfigError

SMALL = ["--records", "300", "--lookups", "3000", "--stm-ops", "600", "--json"]


def _run(args: list[str]) -> dict[str, object]:
    result = CliRunner().invoke(memory, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc: dict[str, object] = json.loads(result.stdout)
    return doc


def test_bench_reports_every_figure_with_floors_goals_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "memory.png"
    doc = _run([*SMALL, "--plot", str(plot)])
    (sqlite,) = doc["ltm"]  # type: ignore[misc]
    assert sqlite["backend"] == "sqlite" and sqlite["put_per_s"] > 0
    for key in ("get_uncached", "get_cached", "floor_driver", "floor_dict"):
        assert 0 < sqlite[key]["p50_us"] <= sqlite[key]["p99_us"]
    assert sqlite["cached_over_dict"] > 1.0  # our cache does more work than a bare dict
    assert [s["backend"] for s in doc["stm"]] == ["local"]  # type: ignore[attr-defined]
    goals = doc["goals"]
    assert [g["goal"] for g in goals] == [  # type: ignore[attr-defined]
        "cached get p50 <= 5 us (sqlite)",
        "uncached get p50 <= 100 us (sqlite)",
    ]
    assert doc["plot"] == str(plot) and plot.stat().st_size > 1000


@pytest.mark.postgres
@pytest.mark.redis
def test_bench_adds_postgres_and_redis_and_leaves_no_trace(
    pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    monkeypatch.setenv("SEDMA_LTM_URL", pg_url)
    monkeypatch.setenv("SEDMA_STM_URL", redis_url)
    doc = _run(["--records", "100", "--lookups", "1000", "--stm-ops", "300", "--json", "--no-plot"])
    assert [r["backend"] for r in doc["ltm"]] == ["sqlite", "postgresql"]  # type: ignore[attr-defined]
    assert [s["backend"] for s in doc["stm"]] == ["local", "redis"]  # type: ignore[attr-defined]
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sedma_bench_%'").fetchall()
    assert left == []


def test_time_calls_and_summarize() -> None:
    ticks: list[int] = []
    ns = time_calls(lambda x: x + 1, [(i,) for i in range(5000)], ticks.append)
    assert ns.shape == (5000,) and (ns > 0).all() and sum(ticks) == 5000
    s = summarize(ns)
    assert s["p50_us"] <= s["p99_us"]


def test_bench_config_validates() -> None:
    with pytest.raises(ConfigError, match="lookups"):
        BenchConfig(lookups=0).validate()


def test_unreachable_postgres_fails_before_the_long_parts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import time

    from sedma.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SEDMA_LTM_URL", f"postgresql+psycopg://postgres@127.0.0.1:{port}/x")
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "memory", "--no-plot"])  # default sizes: would take a minute if not failing first
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "is unreachable" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 10
