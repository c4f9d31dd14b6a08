"""The eviction formula and the input checks on names, scores and values."""

from __future__ import annotations

import math

import pytest

from sedma.errors import ConfigError, InputError
from sedma.memory.records import DAY_S, EvictionWeights, Record, check_score, encode_value


def test_merit_orders_records_like_the_eviction_value_at_any_time() -> None:
    w = EvictionWeights(alpha=0.3, beta_per_day=0.5)
    recs = [(0.9, 0, 0.0), (0.1, 40, 5 * DAY_S), (0.5, 3, 2 * DAY_S), (-1.0, 1000, 9 * DAY_S)]
    for now in (10 * DAY_S, 100 * DAY_S):
        by_value = sorted(range(4), key=lambda i: w.value_at(*recs[i], now))
        by_merit = sorted(range(4), key=lambda i: w.merit(*recs[i]))
        assert by_value == by_merit
        for r in recs:
            assert w.merit(*r) - w.beta_per_day * now / DAY_S == pytest.approx(w.value_at(*r, now))


def test_value_rises_with_score_and_uses_and_falls_with_age() -> None:
    w = EvictionWeights()
    base = w.value_at(0.5, 2, 0.0, DAY_S)
    assert w.value_at(0.6, 2, 0.0, DAY_S) > base
    assert w.value_at(0.5, 3, 0.0, DAY_S) > base
    assert w.value_at(0.5, 2, 0.0, 2 * DAY_S) < base
    assert w.use_bonus(0) == 0.0 and w.use_bonus(math.e - 1) == pytest.approx(w.alpha)


@pytest.mark.parametrize("field", ["alpha", "beta_per_day"])
@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_eviction_weights_validate(field: str, bad: float) -> None:
    with pytest.raises(ConfigError, match=field):
        EvictionWeights(**{field: bad}).validate()


def test_record_export_form() -> None:
    r = Record("compute", "lambda", "k", {"lambda": 1e-3}, 0.9, 2, 1.0, 2.0)
    assert r.to_json() == {
        "layer": "compute",
        "kind": "lambda",
        "key": "k",
        "value": {"lambda": 1e-3},
        "score": 0.9,
        "uses": 2,
        "created_at": 1.0,
        "updated_at": 2.0,
    }


def test_encode_value_is_compact_and_rejects_nan() -> None:
    assert encode_value("a", "b", "c", {"x": [1, 2.5]}) == '{"x":[1,2.5]}'
    with pytest.raises(InputError, match=r"\('a', 'b', 'c'\) is not JSON-serialisable"):
        encode_value("a", "b", "c", [math.inf])


def test_check_score_accepts_ints() -> None:
    assert check_score(3) == 3.0
