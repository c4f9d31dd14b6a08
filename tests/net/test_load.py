"""Load measurement with psutil, advertisement parsing, and the memory-backed Eq. 7 inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sedma.memory.dual import DualMemory
from sedma.net.load import (
    LoadProbe,
    load_from_body,
    load_to_body,
    record_load,
    record_rtt,
    stats_from_memory,
    update_profile,
)
from sedma.net.types import PeerInfo, PeerLoad, ProtocolError


def test_probe_measures_plausible_values_and_caches() -> None:
    probe = LoadProbe(ttl_s=60.0)
    first = probe.sample()
    assert 0.0 <= first.idle_fraction <= 1.0 and first.mem_free_gb > 0
    assert probe.sample() is first


def test_probe_remeasures_after_ttl() -> None:
    probe = LoadProbe(ttl_s=0.0)
    a = probe.sample()
    sum(i * i for i in range(200_000))  # burn a little CPU between samples
    b = probe.sample()
    assert b is not a and 0.0 <= b.idle_fraction <= 1.0 and b.measured_at >= a.measured_at


def test_wire_form_roundtrips() -> None:
    load = PeerLoad(0.25, 3.5, 123.0)
    assert load_from_body(load_to_body(load)) == load


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"idle": "x", "mem_gb": 1, "at": 1},
        {"idle": math.nan, "mem_gb": 1, "at": 1},
        {"idle": True, "mem_gb": 1, "at": 1},
    ],
)
def test_bad_advertisement_is_a_protocol_error(body: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        load_from_body(body)


def test_out_of_range_values_are_clipped() -> None:
    assert load_from_body({"idle": 7, "mem_gb": -1, "at": 0}) == PeerLoad(1.0, 0.0, 0.0)


def test_stats_come_from_stm_loads_and_ltm_profile(tmp_path: Path) -> None:
    memory = DualMemory.open(home=tmp_path)
    peer = PeerInfo(b"\x12\x20" + bytes(32), "127.0.0.1", 7000)
    record_load(memory, peer.peer_id, PeerLoad(0.75, 12.0, 1.0))
    for rtt in (2.0, 2.0, 2.0):
        record_rtt(memory, peer.peer_id, rtt)
    update_profile(memory, peer.peer_id, completed=True, seconds=0.5, nbytes=50_000_000)
    prof = update_profile(memory, peer.peer_id, completed=False, seconds=1.0, nbytes=0)
    assert prof["success_rate"] == 0.5 and prof["mb_s"] == pytest.approx(100.0)
    stats = stats_from_memory(memory, peer, xor_distance=9)
    assert (stats.availability, stats.mem_free_gb, stats.rtt_ms) == (0.75, 12.0, pytest.approx(2.0))
    assert stats.xor_distance == 9 and stats.extra["profile"]["attempts"] == 2
    memory.close()


def test_stats_without_memory_use_the_fallback() -> None:
    peer = PeerInfo(b"\x01" * 34, "127.0.0.1", 1)
    assert stats_from_memory(None, peer).rtt_ms == 1.0
