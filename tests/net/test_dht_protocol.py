"""How DHT answers name peers: three fields, plus the relay of a peer behind a NAT."""

from __future__ import annotations

from typing import Any

import pytest

from sedma.net.dht.protocol import peer_from_wire, peer_to_wire
from sedma.net.types import PeerInfo

PID, RELAY_ID = b"\x12\x20" + b"p" * 32, b"\x12\x20" + b"r" * 32


def test_peers_round_trip_with_and_without_a_relay() -> None:
    plain = PeerInfo(PID, "10.0.0.5", 4001)
    relayed = PeerInfo(PID, "10.0.0.5", 4001, relay=(RELAY_ID, "203.0.113.7", 4002))
    assert peer_to_wire(plain) == [PID, "10.0.0.5", 4001]
    assert peer_from_wire(peer_to_wire(plain)) == plain
    assert peer_to_wire(relayed)[3] == [RELAY_ID, "203.0.113.7", 4002]
    assert peer_from_wire(peer_to_wire(relayed)) == relayed


@pytest.mark.parametrize(
    "relay",
    [
        [b"short", "h", 1],
        [RELAY_ID, "", 4002],
        [RELAY_ID, "h", 0],
        [RELAY_ID, "h", 70000],
        "x",
        [RELAY_ID, 5, 1],
    ],
)
def test_a_peer_with_a_malformed_relay_is_ignored_whole(relay: Any) -> None:
    assert peer_from_wire([PID, "10.0.0.5", 4001, relay]) is None


def test_malformed_peers_are_ignored() -> None:
    for raw in ([PID, "h"], [PID, "h", 0], [b"x", "h", 1], "junk", [PID, "h", 1, None, None]):
        assert peer_from_wire(raw) is None
