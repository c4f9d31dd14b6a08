"""Fixtures shared by every layer's tests: real service URLs, isolated SEDMA_HOME, reaping."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SEDMA_HOME so nothing leaks between tests or into ~."""
    home = tmp_path / "sedma-home"
    home.mkdir()
    monkeypatch.setenv("SEDMA_HOME", str(home))
    monkeypatch.delenv("SEDMA_LTM_URL", raising=False)
    monkeypatch.delenv("SEDMA_STM_URL", raising=False)
    return home


@pytest.fixture(autouse=True)
def _reap_children() -> Iterator[None]:
    """Kill child processes a test left behind (peers, writers), as hivemind's tests do."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    for child in psutil.Process().children(recursive=True):
        if child.pid not in before:
            with contextlib.suppress(psutil.Error):
                child.kill()


@pytest.fixture
def pg_url() -> str:
    """URL of the real PostgreSQL started by scripts/test."""
    url = os.environ.get("SEDMA_TEST_PG_URL")
    if not url:
        pytest.skip("no PostgreSQL server: SEDMA_TEST_PG_URL is unset (scripts/test starts one)")
    return url


@pytest.fixture
def redis_url() -> str:
    """URL of the real Redis started by scripts/test."""
    url = os.environ.get("SEDMA_TEST_REDIS_URL")
    if not url:
        pytest.skip("no Redis server: SEDMA_TEST_REDIS_URL is unset (scripts/test starts one)")
    return url
