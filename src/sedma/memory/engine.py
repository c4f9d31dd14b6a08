"""One SQLAlchemy engine for SQLite and PostgreSQL: pragmas, writer lock, retries, error mapping."""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from sedma.errors import BackendUnavailable, ConfigError, SedmaError, StorageError
from sedma.memory.urls import redact

T = TypeVar("T")

#: SQLite waits this long in its own busy handler before we retry a whole transaction.
BUSY_TIMEOUT_MS = 5_000
#: Total time a transaction is retried on "database is locked" before giving up.
RETRY_BUDGET_S = 60.0
#: Fresh connections tried after a connection was found dead (server restart, terminated backend).
MAX_RECONNECTS = 2
#: PostgreSQL connect timeout: an unreachable server fails fast.
PG_CONNECT_TIMEOUT_S = 3

_LOCKED_MARKERS = ("database is locked", "database table is locked", "database is busy", "busy")
_CORRUPT_MARKERS = (
    "file is not a database",
    "malformed",
    "disk image",
    "not a database",
    "file is encrypted",
)


def make_engine(url: URL) -> Engine:
    """Create the engine for a checked URL: SQLite with WAL + busy timeout, psycopg with connect timeout."""
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url)
        # URL query parameters (…?connect_timeout=10&application_name=x) win over these defaults.
        defaults = {"connect_timeout": PG_CONNECT_TIMEOUT_S, "application_name": "sedma"}
        return create_engine(
            url,
            connect_args={k: v for k, v in defaults.items() if k not in url.query},
            # No pre-ping round trip per transaction: a connection found dead is invalidated and
            # the transaction retried on a fresh one (with_retries).
        )
    except (NoSuchModuleError, ArgumentError) as exc:
        raise ConfigError(f"LTM URL {redact(str(url))!r}: {exc}") from None
    except ImportError as exc:
        # The driver is an optional extra; say which one rather than show its import error.
        raise ConfigError(
            f"LTM URL {redact(str(url))!r} needs the {exc.name or 'database driver'} package: "
            "pip install 'sedma[postgres]'"
        ) from None


def _sqlite_engine(url: URL) -> Engine:
    """A SQLite engine whose write transactions start with BEGIN IMMEDIATE (no deadlocking upgrades)."""
    assert url.database is not None
    parent = Path(url.database).expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the memory directory {parent} ({exc.strerror or exc})") from None
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Driver-level autocommit: we emit BEGIN ourselves so writers can take the lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode loses no committed transaction when a process dies (only on power loss).
            cur.execute("PRAGMA synchronous=NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("sedma_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to a SQLite file."""
    return engine.dialect.name == "sqlite"


@contextmanager
def write_txn(engine: Engine, lock_name: str) -> Iterator[Connection]:
    """A write transaction holding the writers' lock: BEGIN IMMEDIATE on SQLite, an advisory lock on PG."""
    with engine.connect() as conn:
        conn.execution_options(sedma_write=True)
        with conn.begin():
            if not is_sqlite(engine):
                # Writers of one table serialise, so count-then-evict is exact under concurrency.
                key = zlib.crc32(lock_name.encode()) - 2**31
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            yield conn


def with_retries(fn: Callable[[], T], *, what: str, url: str) -> T:
    """Run ``fn`` retrying transient lock/serialisation errors and lost connections; map the rest."""
    deadline = time.monotonic() + RETRY_BUDGET_S
    delay = 0.005
    reconnects = 0
    while True:
        try:
            return fn()
        except SedmaError:
            raise
        except OperationalError as exc:
            if exc.connection_invalidated and reconnects < MAX_RECONNECTS:
                reconnects += 1  # the pool has dropped the dead connection; the next one is fresh
                continue
            if _transient(exc) and time.monotonic() < deadline:
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)
                continue
            raise map_error(exc, what=what, url=url) from None
        except SQLAlchemyError as exc:
            raise map_error(exc, what=what, url=url) from None


def _transient(exc: SQLAlchemyError) -> bool:
    """Lock contention or a serialisation failure: worth retrying the whole transaction.

    Integrity errors are not retried: writers hold the writers' lock, so an insert race cannot occur.
    """
    msg = str(getattr(exc, "orig", exc)).lower()
    if any(m in msg for m in _LOCKED_MARKERS):
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return sqlstate in ("40001", "40P01")


def map_error(exc: BaseException, *, what: str, url: str) -> SedmaError:
    """Turn a driver error into ConfigError / BackendUnavailable / StorageError with one clear line."""
    orig = getattr(exc, "orig", exc)
    msg = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    where = redact(url)
    low = msg.lower()
    if url.startswith("sqlite"):
        if any(m in low for m in _CORRUPT_MARKERS):
            return StorageError(f"{what}: {where} is not a readable SEDMA database ({msg}); left untouched")
        if any(m in low for m in _LOCKED_MARKERS):
            return StorageError(f"{what}: {where} stayed locked for {RETRY_BUDGET_S:.0f} s ({msg})")
        return StorageError(f"{what}: {where}: {msg}")
    if isinstance(exc, OperationalError) and _is_connect_error(exc):
        return BackendUnavailable(f"{what}: PostgreSQL at {where} is unreachable ({msg})")
    return StorageError(f"{what}: {where}: {msg}")


def _is_connect_error(exc: DBAPIError) -> bool:
    low = str(exc.orig).lower()
    markers = ("connection", "connect", "timeout", "could not translate", "server closed", "does not exist")
    return exc.connection_invalidated or any(m in low for m in markers)
