"""Tensor cache under a byte budget: Eq. 10 utility eviction, with LRU to compare against.

utility(d) = access_freq(d) · recency(d) / size(d)   (Eq. 10)

- access_freq: accesses per hour, count / hours since the item was first seen (at least
  ``min_age_s``, so a brand-new item is not rated as infinitely frequent). Counts persist in
  long-term memory as ("net", "access", key) -> {"count", "first"}: a restarted node remembers
  what was popular.
- recency: exp(-(now − last_access) / tau_s), last access kept in short-term memory
  (stream "net/cache/<key>", one sample per access).
- size in MB.

When an item does not fit, the lowest-utility items are evicted until it does; an item whose
utility is below that of everything it would push out is not admitted (a one-off request must
not flush the popular set). The in-process dicts mirror memory so eviction is one vectorised
pass; memory is read on first sight of a key and written back every ``flush_every`` accesses.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sedma.errors import ConfigError

POLICIES = ("utility", "lru")
_MB = 1e6


class _Memory(Protocol):
    def recall(self, layer: str, kind: str, key: str) -> Any: ...
    def remember(
        self, layer: str, kind: str, key: str, value: Any, *, score: float = ..., force: bool = ...
    ) -> Any: ...
    def observe(self, stream: str, value: float) -> Any: ...
    def recent(self, stream: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Budget and policy of a tensor cache."""

    budget_bytes: int = 256 << 20
    policy: str = "utility"
    tau_s: float = 600.0  # recency decay constant
    min_age_s: float = 60.0
    flush_every: int = 256
    max_tracked: int = 100_000  # access statistics kept in process (the rest live in LTM)

    def validate(self) -> CacheConfig:
        if self.policy not in POLICIES:
            raise ConfigError(f"cache policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        if self.budget_bytes <= 0 or self.tau_s <= 0 or self.min_age_s <= 0 or self.flush_every < 1:
            raise ConfigError("cache budget_bytes, tau_s, min_age_s must be > 0 and flush_every >= 1")
        return self


def utility(
    count: np.ndarray,
    first_seen: np.ndarray,
    last_access: np.ndarray,
    size_bytes: np.ndarray,
    *,
    now: float,
    tau_s: float,
    min_age_s: float,
) -> np.ndarray:
    """Eq. 10 for arrays of items: accesses/hour × exp(-age/τ) / size in MB."""
    hours = np.maximum(now - first_seen, min_age_s) / 3600.0
    freq = count / hours
    recency = np.exp(-np.maximum(now - last_access, 0.0) / tau_s)
    return np.asarray(freq * recency / np.maximum(size_bytes / _MB, 1e-9))


@dataclass(slots=True)
class _Stats:
    count: float
    first: float
    last: float


class TensorCache:
    """Byte-budgeted key -> value cache with Eq. 10 (``utility``) or ``lru`` eviction."""

    def __init__(
        self,
        config: CacheConfig | None = None,
        *,
        memory: _Memory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = (config or CacheConfig()).validate()
        self.memory = memory
        self.clock = clock
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # LRU order
        self._stats: dict[str, _Stats] = {}
        self._dirty: set[str] = set()
        self.used_bytes = 0
        self.hits = 0
        self.misses = 0

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def get(self, key: str) -> Any | None:
        """The cached value (counted as a hit) or None (a miss); every call counts as an access."""
        self._record_access(key)
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: str, value: Any, size_bytes: int) -> bool:
        """Admit a value if the policy lets it in under the budget; returns True when cached."""
        if size_bytes > self.config.budget_bytes or size_bytes < 0:
            return False
        if key in self._items:
            self._drop(key)
        victims = self._victims(key, size_bytes)
        if victims is None:
            return False
        for victim in victims:
            self._drop(victim)
        self._items[key] = (value, size_bytes)
        self.used_bytes += size_bytes
        return True

    def _drop(self, key: str) -> None:
        _, size = self._items.pop(key)
        self.used_bytes -= size

    def _victims(self, key: str, size: int) -> list[str] | None:
        need = self.used_bytes + size - self.config.budget_bytes
        if need <= 0:
            return []
        keys = list(self._items)
        if self.config.policy == "lru":
            order = np.arange(len(keys))
            sizes = np.array([self._items[k][1] for k in keys], dtype=np.float64)
        else:
            u, sizes = self._utilities(keys)
            order = np.argsort(u, kind="stable")
        cut = int(np.searchsorted(np.cumsum(sizes[order]), need)) + 1
        chosen = order[:cut]
        if self.config.policy == "utility" and self._utilities([key])[0][0] < u[chosen].max():
            return None  # admission control: the newcomer is worth less than what it would evict
        return [keys[i] for i in chosen]

    def _utilities(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        st = [self._stats_for(k) for k in keys]
        count = np.array([s.count for s in st])
        first = np.array([s.first for s in st])
        last = np.array([s.last for s in st])
        sizes = np.array([self._items[k][1] if k in self._items else 1 for k in keys], dtype=np.float64)
        cfg = self.config
        u = utility(count, first, last, sizes, now=self.clock(), tau_s=cfg.tau_s, min_age_s=cfg.min_age_s)
        return u, sizes

    # -- access statistics, mirrored to the dual memory -----------------------------------------
    def _stats_for(self, key: str) -> _Stats:
        st = self._stats.get(key)
        if st is None:
            st = self._stats[key] = self._recall(key)
        return st

    def _recall(self, key: str) -> _Stats:
        now = self.clock()
        value = self.memory.recall("net", "access", key) if self.memory is not None else None
        if isinstance(value, dict):
            count, first = value.get("count"), value.get("first")
            if isinstance(count, int | float) and isinstance(first, int | float) and math.isfinite(first):
                return _Stats(float(count), float(first), self._recent_access(key, float(first)))
        return _Stats(0.0, now, now)

    def _recent_access(self, key: str, default: float) -> float:
        # The last access time is a short-term fact: the STM stream's newest sample.
        recent = self.memory.recent(f"net/cache/{key}") if self.memory is not None else None
        last = getattr(recent, "last", None)
        return float(last) if isinstance(last, int | float) else default

    def _record_access(self, key: str) -> None:
        st = self._stats_for(key)
        st.count += 1
        st.last = self.clock()
        self._dirty.add(key)
        if self.memory is not None:
            self.memory.observe(f"net/cache/{key}", st.last)
        if len(self._dirty) >= self.config.flush_every or len(self._stats) > self.config.max_tracked:
            self.flush()
        if len(self._stats) > self.config.max_tracked:
            # Forget uncached keys' statistics: they were just flushed to LTM and are recalled on demand.
            self._stats = {k: v for k, v in self._stats.items() if k in self._items}

    def flush(self) -> None:
        """Write the access counts of recently used keys to long-term memory."""
        if self.memory is not None:
            for key in self._dirty:
                st = self._stats[key]
                value = {"count": st.count, "first": st.first, "last": st.last}
                self.memory.remember("net", "access", key, value, score=st.count, force=True)
        self._dirty.clear()


@dataclass(frozen=True, slots=True)
class TraceReport:
    """Replay of an access trace: hit rate, and bytes that had to cross the network (misses)."""

    policy: str
    requests: int
    hit_rate: float
    bytes_fetched: int
    trace_hours: float

    @property
    def gb_per_hour(self) -> float:
        return self.bytes_fetched / 1e9 / max(self.trace_hours, 1e-12)


def zipf_trace(
    seed: int,
    *,
    items: int,
    requests: int,
    s: float = 1.1,
    min_bytes: int = 100_000,
    max_bytes: int = 4_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded skewed trace: item ids drawn Zipf(s) over shuffled ranks, and each item's size."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** s
    ids = rng.permutation(items)[rng.choice(items, size=requests, p=weights / weights.sum())]
    return ids, rng.integers(min_bytes, max_bytes, size=items)


def replay(
    ids: np.ndarray, sizes: np.ndarray, *, config: CacheConfig, interval_s: float = 0.5, memory: Any = None
) -> TraceReport:
    """Serve a trace through a cache (a miss fetches and offers the item) on a simulated clock."""
    now = [1_000_000.0]
    cache = TensorCache(config, memory=memory, clock=lambda: now[0])
    fetched = 0
    for item in ids.tolist():
        now[0] += interval_s
        key = f"t{item}"
        if cache.get(key) is None:
            fetched += int(sizes[item])
            cache.put(key, item, int(sizes[item]))
    hours = len(ids) * interval_s / 3600.0
    return TraceReport(config.policy, len(ids), cache.hit_rate, fetched, hours)
