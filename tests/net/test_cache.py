"""Eq. 10 utility cache beats LRU on a skewed trace; statistics live in the dual memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sedma.errors import ConfigError
from sedma.memory.dual import DualMemory
from sedma.net.cache import CacheConfig, TensorCache, replay, utility, zipf_trace


class _Clock:
    """A settable clock, so recency and per-hour frequency are exercised deterministically."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seed", [0, 1])
def test_eq10_hit_rate_is_at_least_lru_on_zipf(seed: int) -> None:
    ids, sizes = zipf_trace(seed, items=400, requests=6000)
    budget = int(sizes.sum() * 0.1)
    ours = replay(ids, sizes, config=CacheConfig(budget_bytes=budget, policy="utility"))
    lru = replay(ids, sizes, config=CacheConfig(budget_bytes=budget, policy="lru"))
    assert ours.hit_rate >= lru.hit_rate + 0.02, (ours, lru)
    assert ours.gb_per_hour < lru.gb_per_hour  # fewer misses, fewer bytes over the network
    assert ours.trace_hours == pytest.approx(6000 * 0.5 / 3600)


def test_budget_is_never_exceeded() -> None:
    ids, sizes = zipf_trace(3, items=100, requests=1000)
    cache = TensorCache(CacheConfig(budget_bytes=int(sizes.sum() * 0.2)))
    for item in ids.tolist():
        if cache.get(f"t{item}") is None:
            cache.put(f"t{item}", item, int(sizes[item]))
        assert cache.used_bytes <= cache.config.budget_bytes


def test_utility_is_frequency_times_recency_over_size() -> None:
    u = utility(
        np.array([10.0, 10.0, 10.0, 20.0]),
        np.array([0.0, 0.0, 0.0, 0.0]),
        np.array([3600.0, 3600.0, 3600.0 - 600.0, 3600.0]),
        np.array([1e6, 2e6, 1e6, 1e6]),
        now=3600.0,
        tau_s=600.0,
        min_age_s=60.0,
    )
    np.testing.assert_allclose(u, [10.0, 5.0, 10.0 * np.exp(-1.0), 20.0])


def test_lru_evicts_least_recently_used() -> None:
    cache = TensorCache(CacheConfig(budget_bytes=300, policy="lru"))
    for key in "abc":
        cache.put(key, key, 100)
    cache.get("a")
    cache.put("d", "d", 100)
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}


def test_oversize_item_is_not_admitted() -> None:
    cache = TensorCache(CacheConfig(budget_bytes=100))
    assert not cache.put("big", b"", 101) and len(cache) == 0


def test_access_counts_survive_a_restart_through_ltm(tmp_path: Path) -> None:
    clock = _Clock()
    memory = DualMemory.open(home=tmp_path)
    cache = TensorCache(CacheConfig(budget_bytes=1000, flush_every=1), memory=memory, clock=clock)
    for _ in range(5):
        clock.now += 1
        cache.get("hot")
    cache.flush()
    record = memory.recall("net", "access", "hot")
    assert record["count"] == 5
    stm = memory.recent("net/cache/hot")
    assert stm is not None and stm.last == clock.now
    memory.close()
    memory = DualMemory.open(home=tmp_path)
    fresh = TensorCache(CacheConfig(budget_bytes=200), memory=memory, clock=clock)
    fresh.put("hot", 1, 100)
    fresh.put("cold", 2, 100)
    fresh.get("cold")
    assert not fresh.put("new", 3, 100)  # remembered popularity beats a newcomer
    assert "hot" in fresh
    memory.close()


def test_statistics_of_uncached_keys_are_bounded() -> None:
    cache = TensorCache(CacheConfig(budget_bytes=300, max_tracked=50))
    for i in range(500):
        cache.get(f"k{i}")
        cache.put(f"k{i}", i, 100)
    assert len(cache._stats) <= 51 and len(cache) == 3


def test_bad_cache_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="policy"):
        CacheConfig(policy="fifo").validate()
