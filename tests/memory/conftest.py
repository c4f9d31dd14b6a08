"""Backend fixtures of the memory suite: every behaviour test runs on SQLite and PostgreSQL,
in-process and Redis, each test in its own PostgreSQL schema / Redis namespace."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sedma.memory import LongTermMemory, ShortTermMemory
from sedma.memory.urls import sqlite_url, with_search_path


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards; yields the URL that uses it."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield with_search_path(pg_url, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ltm_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty long-term store on each backend."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "ltm.db")
    url: str = request.getfixturevalue("pg_schema")
    return url


@pytest.fixture
def make_ltm(ltm_url: str) -> Iterator[Callable[..., LongTermMemory]]:
    """Open LongTermMemory instances on the test's backend; all are closed at teardown."""
    opened: list[LongTermMemory] = []

    def make(**kwargs: Any) -> LongTermMemory:
        ltm = LongTermMemory(ltm_url, **kwargs)
        opened.append(ltm)
        return ltm

    yield make
    for ltm in opened:
        ltm.close()


@pytest.fixture
def ltm(make_ltm: Callable[..., LongTermMemory]) -> LongTermMemory:
    """One LongTermMemory on the test's backend."""
    return make_ltm()


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def stm_kwargs(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Constructor arguments of a ShortTermMemory on each backend (own Redis namespace per test)."""
    if request.param == "local":
        yield {"url": None}
        return
    url: str = request.getfixturevalue("redis_url")
    namespace = f"t{uuid.uuid4().hex[:12]}"
    yield {"url": url, "namespace": namespace}
    ShortTermMemory(url, namespace=namespace).clear()


@pytest.fixture
def make_stm(stm_kwargs: dict[str, Any]) -> Iterator[Callable[..., ShortTermMemory]]:
    """Open ShortTermMemory instances on the test's backend; all are closed at teardown."""
    opened: list[ShortTermMemory] = []

    def make(**kwargs: Any) -> ShortTermMemory:
        stm = ShortTermMemory(**{**stm_kwargs, **kwargs})
        opened.append(stm)
        return stm

    yield make
    for stm in opened:
        stm.close()
