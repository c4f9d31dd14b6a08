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

    Flat containers are copied by the C-level dict.copy/list.copy of a private snapshot; nested ones
    are kept pickled. pickle only ever reads bytes this process made from a decoded JSON value.
    """
    if isinstance(value, dict):
        if not any(isinstance(v, dict | list) for v in value.values()):
            return dict.copy, dict(value)
    elif isinstance(value, list):
        if not any(isinstance(v, dict | list) for v in value):
            return list.copy, list(value)
    else:
        return None, None
    return pickle.loads, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
