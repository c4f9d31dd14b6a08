"""Window statistics: checked against straightforward reference computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sedma.memory.stats import ewma, stream_stats, trend


def _ewma_loop(x: list[float], alpha: float) -> float:
    e = x[0]
    for v in x[1:]:
        e = alpha * v + (1 - alpha) * e
    return e


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=120),
    st.floats(0.01, 1.0),
)
def test_vectorised_ewma_matches_the_recurrence(x: list[float], alpha: float) -> None:
    assert ewma(np.array(x), alpha) == pytest.approx(_ewma_loop(x, alpha), rel=1e-9, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=120))
def test_trend_matches_polyfit(x: list[float]) -> None:
    slope = np.polyfit(np.arange(len(x)), np.array(x), 1)[0]
    assert trend(np.array(x)) == pytest.approx(slope, rel=1e-6, abs=1e-6)


def test_stats_of_a_line() -> None:
    s = stream_stats([1.0, 3.0, 5.0, 7.0])
    assert s is not None
    assert (s.count, s.mean, s.min, s.max, s.last, s.trend) == (4, 4.0, 1.0, 7.0, 7.0, 2.0)
    assert s.var == 5.0 and s.std == pytest.approx(5.0**0.5) and s.p50 == 4.0


def test_single_sample_and_empty() -> None:
    s = stream_stats([2.5])
    assert s is not None and (s.var, s.trend, s.ewma, s.p99) == (0.0, 0.0, 2.5, 2.5)
    assert stream_stats([]) is None


def test_to_json_has_every_field() -> None:
    s = stream_stats([1.0, 2.0])
    assert s is not None
    assert list(s.to_json()) == [
        "count", "mean", "var", "std", "ewma", "min", "max", "p50", "p95", "p99", "last", "trend",
    ]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=120))
def test_stats_match_numpy(x: list[float]) -> None:
    s = stream_stats(x)
    a = np.array(x)
    assert s is not None
    assert [s.p50, s.p95, s.p99] == pytest.approx(np.percentile(a, [50, 95, 99]).tolist(), rel=1e-9, abs=1e-6)
    assert s.mean == pytest.approx(a.mean(), rel=1e-9, abs=1e-6)
    assert s.var == pytest.approx(a.var(), rel=1e-6, abs=1e-3)
    assert (s.min, s.max, s.last, s.count) == (a.min(), a.max(), a[-1], a.size)
