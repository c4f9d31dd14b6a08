"""A backend URL whose optional driver is not installed names the extra to install."""

from __future__ import annotations

import sys

import pytest

from sedma.errors import ConfigError
from sedma.memory import LongTermMemory, ShortTermMemory


def test_postgres_url_without_psycopg_names_the_postgres_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` raise ImportError
    with pytest.raises(ConfigError, match=r"sedma\[postgres\]"):
        LongTermMemory("postgresql+psycopg://u@127.0.0.1:5432/db")


def test_redis_url_without_redis_names_the_redis_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError, match=r"sedma\[redis\]"):
        ShortTermMemory("redis://127.0.0.1:6379/0")
