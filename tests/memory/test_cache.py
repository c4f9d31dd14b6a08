"""The LRU cache in front of LTM look-ups."""

from __future__ import annotations

from sedma.memory.cache import LruCache, copy_plan


def test_least_recently_used_entry_is_dropped() -> None:
    c: LruCache[str, int] = LruCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the most recent
    c.put("c", 3)
    assert c.get("b") is None and c.get("a") == 1 and c.get("c") == 3
    assert (c.hits, c.misses, len(c)) == (3, 1, 2)


def test_invalidate_and_clear() -> None:
    c: LruCache[str, int] = LruCache(4)
    c.put("a", 1)
    c.invalidate("a")
    c.invalidate("missing")
    assert c.get("a") is None
    c.put("b", 2)
    c.clear()
    assert len(c) == 0


def test_zero_capacity_caches_nothing() -> None:
    c: LruCache[str, int] = LruCache(0)
    c.put("a", 1)
    assert c.get("a") is None and len(c) == 0


def test_copy_plan_gives_independent_copies() -> None:
    assert (
        copy_plan(3.5) == (None, None) and copy_plan("s") == (None, None) and copy_plan(None) == (None, None)
    )
    for value in ({"a": 1}, [1, 2], {"a": [1], "b": 2}, [{"b": 2}, 3], {"a": {"b": [1]}}, [[[1]]]):
        copy, payload = copy_plan(value)
        assert copy is not None
        first, second = copy(payload), copy(payload)
        assert first == second == value and first is not second and first is not value
        for k in range(len(value)) if isinstance(value, list) else list(value):
            if isinstance(first[k], dict | list):
                assert first[k] is not second[k] and first[k] is not value[k]
