"""How DHT answers name peers: compact 40-byte entries, else three fields plus the relay of a
peer behind a NAT; sizes checked before anything is trusted."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sedma.net.dht.protocol import (
    ENTRY,
    MAX_PEERS,
    DhtHandlers,
    PeerCodec,
    entry_to_peer,
    peer_entry,
    peer_from_wire,
    peer_to_wire,
)
from sedma.net.dht.routing import RoutingTable
from sedma.net.dht.storage import DhtStorage
from sedma.net.rpc import Caller
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


def _peer(i: int, host: str = "127.0.0.1") -> PeerInfo:
    return PeerInfo(b"\x12\x20" + bytes([i]) * 32, host, 4000 + i)


def test_answers_carry_ipv4_peers_as_40_byte_entries_and_others_in_the_general_form() -> None:
    plain = [_peer(i) for i in range(5)]
    others = [
        _peer(9, "node-9.example"),  # a name, not an address
        _peer(10, "::1"),
        _peer(11, "010.0.0.1"),  # not canonical: the entry would decode to another host string
        PeerInfo(PID, "10.0.0.5", 4001, relay=(RELAY_ID, "203.0.113.7", 4002)),
    ]
    body = PeerCodec().encode([*plain, *others])
    assert isinstance(body["peers"], bytes) and len(body["peers"]) == ENTRY * len(plain)
    assert body["peers"][:ENTRY] == peer_entry(plain[0])
    assert body["peers_x"] == [peer_to_wire(p) for p in others]
    assert PeerCodec().decode(_over_the_wire(body)) == [*plain, *others]
    assert "peers_x" not in PeerCodec().encode(plain)


def _over_the_wire(body: dict[str, Any]) -> dict[str, Any]:
    return dict(msgpack.unpackb(msgpack.packb(body, use_bin_type=True), raw=False))


def test_a_peer_whose_address_changed_is_sent_with_its_new_address() -> None:
    codec, old = PeerCodec(), _peer(1)
    codec.encode([old])
    moved = PeerInfo(old.peer_id, "127.0.0.2", 5000)
    assert PeerCodec().decode(codec.encode([moved])) == [moved]


def test_decoded_lists_are_memoised_but_equal_to_a_fresh_decode() -> None:
    codec, peers = PeerCodec(), [_peer(i) for i in range(20)]
    body = _over_the_wire(PeerCodec().encode(peers))
    first, again = codec.decode(body), codec.decode(_over_the_wire(body))
    assert first == again == peers and first is again


@pytest.mark.parametrize(
    "blob",
    [
        b"x" * (ENTRY - 1),  # not a whole number of entries
        b"x" * (ENTRY * (MAX_PEERS + 1)),  # more peers than any answer names
        "a string",
        [b"x" * ENTRY],
    ],
)
def test_a_malformed_compact_list_is_ignored_whole(blob: Any) -> None:
    assert PeerCodec().decode({"peers": blob}) == []


def test_malformed_entries_are_dropped_alone() -> None:
    good = peer_entry(_peer(3))
    assert good is not None
    bad_prefix = b"\x13\x20" + good[2:]
    zero_port = good[:38] + b"\x00\x00"
    codec = PeerCodec()
    assert codec.decode({"peers": bad_prefix + good + zero_port}) == [_peer(3)]
    assert entry_to_peer(b"short") is None


def test_too_many_general_form_peers_are_ignored_and_bad_ones_dropped() -> None:
    codec = PeerCodec()
    assert codec.decode({"peers": b"", "peers_x": [[PID, "h", 1]] * (MAX_PEERS + 1)}) == []
    assert codec.decode({"peers": b"", "peers_x": [[PID, "h", 1], "junk", [PID, "h", 0]]}) == [
        PeerInfo(PID, "h", 1)
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=ENTRY * 8), st.lists(st.binary(max_size=48) | st.text(max_size=8), max_size=4))
def test_fuzz_random_peer_lists_never_crash_and_yield_only_well_formed_peers(
    blob: bytes, extra: list[Any]
) -> None:
    for peer in PeerCodec().decode({"peers": blob, "peers_x": extra}):
        assert len(peer.peer_id) == 34 and 0 < peer.port < 65536 and peer.host


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=255), min_size=1, max_size=20, unique=True))
def test_fuzz_compact_lists_round_trip(ids: list[int]) -> None:
    peers = [PeerInfo(b"\x12\x20" + bytes([i]) * 32, f"10.0.{i}.1", 1 + i) for i in ids]
    assert PeerCodec().decode(_over_the_wire(PeerCodec().encode(peers))) == peers


def _handlers_over(peers: list[PeerInfo]) -> tuple[DhtHandlers, RoutingTable]:
    table = RoutingTable(b"\x00" * 32, k=20)
    for p in peers:
        table.add(p)
    return DhtHandlers(table, DhtStorage()), table


def _asker(peer: PeerInfo) -> Caller:
    return Caller(peer.peer_id, b"", peer, None)


def test_answers_from_the_ranked_rows_equal_the_per_peer_encoding() -> None:
    rng = random.Random(5)
    plain = [PeerInfo(b"\x12\x20" + rng.randbytes(32), "127.0.0.1", 4000 + i) for i in range(60)]
    handlers, table = _handlers_over(plain)
    for _ in range(20):
        key, asker = rng.randbytes(32), rng.choice(plain)
        expected = PeerCodec().encode(table.closest(key, 20, exclude=[asker.peer_id]))
        assert handlers.find_node(_asker(asker), {"key": key}) == expected
    moved = PeerInfo(plain[7].peer_id, "127.0.0.9", 9999)  # same id, new address: re-ranked
    table.add(moved)
    answer = handlers.find_node(_asker(plain[0]), {"key": moved.dht_key})
    assert PeerCodec().decode(_over_the_wire(answer))[0] == moved


def test_a_table_with_a_relayed_peer_still_answers_every_peer() -> None:
    rng = random.Random(6)
    plain = [PeerInfo(b"\x12\x20" + rng.randbytes(32), "127.0.0.1", 4000 + i) for i in range(30)]
    relayed = PeerInfo(PID, "10.0.0.5", 4001, relay=(RELAY_ID, "203.0.113.7", 4002))
    handlers, table = _handlers_over([*plain, relayed])
    answer = handlers.find_node(_asker(plain[0]), {"key": relayed.dht_key})
    closest = table.closest(relayed.dht_key, 20, exclude=[plain[0].peer_id])
    assert answer == PeerCodec().encode(closest)
    assert set(PeerCodec().decode(_over_the_wire(answer))) == set(closest)
    assert answer["peers_x"] == [peer_to_wire(relayed)]
