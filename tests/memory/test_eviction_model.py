"""Eviction against a reference model: random put/use/delete sequences on a small capacity."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sedma.memory import EvictionWeights, LongTermMemory
from sedma.memory.urls import sqlite_url

ALPHA = 0.5
KEYS = [f"k{i}" for i in range(8)]
ops = st.lists(
    st.tuples(st.sampled_from(["put", "use", "delete"]), st.sampled_from(KEYS), st.integers(-3, 3)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=25, deadline=None)
@given(ops)
def test_eviction_matches_the_reference_model(sequence: list[tuple[str, str, int]]) -> None:
    capacity = 4
    model: dict[str, tuple[float, int, int]] = {}  # key -> (score, uses, last touch tick)
    with tempfile.TemporaryDirectory() as tmp:
        weights = EvictionWeights(alpha=ALPHA, beta_per_day=0.0)
        ltm = LongTermMemory(sqlite_url(Path(tmp) / "m.db"), capacity=capacity, eviction=weights)
        try:
            for tick, (op, key, score) in enumerate(sequence):
                _apply(ltm, model, op, key, float(score), tick, capacity)
                assert sorted(r.key for r in ltm.query()) == sorted(model)
                assert ltm.count() <= capacity
        finally:
            ltm.close()


def _apply(
    ltm: LongTermMemory,
    model: dict[str, tuple[float, int, int]],
    op: str,
    key: str,
    score: float,
    tick: int,
    cap: int,
) -> None:
    if op == "put":
        ltm.put("x", "y", key, score, score=score)
        uses = model[key][1] if key in model else 0
        is_new = key not in model
        model[key] = (score, uses, tick)
        if is_new and len(model) > cap:
            others = [k for k in model if k != key]
            victim = min(others, key=lambda k: (model[k][0] + ALPHA * math.log1p(model[k][1]), model[k][2]))
            del model[victim]
    elif op == "use":
        assert ltm.use("x", "y", key) == (key in model)
        if key in model:
            s, u, _ = model[key]
            model[key] = (s, u + 1, tick)
    else:
        assert ltm.delete("x", "y", key) == (key in model)
        model.pop(key, None)
