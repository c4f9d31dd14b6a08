"""The schema version table: created on open, migrated step by step, newer or foreign schemas refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from sedma.errors import StorageError
from sedma.memory import LongTermMemory
from sedma.memory import schema as schema_mod
from sedma.memory.urls import sqlite_url


def _version(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        v = int(conn.execute(text("SELECT value FROM sedma_meta WHERE name = 'schema_version'")).scalar_one())
    engine.dispose()
    return v


def _set_version(url: str, v: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE sedma_meta SET value = :v WHERE name = 'schema_version'"), {"v": str(v)})
    engine.dispose()


def test_open_records_the_current_version(ltm_url: str) -> None:
    LongTermMemory(ltm_url).close()
    assert _version(ltm_url) == schema_mod.SCHEMA_VERSION == 1


def test_older_schema_is_migrated_on_open(ltm_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with LongTermMemory(ltm_url) as ltm:
        ltm.put("a", "b", "c", {"v": 1}, score=0.5)
    steps: list[int] = []

    def to_v2(conn: Connection) -> None:
        steps.append(2)
        conn.execute(text("UPDATE sedma_ltm SET score = score + 1"))

    monkeypatch.setattr(schema_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(schema_mod.MIGRATIONS, 1, to_v2)
    with LongTermMemory(ltm_url) as ltm:
        assert ltm.schema_version == 2 and ltm.get("a", "b", "c").score == 1.5  # type: ignore[union-attr]
    with LongTermMemory(ltm_url):
        pass
    assert steps == [2] and _version(ltm_url) == 2  # migrated exactly once


def test_newer_schema_is_refused_and_left_alone(ltm_url: str) -> None:
    with LongTermMemory(ltm_url) as ltm:
        ltm.put("a", "b", "c", 1)
    _set_version(ltm_url, 99)
    with pytest.raises(StorageError, match="schema version 99 is newer"):
        LongTermMemory(ltm_url)
    assert _version(ltm_url) == 99


def test_foreign_table_with_our_name_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "other.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE sedma_ltm (id INTEGER PRIMARY KEY, payload TEXT)"))
        conn.execute(text("INSERT INTO sedma_ltm (payload) VALUES ('theirs')"))
    engine.dispose()
    with pytest.raises(StorageError, match="lacks columns"):
        LongTermMemory(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT payload FROM sedma_ltm")).scalar_one() == "theirs"
        assert "sedma_meta" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    engine.dispose()
