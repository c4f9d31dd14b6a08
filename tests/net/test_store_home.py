"""The block store lives under the same SEDMA_HOME as the dual memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from sedma.memory.urls import resolve_home
from sedma.net.store import default_root


def test_blocks_live_under_the_memory_home_when_sedma_home_is_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SEDMA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_root() == resolve_home() / "blocks"
    assert default_root() == tmp_path / ".local" / "share" / "sedma" / "blocks"


def test_blocks_follow_sedma_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEDMA_HOME", str(tmp_path / "h"))
    assert default_root() == tmp_path / "h" / "blocks"
