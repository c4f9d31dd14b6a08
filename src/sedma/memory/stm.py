"""Short-term memory: named numeric streams keeping the last N samples, in-process or in Redis."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

from sedma.errors import BackendUnavailable, ConfigError, InputError
from sedma.memory.records import StreamStats
from sedma.memory.stats import DEFAULT_EWMA_ALPHA, stream_stats
from sedma.memory.urls import check_stm_url, redact, resolve_stm_url

DEFAULT_WINDOW = 100
#: Redis connect/read timeouts: an unreachable server fails fast instead of hanging a layer.
REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_TIMEOUT_S = 5.0


class _Streams(Protocol):
    """What a short-term backend does: append with trim, read a window, list and clear streams."""

    def extend(self, stream: str, values: list[float]) -> None: ...
    def values(self, stream: str) -> list[float]: ...
    def streams(self, prefix: str) -> list[str]: ...
    def clear(self, stream: str | None) -> None: ...
    def close(self) -> None: ...


class _LocalStreams:
    """In-process ring buffers (deque with maxlen): O(1) append, the default backend."""

    def __init__(self, window: int) -> None:
        self._window = window
        self._data: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _ring(self, stream: str) -> deque[float]:
        ring = self._data.get(stream)
        if ring is None:
            with self._lock:
                ring = self._data.setdefault(stream, deque(maxlen=self._window))
        return ring

    def extend(self, stream: str, values: list[float]) -> None:
        self._ring(stream).extend(values)

    def values(self, stream: str) -> list[float]:
        ring = self._data.get(stream)
        return list(ring) if ring is not None else []

    def streams(self, prefix: str) -> list[str]:
        return sorted(s for s, ring in list(self._data.items()) if s.startswith(prefix) and ring)

    def clear(self, stream: str | None) -> None:
        with self._lock:
            if stream is None:
                self._data.clear()
            else:
                self._data.pop(stream, None)

    def close(self) -> None:
        pass


class _RedisStreams:
    """Redis lists under '<namespace>:stm:<stream>': RPUSH+LTRIM in one MULTI/EXEC, so processes share."""

    def __init__(self, url: str, window: int, namespace: str) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "STM URL redis://… needs the redis package: pip install 'sedma[redis]'"
            ) from None

        self._redis_mod = redis
        self._url = url
        self._window = window
        self._prefix = f"{namespace}:stm:"
        try:
            self._r = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
                socket_timeout=REDIS_TIMEOUT_S,
            )
        except ValueError as exc:
            raise ConfigError(f"malformed STM URL {redact(url)!r}: {exc}") from None
        self._call(self._r.ping)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._redis_mod.exceptions.RedisError as exc:
            raise BackendUnavailable(
                f"short-term memory: Redis at {redact(self._url)} failed ({exc})"
            ) from None

    def extend(self, stream: str, values: list[float]) -> None:
        key = self._prefix + stream
        pipe = self._r.pipeline(transaction=True)
        pipe.rpush(key, *(repr(v) for v in values))
        pipe.ltrim(key, -self._window, -1)
        self._call(pipe.execute)

    def values(self, stream: str) -> list[float]:
        raw = self._call(self._r.lrange, self._prefix + stream, -self._window, -1)
        return [float(v) for v in raw]

    def streams(self, prefix: str) -> list[str]:
        pattern = _glob_escape(self._prefix + prefix) + "*"
        keys = self._call(lambda: list(self._r.scan_iter(match=pattern, count=1000)))
        return sorted(k[len(self._prefix) :] for k in keys)

    def clear(self, stream: str | None) -> None:
        if stream is not None:
            self._call(self._r.delete, self._prefix + stream)
            return
        keys = self._call(lambda: list(self._r.scan_iter(match=_glob_escape(self._prefix) + "*", count=1000)))
        for i in range(0, len(keys), 500):
            self._call(self._r.delete, *keys[i : i + 500])

    def close(self) -> None:
        self._r.close()


class ShortTermMemory:
    """Named streams of numeric samples over a window (default 100) with mean/var/EWMA/percentiles/trend."""

    def __init__(
        self,
        url: str | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        namespace: str = "sedma",
        ewma_alpha: float = DEFAULT_EWMA_ALPHA,
        local: bool = False,
    ) -> None:
        """Open Redis at url (else $SEDMA_STM_URL), or in-process memory when neither is set or local=True."""
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window must be an integer >= 1, got {window!r}")
        if not (isinstance(ewma_alpha, int | float) and 0.0 < ewma_alpha <= 1.0):
            raise ConfigError(f"ewma_alpha must be in (0, 1], got {ewma_alpha!r}")
        if not namespace or not isinstance(namespace, str):
            raise ConfigError(f"namespace must be a non-empty string, got {namespace!r}")
        self.window = window
        self.ewma_alpha = float(ewma_alpha)
        self.url = None if local else resolve_stm_url(url)
        self._backend: _Streams = (
            _RedisStreams(check_stm_url(self.url), window, namespace) if self.url else _LocalStreams(window)
        )
        self.backend = "redis" if self.url else "local"

    def append(self, stream: str, value: float) -> None:
        """Append one sample; the oldest beyond the window is dropped."""
        self._backend.extend(_stream(stream), [_sample(stream, value)])

    def extend(self, stream: str, values: Iterable[float]) -> None:
        """Append several samples at once (one round trip on Redis)."""
        vals = [_sample(stream, v) for v in values]
        if vals:
            self._backend.extend(_stream(stream), vals)

    def values(self, stream: str) -> list[float]:
        """The window's samples, oldest first."""
        return self._backend.values(_stream(stream))

    def stats(self, stream: str) -> StreamStats | None:
        """Statistics of the window, or None when the stream is empty."""
        return stream_stats(self.values(stream), alpha=self.ewma_alpha)

    def streams(self, prefix: str = "") -> list[str]:
        """Names of non-empty streams starting with prefix, sorted."""
        return self._backend.streams(prefix)

    def clear(self, stream: str | None = None) -> None:
        """Forget one stream, or all of them."""
        self._backend.clear(None if stream is None else _stream(stream))

    def close(self) -> None:
        """Release the Redis connection (no-op in process)."""
        self._backend.close()

    def __enter__(self) -> ShortTermMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = redact(self.url) if self.url else "in-process"
        return f"ShortTermMemory({where!r}, window={self.window})"


def _stream(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InputError(f"stream name must be a non-empty string, got {name!r}")
    return name


def _sample(stream: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"sample for stream {stream!r} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"sample for stream {stream!r} must be finite, got {value!r}")
    return v


def _glob_escape(s: str) -> str:
    """Escape Redis glob metacharacters so a prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)
