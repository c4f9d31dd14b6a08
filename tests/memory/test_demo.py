"""The quick-start demo runs and prints what it stored and the stream statistics."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from sedma.memory.demo import run_demo


def test_demo_prints_patterns_and_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEDMA_LTM_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")  # never used
    monkeypatch.setenv("SEDMA_STM_URL", "redis://127.0.0.1:1/0")
    buf = io.StringIO()
    run_demo(Console(file=buf, width=120), home=tmp_path)
    out = buf.getvalue()
    assert '{"lambda": 0.003}' in out and "peer-a" in out
    assert "n=20" in out and "trend=" in out
    assert (tmp_path / "memory.db").exists()
