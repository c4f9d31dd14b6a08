"""ShortTermMemory behaviour, run in-process and on a real Redis (one suite, both backends)."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sedma.errors import BackendUnavailable, ConfigError, InputError
from sedma.memory import ShortTermMemory, StreamStats


def test_window_keeps_the_last_n_samples(make_stm: Callable[..., ShortTermMemory]) -> None:
    stm = make_stm(window=4)
    for v in range(10):
        stm.append("compute/error/x", v)
    assert stm.values("compute/error/x") == [6.0, 7.0, 8.0, 9.0]
    stm.extend("compute/error/x", [10, 11])
    assert stm.values("compute/error/x") == [8.0, 9.0, 10.0, 11.0]


def test_default_window_is_100(make_stm: Callable[..., ShortTermMemory]) -> None:
    stm = make_stm()
    stm.extend("s", range(250))
    assert stm.window == 100 and stm.values("s") == [float(v) for v in range(150, 250)]


def test_stats_over_the_window(make_stm: Callable[..., ShortTermMemory]) -> None:
    stm = make_stm(window=50)
    rng = np.random.default_rng(0)
    samples = rng.normal(3.0, 0.5, size=80)
    stm.extend("net/load/p1", samples.tolist())
    s = stm.stats("net/load/p1")
    assert isinstance(s, StreamStats)
    w = samples[-50:]
    assert s.count == 50 and s.last == pytest.approx(w[-1])
    assert (
        s.mean == pytest.approx(w.mean())
        and s.var == pytest.approx(w.var())
        and s.std == pytest.approx(w.std())
    )
    assert s.p95 == pytest.approx(np.percentile(w, 95)) and (s.min, s.max) == (w.min(), w.max())


def test_empty_or_unknown_stream_has_no_stats(make_stm: Callable[..., ShortTermMemory]) -> None:
    stm = make_stm()
    assert stm.stats("never/seen") is None and stm.values("never/seen") == []


def test_values_are_exact_floats(make_stm: Callable[..., ShortTermMemory]) -> None:
    stm = make_stm()
    vals = [0.1, 1e-300, -2.5e17, 1 / 3]
    stm.extend("x", vals)
    assert stm.values("x") == vals


def test_streams_lists_by_literal_prefix_and_clear(make_stm: Callable[..., ShortTermMemory]) -> None:
    stm = make_stm()
    for name in ("compute/error/a", "compute/error/b", "compute/err*", "net/load/p"):
        stm.append(name, 1.0)
    assert stm.streams("compute/error/") == ["compute/error/a", "compute/error/b"]
    assert stm.streams("compute/err*") == ["compute/err*"]
    assert len(stm.streams()) == 4
    stm.clear("compute/error/a")
    assert stm.streams("compute/error/") == ["compute/error/b"]
    stm.clear()
    assert stm.streams() == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, "fast", None])
def test_bad_samples_are_rejected_and_nothing_appended(
    make_stm: Callable[..., ShortTermMemory], bad: Any
) -> None:
    stm = make_stm()
    with pytest.raises(InputError, match="stream 's'"):
        stm.append("s", bad)
    with pytest.raises(InputError):
        stm.extend("s", [1.0, bad])
    assert stm.values("s") == []


def test_bad_stream_name_is_rejected(make_stm: Callable[..., ShortTermMemory]) -> None:
    with pytest.raises(InputError, match="stream name"):
        make_stm().append("", 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"window": 0}, "window"), ({"ewma_alpha": 0.0}, "ewma_alpha")]
)
def test_bad_options_raise_config_error(
    stm_kwargs: dict[str, Any], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        ShortTermMemory(**{**stm_kwargs, **kwargs})


@pytest.mark.redis
def test_processes_on_a_node_share_redis_streams(redis_url: str) -> None:
    ns = f"share{time.monotonic_ns()}"
    code = (
        "import sys; from sedma.memory import ShortTermMemory\n"
        f"m = ShortTermMemory({redis_url!r}, window=50, namespace={ns!r})\n"
        "for i in range(200): m.append('net/load/shared', float(sys.argv[1]))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(v)]) for v in (1, 2, 3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    stm = ShortTermMemory(redis_url, window=50, namespace=ns)
    try:
        vals = stm.values("net/load/shared")
        assert len(vals) == 50 and set(vals) <= {1.0, 2.0, 3.0}  # trimmed atomically to the window
        assert stm._backend._r.llen(f"{ns}:stm:net/load/shared") == 50  # type: ignore[attr-defined]
    finally:
        stm.clear()
        stm.close()


def test_env_url_selects_redis(monkeypatch: pytest.MonkeyPatch, stm_kwargs: dict[str, Any]) -> None:
    if stm_kwargs["url"] is None:
        assert ShortTermMemory().backend == "local"
        return
    monkeypatch.setenv("SEDMA_STM_URL", stm_kwargs["url"])
    with ShortTermMemory(namespace=stm_kwargs["namespace"]) as stm:
        assert stm.backend == "redis"


def test_unreachable_redis_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"Redis at redis://127\.0\.0\.1"):
        ShortTermMemory(f"redis://127.0.0.1:{port}/0")
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis://host:notaport/0", "malformed STM URL"),
        ("http://x", "unsupported scheme"),
        ("redis://", "no host"),
    ],
)
def test_malformed_redis_url_is_a_config_error(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ShortTermMemory(url)
