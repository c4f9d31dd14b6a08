"""The public API of sedma.memory is exactly what the contract in its README names."""

from __future__ import annotations

import inspect

import sedma.memory as memory


def test_public_api_is_guarded() -> None:
    assert sorted(memory.__all__) == [
        "DualMemory",
        "EvictionWeights",
        "LongTermMemory",
        "Record",
        "ShortTermMemory",
        "StreamStats",
        "stream_stats",
    ]
    for name in memory.__all__:
        assert getattr(memory, name).__module__.startswith("sedma.memory.")


def test_contract_signatures() -> None:
    ltm = inspect.signature(memory.LongTermMemory)
    assert list(ltm.parameters)[:3] == ["url", "capacity", "cache_size"]
    assert ltm.parameters["capacity"].default == 10_000 and ltm.parameters["cache_size"].default == 4096
    stm = inspect.signature(memory.ShortTermMemory)
    assert list(stm.parameters)[:2] == ["url", "window"] and stm.parameters["window"].default == 100
    opened = inspect.signature(memory.DualMemory.open)
    for name in ("home", "ltm", "stm", "ltm_url", "stm_url", "capacity", "window"):
        assert opened.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    for method in ("recall", "recall_record", "remember", "used", "observe", "recent", "close"):
        assert callable(getattr(memory.DualMemory, method))
