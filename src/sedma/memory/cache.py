"""A read-through LRU cache in front of LTM look-ups (the paper's fix for slow pattern look-up)."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Bounded mapping that drops the least recently used entry; the hit path is one dict look-up."""

    __slots__ = ("_data", "capacity", "hits", "misses")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        """The cached value (marked most recent) or None."""
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        # try/except, not contextlib.suppress: this is the cached-get hot path (~1 µs cheaper).
        try:  # noqa: SIM105
            self._data.move_to_end(key)
        except KeyError:  # evicted by another thread between the two calls
            pass
        return value

    def put(self, key: K, value: V) -> None:
        """Insert or refresh an entry, dropping the least recently used beyond capacity."""
        if self.capacity == 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            try:
                self._data.popitem(last=False)
            except KeyError:
                break

    def invalidate(self, key: K) -> None:
        """Forget one entry (this process wrote it)."""
        self._data.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def copy_plan(value: Any) -> tuple[Callable[[Any], Any] | None, Any]:
    """How a cached JSON value is copied per hit: (copier, payload); (None, None) for immutable scalars.

    Values are copied from a private snapshot with C-level dict.copy/list.copy: flat containers in
    one call, containers of flat containers one level deeper (the usual shapes, ~3x cheaper than
    pickle); anything deeper is kept pickled. pickle only reads bytes this process made itself.
    """
    if not isinstance(value, dict | list):
        return None, None
    items = value.items() if isinstance(value, dict) else enumerate(value)
    nested = [k for k, v in items if isinstance(v, dict | list)]
    if not nested:
        return type(value).copy, value.copy()
    if all(not _has_container(value[k]) for k in nested):
        snapshot = value.copy()
        for k in nested:
            snapshot[k] = snapshot[k].copy()
        return _copy_two_levels, (snapshot, tuple(nested))
    return pickle.loads, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _has_container(value: dict[Any, Any] | list[Any]) -> bool:
    values = value.values() if isinstance(value, dict) else value
    return any(isinstance(v, dict | list) for v in values)


def _copy_two_levels(payload: tuple[Any, tuple[Any, ...]]) -> Any:
    snapshot, nested = payload
    out = snapshot.copy()
    for k in nested:
        out[k] = out[k].copy()
    return out
