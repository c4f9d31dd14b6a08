"""Where the memory lives: argument > explicit home > environment > defaults; malformed URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sedma.errors import ConfigError
from sedma.memory import LongTermMemory
from sedma.memory.urls import parse_ltm_url, redact, resolve_home, resolve_ltm_url, resolve_stm_url


def test_home_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEDMA_HOME")
    assert resolve_home() == Path("~/.local/share/sedma").expanduser()
    monkeypatch.setenv("SEDMA_HOME", str(tmp_path))
    assert resolve_home() == tmp_path
    assert resolve_home(tmp_path / "x") == tmp_path / "x"


def test_ltm_url_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _isolated_home: Path) -> None:
    assert resolve_ltm_url() == f"sqlite:///{_isolated_home / 'memory.db'}"
    monkeypatch.setenv("SEDMA_LTM_URL", "postgresql+psycopg://u@h/db")
    assert resolve_ltm_url() == "postgresql+psycopg://u@h/db"
    assert resolve_ltm_url(home=tmp_path) == f"sqlite:///{tmp_path / 'memory.db'}"
    assert resolve_ltm_url("sqlite:////x.db", home=tmp_path) == "sqlite:////x.db"


def test_stm_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_stm_url() is None
    monkeypatch.setenv("SEDMA_STM_URL", "redis://127.0.0.1:1/0")
    assert resolve_stm_url() == "redis://127.0.0.1:1/0"
    assert resolve_stm_url("redis://h/1") == "redis://h/1"


def test_plain_postgresql_scheme_uses_psycopg() -> None:
    assert parse_ltm_url("postgresql://u@h:5/db").drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", "malformed LTM URL"),
        ("mysql://u@h/db", "unsupported scheme 'mysql'"),
        ("sqlite://", "SQLite needs a file path"),
        ("sqlite:///:memory:", "SQLite needs a file path"),
        ("postgresql+psycopg2://u@h/db", "postgresql\\+psycopg://"),
        ("postgresql+psycopg:///db", "names no host"),
        ("postgresql+psycopg://u@h:port/db", "malformed LTM URL"),
    ],
)
def test_malformed_ltm_urls_are_config_errors(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LongTermMemory(url)


def test_env_url_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEDMA_LTM_URL", "oracle://x@y/z")
    with pytest.raises(ConfigError, match="unsupported scheme"):
        LongTermMemory()


def test_redact_hides_passwords() -> None:
    assert redact("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
    assert redact("redis://h:1/0") == "redis://h:1/0"
