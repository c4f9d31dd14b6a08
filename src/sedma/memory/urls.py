"""Where the memory lives: SEDMA_HOME, SEDMA_LTM_URL, SEDMA_STM_URL and their defaults."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from sedma.errors import ConfigError

ENV_HOME = "SEDMA_HOME"
ENV_LTM_URL = "SEDMA_LTM_URL"
ENV_STM_URL = "SEDMA_STM_URL"
DEFAULT_HOME = Path("~/.local/share/sedma")
DB_FILENAME = "memory.db"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: the argument, else $SEDMA_HOME, else ~/.local/share/sedma."""
    raw = os.fspath(home) if home is not None else os.environ.get(ENV_HOME) or str(DEFAULT_HOME)
    return Path(raw).expanduser()


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).expanduser().absolute()}"


def resolve_ltm_url(url: str | None = None, *, home: str | os.PathLike[str] | None = None) -> str:
    """LTM URL: explicit url, else SQLite under an explicit home, else $SEDMA_LTM_URL, else SQLite."""
    if url:
        return url
    if home is None and os.environ.get(ENV_LTM_URL):
        return os.environ[ENV_LTM_URL]
    return sqlite_url(resolve_home(home) / DB_FILENAME)


def resolve_stm_url(url: str | None = None) -> str | None:
    """STM URL: explicit url, else $SEDMA_STM_URL, else None (in-process)."""
    return url or os.environ.get(ENV_STM_URL) or None


def parse_ltm_url(url: str) -> URL:
    """Parse and check an LTM URL: sqlite:///FILE or postgresql+psycopg://...; ConfigError otherwise."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"malformed LTM URL {redact(url)!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ConfigError(f"LTM URL {redact(url)!r}: only the pysqlite driver is supported")
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(f"LTM URL {redact(url)!r}: SQLite needs a file path (sqlite:///FILE)")
        return parsed
    if backend in ("postgresql", "postgres"):
        if parsed.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise ConfigError(f"LTM URL {redact(url)!r}: PostgreSQL is reached via postgresql+psycopg://")
        if not parsed.host and not parsed.query.get("host"):
            raise ConfigError(f"LTM URL {redact(url)!r}: PostgreSQL URL names no host")
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"LTM URL {redact(url)!r}: unsupported scheme {parsed.drivername!r} "
        "(use sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB)"
    )


def check_stm_url(url: str) -> str:
    """Check a Redis URL (redis://, rediss://, unix://); ConfigError otherwise."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ConfigError(f"malformed STM URL {redact(url)!r}: {exc}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"STM URL {redact(url)!r}: unsupported scheme {parts.scheme!r} (use redis://HOST:PORT/DB)"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"STM URL {redact(url)!r}: Redis URL names no host")
    return url


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages and stats."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def with_search_path(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use ``schema`` (libpq options=-csearch_path=...)."""
    if not schema.replace("_", "").isalnum():
        raise ConfigError(f"schema name must be alphanumeric/underscore, got {schema!r}")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"
