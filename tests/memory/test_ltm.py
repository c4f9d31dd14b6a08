"""LongTermMemory behaviour, run on SQLite and on a real PostgreSQL (one suite, both backends)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from sedma.errors import ConfigError, InputError
from sedma.memory import EvictionWeights, LongTermMemory, Record


def test_put_then_get_returns_the_record(ltm: LongTermMemory) -> None:
    rec = ltm.put("compute", "lambda", "smooth/EpiRAM", {"lambda": 3e-3}, score=0.9)
    got = ltm.get("compute", "lambda", "smooth/EpiRAM")
    assert got == rec
    assert isinstance(got, Record)
    assert got.value == {"lambda": 3e-3} and got.score == 0.9 and got.uses == 0
    assert got.created_at == got.updated_at > 0
    assert ltm.get("compute", "lambda", "absent") is None


def test_values_of_every_json_type_round_trip(ltm: LongTermMemory) -> None:
    values = [None, True, 3, -2.5, "text ünï\x00", [1, [2, {"a": None}]], {"nested": {"k": [1.5, "x"]}}]
    for i, v in enumerate(values):
        ltm.put("run", "v", str(i), v)
    ltm.close()
    reopened = LongTermMemory(ltm.url)
    try:
        assert [reopened.get("run", "v", str(i)).value for i in range(len(values))] == values  # type: ignore[union-attr]
    finally:
        reopened.close()


def test_put_keeps_uses_and_created_at(ltm: LongTermMemory) -> None:
    first = ltm.put("net", "peer", "p", {"v": 1}, score=0.5)
    ltm.use("net", "peer", "p")
    second = ltm.put("net", "peer", "p", {"v": 2}, score=0.1)
    assert second.uses == 1 and second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert ltm.get("net", "peer", "p") == second


def test_upsert_if_better_writes_only_when_not_worse(ltm: LongTermMemory) -> None:
    assert ltm.upsert_if_better("deploy", "placement", "h", {"p": 1}, 0.5)
    assert not ltm.upsert_if_better("deploy", "placement", "h", {"p": 2}, 0.4)
    assert ltm.get("deploy", "placement", "h").value == {"p": 1}  # type: ignore[union-attr]
    assert ltm.upsert_if_better("deploy", "placement", "h", {"p": 3}, 0.5)
    assert ltm.upsert_if_better("deploy", "placement", "h", {"p": 4}, 0.7)
    assert ltm.get("deploy", "placement", "h").value == {"p": 4}  # type: ignore[union-attr]


def test_query_filters_by_layer_kind_and_literal_key_prefix(ltm: LongTermMemory) -> None:
    for layer, kind, key in [
        ("compute", "lambda", "smooth/a"),
        ("compute", "lambda", "smooth/b"),
        ("compute", "lambda", "Smooth/c"),
        ("compute", "lambda", "smooth%x"),
        ("compute", "partition", "smooth/a"),
        ("net", "peer", "smooth/a"),
    ]:
        ltm.put(layer, kind, key, 1)
    keys = [r.key for r in ltm.query("compute", "lambda", "smooth/")]
    assert keys == ["smooth/a", "smooth/b"]  # case-sensitive, '%' is not a wildcard
    assert [r.key for r in ltm.query("compute", "lambda", "smooth%")] == ["smooth%x"]
    assert len(ltm.query("compute")) == 5
    assert len(ltm.query(kind="lambda")) == 4
    assert len(ltm.query()) == 6


def test_top_k_orders_by_score(ltm: LongTermMemory) -> None:
    for i, s in enumerate([0.3, 0.9, 0.1, 0.7]):
        ltm.put("net", "peer", f"p{i}", i, score=s)
    ltm.put("net", "other", "x", 0, score=5.0)
    assert [r.key for r in ltm.top_k("net", "peer", 2)] == ["p1", "p3"]
    assert [r.key for r in ltm.top_k("net", "peer", 10, key_prefix="p")] == ["p1", "p3", "p0", "p2"]
    assert ltm.top_k("net", "peer", 0) == []
    with pytest.raises(InputError, match="k must be"):
        ltm.top_k("net", "peer", -1)


def test_delete_and_count_and_clear(ltm: LongTermMemory) -> None:
    ltm.put("a", "b", "c", 1)
    ltm.put("a", "b", "d", 2)
    assert ltm.count() == 2
    assert ltm.delete("a", "b", "c")
    assert not ltm.delete("a", "b", "c")
    assert ltm.get("a", "b", "c") is None
    ltm.clear()
    assert ltm.count() == 0 and ltm.get("a", "b", "d") is None


def test_use_counts_and_reports_absence(ltm: LongTermMemory) -> None:
    assert not ltm.use("a", "b", "missing")
    ltm.put("a", "b", "c", 1)
    for _ in range(3):
        assert ltm.use("a", "b", "c")
    assert ltm.get("a", "b", "c").uses == 3  # type: ignore[union-attr]


def test_cache_serves_hits_and_is_invalidated_by_own_writes(ltm: LongTermMemory) -> None:
    ltm.put("a", "b", "c", {"v": 1})
    assert ltm.get("a", "b", "c").value == {"v": 1}  # type: ignore[union-attr]
    hits = ltm.stats()["cache"]["hits"]
    assert ltm.get("a", "b", "c").value == {"v": 1}  # type: ignore[union-attr]
    assert ltm.stats()["cache"]["hits"] == hits + 1
    ltm.put("a", "b", "c", {"v": 2})
    assert ltm.get("a", "b", "c").value == {"v": 2}  # type: ignore[union-attr]
    ltm.use("a", "b", "c")
    assert ltm.get("a", "b", "c").uses == 1  # type: ignore[union-attr]
    ltm.delete("a", "b", "c")
    assert ltm.get("a", "b", "c") is None


def _scribble(value: object) -> None:
    """Mutate a JSON value in place at every depth."""
    if isinstance(value, dict):
        for v in list(value.values()):
            _scribble(v)
        value["scribbled"] = True
    elif isinstance(value, list):
        for v in list(value):
            _scribble(v)
        value.append("scribbled")


@pytest.mark.parametrize(
    "value", [{"v": [1, 2]}, {"v": 1, "w": "x"}, [1, "a"], [[1], {"a": 2}], {"a": {"b": [1, {"c": 2}]}}]
)
def test_mutating_a_returned_value_does_not_change_memory(ltm: LongTermMemory, value: object) -> None:
    ltm.put("a", "b", "c", value)
    for _ in range(3):  # the miss path, then the cached path
        got = ltm.get("a", "b", "c")
        assert got is not None and got.value == value
        _scribble(got.value)
    assert ltm.get("a", "b", "c").value == value  # type: ignore[union-attr]


def test_uncached_memory_reads_fresh_values_from_another_instance(
    make_ltm: Callable[..., LongTermMemory],
) -> None:
    writer, reader = make_ltm(), make_ltm(cache_size=0)
    writer.put("a", "b", "c", 1)
    assert reader.get("a", "b", "c").value == 1  # type: ignore[union-attr]
    writer.put("a", "b", "c", 2)
    assert reader.get("a", "b", "c").value == 2  # type: ignore[union-attr]


def test_records_persist_across_reopen(make_ltm: Callable[..., LongTermMemory]) -> None:
    first = make_ltm()
    first.put("compute", "partition", "dense-64/EpiRAM", {"tile": [64, 64]}, score=0.8)
    first.close()
    second = make_ltm()
    assert second.get("compute", "partition", "dense-64/EpiRAM").value == {"tile": [64, 64]}  # type: ignore[union-attr]
    assert second.schema_version == 1


def test_eviction_keeps_count_at_capacity_and_spares_the_newest(
    make_ltm: Callable[..., LongTermMemory],
) -> None:
    ltm = make_ltm(capacity=5)
    for i in range(5):
        ltm.put("net", "peer", f"good{i}", i, score=1.0 + i)
    newest = ltm.put("net", "peer", "newest", "n", score=-100.0)  # the least valuable record of all
    assert ltm.count() == 5
    assert ltm.get("net", "peer", "newest") == newest
    assert ltm.get("net", "peer", "good0") is None  # lowest score among the others went
    for i in range(20):
        ltm.put("net", "peer", f"bad{i}", i, score=-1000.0 - i)
        assert ltm.count() == 5
        assert ltm.get("net", "peer", f"bad{i}") is not None


def test_eviction_prefers_to_keep_used_records(make_ltm: Callable[..., LongTermMemory]) -> None:
    ltm = make_ltm(capacity=3, eviction=EvictionWeights(alpha=1.0, beta_per_day=0.0))
    for key in ("a", "b", "c"):
        ltm.put("x", "y", key, key, score=0.0)
    for _ in range(3):
        ltm.use("x", "y", "a")
        ltm.use("x", "y", "c")
    ltm.put("x", "y", "d", "d", score=0.0)
    assert sorted(r.key for r in ltm.query()) == ["a", "c", "d"]


def test_capacity_lowered_on_reopen_evicts_on_next_insert(make_ltm: Callable[..., LongTermMemory]) -> None:
    big = make_ltm(capacity=10)
    for i in range(10):
        big.put("x", "y", f"k{i}", i, score=float(i))
    big.close()
    small = make_ltm(capacity=4)
    small.put("x", "y", "new", 0, score=-1.0)
    assert small.count() == 4
    assert sorted(r.key for r in small.query()) == ["k7", "k8", "k9", "new"]


def test_export_import_round_trip(make_ltm: Callable[..., LongTermMemory], tmp_path: Path) -> None:
    src = make_ltm()
    src.put("compute", "lambda", "smooth/EpiRAM", {"lambda": 3e-3}, score=0.9)
    src.put("net", "peer", "p1", [1, 2], score=0.1)
    src.use("net", "peer", "p1")
    path = tmp_path / "mem.jsonl"
    assert src.export_jsonl(path) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert (
        lines[0]["layer"] == "compute" and lines[0]["value"] == {"lambda": 3e-3} and lines[0]["score"] == 0.9
    )
    assert lines[1]["uses"] == 1
    src.clear()
    assert src.import_jsonl(path) == 2
    assert [r.to_json() for r in src.query()] == lines


def test_import_accepts_the_minimal_line_format(ltm: LongTermMemory, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"layer": "compute", "kind": "lambda", "key": "smooth/EpiRAM", '
        '"value": {"lambda": 0.003}, "score": 0.9}\n'
        "\n"
        '{"layer": "net", "kind": "peer", "key": "p", "value": null}\n'
    )
    assert ltm.import_jsonl(path) == 2
    rec = ltm.get("compute", "lambda", "smooth/EpiRAM")
    assert rec is not None and rec.value == {"lambda": 0.003} and rec.score == 0.9 and rec.uses == 0
    assert ltm.get("net", "peer", "p").score == 0.0  # type: ignore[union-attr]


def test_import_with_a_malformed_line_changes_nothing(ltm: LongTermMemory, tmp_path: Path) -> None:
    ltm.put("a", "b", "keep", 1, score=0.5)
    ltm.get("a", "b", "keep")
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"layer": "a", "kind": "b", "key": "keep", "value": 2, "score": 0.9}\n'
        '{"layer": "a", "kind": "b", "key": "new", "value": 3, "score": 0.9}\n'
        '{"layer": "a", "kind": "b", "key": "broken", "value": 3, "score": \n'
    )
    with pytest.raises(InputError, match=r"bad\.jsonl:3: not valid JSON"):
        ltm.import_jsonl(path)
    assert ltm.count() == 1
    assert ltm.get("a", "b", "keep").value == 1  # type: ignore[union-attr]


def test_import_evicts_beyond_capacity(make_ltm: Callable[..., LongTermMemory], tmp_path: Path) -> None:
    ltm = make_ltm(capacity=3)
    path = tmp_path / "many.jsonl"
    rows = [{"layer": "x", "kind": "y", "key": f"k{i}", "value": i, "score": float(i)} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ltm.import_jsonl(path) == 6
    assert sorted(r.key for r in ltm.query()) == ["k3", "k4", "k5"]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [({1, 2}, "set"), (object(), "object"), ({"x": math.nan}, "float"), (b"raw", "bytes")],
)
def test_non_json_value_is_rejected_and_nothing_stored(
    ltm: LongTermMemory, value: object, fragment: str
) -> None:
    with pytest.raises(InputError, match=r"not JSON-serialisable") as err:
        ltm.put("compute", "lambda", "k", value)
    assert "'compute', 'lambda', 'k'" in str(err.value) and fragment in str(err.value)
    assert ltm.count() == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", "k", "x"), "layer must be a non-empty string"),
        (("l", None, "x"), "kind must be a non-empty string"),
        (("l", "k", 3), "key must be a non-empty string"),
        (("l", "k", "a\x00b"), "key must not contain a NUL"),
    ],
)
def test_bad_names_are_rejected(ltm: LongTermMemory, args: tuple[object, ...], match: str) -> None:
    with pytest.raises(InputError, match=match):
        ltm.put(*args, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("score", [math.nan, math.inf, "high", True])
def test_bad_scores_are_rejected(ltm: LongTermMemory, score: object) -> None:
    with pytest.raises(InputError, match="must be a finite number"):
        ltm.put("l", "k", "x", 1, score=score)  # type: ignore[arg-type]
    assert ltm.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"capacity": 0}, "capacity"), ({"cache_size": -1}, "cache_size")]
)
def test_bad_options_raise_config_error(ltm_url: str, kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LongTermMemory(ltm_url, **kwargs)  # type: ignore[arg-type]


def test_stats_reports_groups_and_backend(ltm: LongTermMemory) -> None:
    ltm.put("compute", "lambda", "a", 1, score=1.0)
    ltm.put("compute", "lambda", "b", 1, score=0.0)
    ltm.put("net", "peer", "p", 1, score=2.0)
    s = ltm.stats()
    assert s["backend"] in ("sqlite", "postgresql") and s["count"] == 3 and s["capacity"] == 10_000
    assert s["groups"] == [
        {"layer": "compute", "kind": "lambda", "count": 2, "mean_score": 0.5},
        {"layer": "net", "kind": "peer", "count": 1, "mean_score": 2.0},
    ]


@pytest.mark.postgres
def test_postgres_connections_killed_by_the_server_are_replaced(pg_schema: str, pg_url: str) -> None:
    import psycopg

    app = f"sedma-kill-{uuid.uuid4().hex[:8]}"
    ltm = LongTermMemory(f"{pg_schema}&application_name={app}", cache_size=0)
    try:
        ltm.put("net", "peer", "p", 1)
        assert ltm.get("net", "peer", "p") is not None  # the reader holds one connection...
        ltm.put("net", "peer", "p", 1)  # ...and the pool another
        with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (app,),
            ).fetchone()
        assert killed is not None and killed[0] == 2
        assert ltm.get("net", "peer", "p").value == 1  # type: ignore[union-attr]
        ltm.put("net", "peer", "q", 2)
        assert ltm.count() == 2
    finally:
        ltm.close()
