"""``sedma memory ...`` end to end: readable output, --json, and one-line errors with exit 1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sedma.cli import main
from sedma.memory import LongTermMemory, ShortTermMemory


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the real entry point in-process; returns (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def filled(_isolated_home: Path) -> Path:
    with LongTermMemory() as ltm:
        ltm.put("compute", "lambda", "smooth/EpiRAM", {"lambda": 3e-3}, score=0.9)
        ltm.put("compute", "partition", "dense/TaOx-HfOy", {"tile": [256, 256]}, score=0.5)
        ltm.put("net", "peer", "[bold]p1", {"rtt_ms": 2.0}, score=0.7)
    return _isolated_home


def test_stats_readable_and_json(capsys: pytest.CaptureFixture[str], filled: Path) -> None:
    code, out, _ = run(capsys, "memory", "stats")
    assert code == 0 and "3 / 10000 records" in out and "compute" in out and "lambda" in out
    code, out, _ = run(capsys, "memory", "stats", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ltm"]["count"] == 3 and doc["ltm"]["backend"] == "sqlite"
    assert doc["stm"] == {"backend": "local", "window": 100, "streams": []}


def test_show_filters_and_escapes_markup(capsys: pytest.CaptureFixture[str], filled: Path) -> None:
    code, out, _ = run(capsys, "memory", "show", "--layer", "compute", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["count"] == 2 and {r["kind"] for r in doc["records"]} == {"lambda", "partition"}
    code, out, _ = run(capsys, "memory", "show", "--kind", "lambda", "--json")
    assert [r["key"] for r in json.loads(out)["records"]] == ["smooth/EpiRAM"]
    code, out, _ = run(capsys, "memory", "show")
    assert code == 0 and "[bold]p1" in out and "smooth/EpiRAM" in out
    code, out, _ = run(capsys, "memory", "show", "--limit", "1")
    assert "2 more" in out


def test_export_clear_import_round_trip(
    capsys: pytest.CaptureFixture[str], filled: Path, tmp_path: Path
) -> None:
    path = tmp_path / "mem.jsonl"
    code, out, _ = run(capsys, "memory", "export", str(path), "--json")
    assert code == 0 and json.loads(out) == {"exported": 3, "file": str(path)}
    code, out, _ = run(capsys, "memory", "clear", "--yes")
    assert code == 0 and "cleared 3 records" in out
    code, out, _ = run(capsys, "memory", "import", str(path))
    assert code == 0 and "imported 3 records (3 stored)" in out
    with LongTermMemory() as ltm:
        assert ltm.get("net", "peer", "[bold]p1").value == {"rtt_ms": 2.0}  # type: ignore[union-attr]


@pytest.mark.redis
def test_stats_and_clear_see_redis_streams(
    capsys: pytest.CaptureFixture[str], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEDMA_STM_URL", redis_url)
    with ShortTermMemory() as stm:
        stm.clear()
        stm.extend("net/load/p1", [1.0, 2.0, 3.0])
    code, out, _ = run(capsys, "memory", "stats", "--json")
    streams = json.loads(out)["stm"]["streams"]
    assert code == 0 and streams[0]["stream"] == "net/load/p1" and streams[0]["mean"] == 2.0
    code, out, _ = run(capsys, "memory", "clear", "--yes", "--json")
    assert json.loads(out)["streams_cleared"] == 1


def _assert_one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 1, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and fragment in err, err


def test_clear_without_yes_refuses(capsys: pytest.CaptureFixture[str], filled: Path) -> None:
    _assert_one_line_error(*run(capsys, "memory", "clear"), "--yes")
    with LongTermMemory() as ltm:
        assert ltm.count() == 3


def test_import_of_malformed_file_names_line_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], filled: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"layer": "a", "kind": "b", "key": "c", "value": 1}\n{"layer": "a"\n')
    _assert_one_line_error(*run(capsys, "memory", "import", str(path)), f"{path}:2: not valid JSON")
    _assert_one_line_error(*run(capsys, "memory", "import", str(tmp_path / "none.jsonl")), "cannot read")
    with LongTermMemory() as ltm:
        assert ltm.count() == 3


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SEDMA_LTM_URL": "postgresql+psycopg://postgres@127.0.0.1:{port}/x"}, "is unreachable"),
        ({"SEDMA_LTM_URL": "mysql://u@h/db"}, "unsupported scheme"),
        ({"SEDMA_LTM_URL": "postgresql+psycopg://u@h:xx/db"}, "malformed LTM URL"),
        ({"SEDMA_STM_URL": "redis://127.0.0.1:{port}/0"}, "Redis at redis://127.0.0.1"),
        ({"SEDMA_STM_URL": "redis://h:port/0"}, "malformed STM URL"),
    ],
)
def test_bad_backends_give_one_line_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(port=_closed_port()))
    _assert_one_line_error(*run(capsys, "memory", "stats"), fragment)


def test_corrupt_database_in_a_real_process(_isolated_home: Path) -> None:
    db = _isolated_home / "memory.db"
    db.write_bytes(b"garbage" * 1000)
    proc = subprocess.run(
        [sys.executable, "-m", "sedma.cli", "memory", "show"], capture_output=True, text=True, timeout=60
    )
    _assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, "is not a readable SEDMA database")
    assert db.read_bytes() == b"garbage" * 1000


def test_demo_command_runs_on_a_temporary_store(
    capsys: pytest.CaptureFixture[str], _isolated_home: Path
) -> None:
    code, out, _ = run(capsys, "memory", "demo")
    assert code == 0 and "smooth/EpiRAM" in out and "trend=" in out
    assert not (_isolated_home / "memory.db").exists()  # the user's memory is left alone
