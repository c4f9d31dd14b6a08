"""DualMemory façade: recall/remember/used/observe/recent and the ltm/stm ablation switches."""

from __future__ import annotations

from pathlib import Path

import pytest

from sedma.memory import DualMemory, LongTermMemory, Record, ShortTermMemory, StreamStats


def test_open_with_home_uses_sqlite_file_under_home(tmp_path: Path) -> None:
    with DualMemory.open(home=tmp_path) as mem:
        assert isinstance(mem.ltm, LongTermMemory)
        assert isinstance(mem.stm, ShortTermMemory)
        assert mem.ltm.backend == "sqlite"
        assert mem.stm.backend == "local"
        mem.remember("compute", "lambda", "smooth/EpiRAM", {"lambda": 3e-3}, score=0.9)
    assert (tmp_path / "memory.db").exists()


def test_open_defaults_to_sedma_home(_isolated_home: Path) -> None:
    with DualMemory.open() as mem:
        mem.remember("net", "peer", "p1", {"rtt": 1.0})
    assert (_isolated_home / "memory.db").exists()


def test_remember_is_upsert_if_better_and_force_overwrites(tmp_path: Path) -> None:
    with DualMemory.open(home=tmp_path) as mem:
        assert mem.remember("compute", "lambda", "k", {"lambda": 1}, score=0.9)
        assert not mem.remember("compute", "lambda", "k", {"lambda": 2}, score=0.5)
        assert mem.recall("compute", "lambda", "k") == {"lambda": 1}
        assert mem.remember("compute", "lambda", "k", {"lambda": 3}, score=0.9)  # equal score writes
        assert mem.recall("compute", "lambda", "k") == {"lambda": 3}
        assert mem.remember("compute", "lambda", "k", {"lambda": 4}, score=0.1, force=True)
        rec = mem.recall_record("compute", "lambda", "k")
        assert isinstance(rec, Record)
        assert (rec.value, rec.score) == ({"lambda": 4}, 0.1)


def test_used_counts_uses(tmp_path: Path) -> None:
    with DualMemory.open(home=tmp_path) as mem:
        assert not mem.used("deploy", "placement", "h")
        mem.remember("deploy", "placement", "h", [1, 2])
        assert mem.used("deploy", "placement", "h")
        assert mem.used("deploy", "placement", "h")
        rec = mem.recall_record("deploy", "placement", "h")
        assert rec is not None and rec.uses == 2


def test_observe_and_recent(tmp_path: Path) -> None:
    with DualMemory.open(home=tmp_path, window=5) as mem:
        assert mem.recent("compute/error/x") is None
        for v in range(10):
            mem.observe("compute/error/x", float(v))
        stats = mem.recent("compute/error/x")
        assert isinstance(stats, StreamStats)
        assert (stats.count, stats.min, stats.last) == (5, 5.0, 9.0)
        assert stats.trend == pytest.approx(1.0)


def test_ltm_off_ablation_recalls_nothing_and_writes_nothing(tmp_path: Path) -> None:
    with DualMemory.open(home=tmp_path, ltm=False) as mem:
        assert mem.ltm is None
        assert mem.remember("compute", "lambda", "k", 1, score=1.0) is False
        assert mem.recall("compute", "lambda", "k") is None
        assert mem.recall_record("compute", "lambda", "k") is None
        assert mem.used("compute", "lambda", "k") is False
        mem.observe("s", 1.0)
        assert mem.recent("s") is not None
    assert not (tmp_path / "memory.db").exists()


def test_stm_off_ablation_observes_nothing(tmp_path: Path) -> None:
    with DualMemory.open(home=tmp_path, stm=False) as mem:
        assert mem.stm is None
        mem.observe("s", 1.0)
        assert mem.recent("s") is None
        assert mem.remember("net", "peer", "p", {"x": 1})
        assert mem.recall("net", "peer", "p") == {"x": 1}
