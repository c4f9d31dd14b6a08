"""Eq. 10 utility cache beats LRU on a skewed trace; statistics live in the dual memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sedma.errors import ConfigError
from sedma.memory.dual import DualMemory
from sedma.net.cache import CacheConfig, TensorCache, utility


class _Clock:
    """Trace time: each request advances it, so recency and per-hour frequency are exercised."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _zipf_trace(seed: int, *, items: int, requests: int, s: float = 1.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** s
    ids = rng.permutation(items)[rng.choice(items, size=requests, p=weights / weights.sum())]
    sizes = rng.integers(100_000, 4_000_000, size=items)  # 0.1–4 MB tensors
    return ids, sizes


def _hit_rate(policy: str, ids: np.ndarray, sizes: np.ndarray, budget: int) -> float:
    clock = _Clock()
    cache = TensorCache(CacheConfig(budget_bytes=budget, policy=policy), clock=clock)
    for item in ids:
        clock.now += 0.5
        key = f"t{item}"
        if cache.get(key) is None:
            cache.put(key, item, int(sizes[item]))
        assert cache.used_bytes <= budget
    return cache.hit_rate


@pytest.mark.parametrize("seed", [0, 1])
def test_eq10_hit_rate_is_at_least_lru_on_zipf(seed: int) -> None:
    ids, sizes = _zipf_trace(seed, items=400, requests=6000)
    budget = int(sizes.sum() * 0.1)
    ours, lru = _hit_rate("utility", ids, sizes, budget), _hit_rate("lru", ids, sizes, budget)
    assert ours >= lru + 0.02, (ours, lru)


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


def test_bad_cache_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="policy"):
        CacheConfig(policy="fifo").validate()
