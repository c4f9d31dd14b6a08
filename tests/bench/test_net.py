"""Pieces of ``sedma bench net``: the floor really moves bytes between processes; goals judge."""

from __future__ import annotations

import asyncio

import pytest

from sedma.bench.net import BenchConfig, goals, pct, raw_floor
from sedma.errors import ConfigError
from sedma.net.loop import loop_name, run


def test_floor_measures_both_raw_asyncio_paths_against_a_real_child_process() -> None:
    async def main() -> list[tuple[float, float, float]]:
        async with raw_floor(1 << 20) as sample:
            return [await sample() for _ in range(2)]

    rates = asyncio.run(main())
    assert len(rates) == 2 and all(min(rate) > 1.0 for rate in rates)  # MB/s, measured
    assert all(streams == plain for streams, _, plain in rates)  # on asyncio: one and the same


def test_on_uvloop_the_plain_asyncio_floor_is_measured_beside_the_uvloop_one() -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed")

    async def main() -> tuple[str, list[tuple[float, float, float]]]:
        async with raw_floor(1 << 20) as sample:
            return loop_name(), [await sample() for _ in range(2)]

    name, rates = run(main(), uvloop=True)
    assert name == "uvloop"
    # Three separate measurements (two child processes), none of them copied from another.
    assert all(min(rate) > 1.0 and rate[0] != rate[2] for rate in rates)


def test_goals_pass_and_fail_on_the_issue_thresholds() -> None:
    base = {
        "transfer_mb_s": 200.0,
        "transfer_share_of_floor": 0.7,
        "rtt_ms_p50": 0.2,
        "lookup_ms_p50": 2.0,
        "dht_get_ms_p50": 2.5,
        "lookup_success": 1.0,
        "dead25_lookup_ms_p95": 400.0,
    }
    assert all(g["pass"] for g in goals(base))
    worse = {**base, "transfer_share_of_floor": 0.5, "lookup_success": 0.99}
    failed = {g["goal"] for g in goals(worse) if not g["pass"]}
    assert failed == {"transfer >= 60% of floor", "look-up success 100%"}


def test_percentiles_and_config_validation() -> None:
    p = pct([float(i) for i in range(1, 101)])
    assert p["n"] == 100 and 50 <= p["p50"] <= 51 and 95 <= p["p95"] <= 96
    with pytest.raises(ConfigError, match="split evenly"):
        BenchConfig(peers=63, procs=4).validate()
    with pytest.raises(ConfigError, match="repeats"):
        BenchConfig(repeats=0).validate()


def test_transfer_rounds_fetch_real_tensors_and_leave_their_blocks_stored(tmp_path) -> None:
    from sedma.bench.net import measure_transfer, swarm_processes
    from sedma.net.node import Node, NodeConfig

    cfg = BenchConfig(transfer_mib=2, repeats=2)

    async def floor() -> tuple[float, float, float]:
        return 1.0, 2.0, 3.0

    async def main() -> tuple[dict[str, list[float]], int]:
        with swarm_processes(2, 2, tmp_path) as (_, addrs):
            node = Node(NodeConfig(ephemeral=True, home=tmp_path, bootstrap=(addrs[0][0],)))
            await node.start()
            try:
                out = await measure_transfer(node, addrs[1][0], cfg, floor)
                # get_tensor stores after returning; each round awaited that before the next
                return out, len(node.store)
            finally:
                await node.stop()

    out, stored = asyncio.run(main())
    assert len(out["transfer"]) == 2 and min(out["transfer"]) > 1.0
    assert out["streams"] == [1.0, 1.0] and out["asyncio"] == [3.0, 3.0]
    assert stored >= 3 * (2 + 1)  # every round's two 1 MiB blocks and its manifest (round 0 too)
