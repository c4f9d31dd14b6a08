"""Typed exceptions shared by every layer.

The CLI turns any :class:`SedmaError` into one readable line and a non-zero exit;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SedmaError(Exception):
    """Base class of every error SEDMA raises on purpose (bad input, unreachable service)."""


class ConfigError(SedmaError):
    """A malformed setting: URL, environment variable, option value."""


class InputError(SedmaError, ValueError):
    """Bad user input: a file, field, shape or value that cannot be used."""


class BackendUnavailable(SedmaError):
    """A service (PostgreSQL, Redis, Ray, a peer, a cluster) could not be reached."""


class StorageError(SedmaError):
    """Stored state is unreadable (corrupt file, foreign schema); nothing was changed."""


def require_positive(config: object, names: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` naming ``Class.field`` for the first of ``names`` that is not > 0."""
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise ConfigError(f"{type(config).__name__}.{name} must be > 0, got {value}")
