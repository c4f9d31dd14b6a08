"""k-buckets: XOR metric, bucket limits, closest peers."""

from __future__ import annotations

import os

from sedma.net.dht.routing import RoutingTable, bucket_index, distance, random_key_in_bucket
from sedma.net.types import PeerInfo


def _peer(i: int) -> PeerInfo:
    return PeerInfo(b"\x12\x20" + os.urandom(32), "127.0.0.1", 1000 + i)


def test_xor_distance_is_a_metric_on_keys() -> None:
    a, b = os.urandom(32), os.urandom(32)
    assert distance(a, a) == 0 and distance(a, b) == distance(b, a) > 0
    assert bucket_index(a, a) == -1


def test_random_key_lands_in_the_asked_bucket() -> None:
    me = os.urandom(32)
    for index in (0, 1, 7, 128, 255):
        assert bucket_index(me, random_key_in_bucket(me, index)) == index


def test_full_bucket_returns_least_recently_seen_instead_of_adding() -> None:
    table = RoutingTable(b"\x00" * 32, k=2)
    # Keys whose top bit is set all fall in bucket 255 of the all-zero self key.
    peers = []
    while len(peers) < 3:
        p = _peer(len(peers))
        if p.dht_key[0] & 0x80:
            peers.append(p)
    assert table.add(peers[0]) == (True, None)
    assert table.add(peers[1]) == (True, None)
    assert table.add(peers[0]) == (False, None)  # seen again: now most recent
    assert table.add(peers[2]) == (False, peers[1])
    assert peers[2] not in table and len(table) == 2
    assert table.remove(peers[1]) and table.add(peers[2]) == (True, None)


def test_closest_matches_brute_force_order() -> None:
    table = RoutingTable(os.urandom(32), k=20)
    for i in range(300):
        table.add(_peer(i))
    target = os.urandom(32)
    known = table.peers()
    expected = sorted(known, key=lambda p: distance(p.dht_key, target))[:20]
    assert table.closest(target, 20) == expected
    assert table.closest(target, 5, exclude=[expected[0].peer_id]) == expected[1:6]
    assert table.refresh_indices() and max(table.refresh_indices()) == 255


def test_closest_stays_exact_when_peers_share_their_top_64_key_bits() -> None:
    # Forge key positions (the memo PeerInfo reads) so two peers tie on the top 64 bits and
    # differ only below them: the 64-bit fast ranking must not decide their order.
    from sedma.net import types

    top = os.urandom(8)
    near, far = top + b"\x00" * 24, top + b"\xff" * 24
    tied = [PeerInfo(b"\x12\x20" + os.urandom(32), "127.0.0.1", 2000 + i) for i in range(2)]
    for peer, key in zip(tied, (far, near), strict=True):
        types._POSITIONS[peer.peer_id] = (key, int.from_bytes(key, "big"))
    table = RoutingTable(bytes(a ^ 0xFF for a in top) + os.urandom(24), k=20)
    # The tied pair first: their bucket (255) may fill up with the 30 random peers after them.
    for peer in tied:
        assert table.add(peer) == (True, None)
    for i in range(30):
        table.add(_peer(i))
    target = top + b"\x00" * 23 + b"\x01"
    expected = sorted(table.peers(), key=lambda p: distance(p.dht_key, target))
    assert expected[:2] == [tied[1], tied[0]]
    assert table.closest(target, 20) == expected[:20]
    assert table.closest(target, 3, exclude=[tied[1].peer_id]) == [tied[0], *expected[2:4]]


def test_closest_skips_excluded_peers_known_or_not_and_returns_at_most_the_rest() -> None:
    table = RoutingTable(os.urandom(32), k=20)
    for i in range(40):
        table.add(_peer(i))
    target = os.urandom(32)
    ranked = sorted(table.peers(), key=lambda p: distance(p.dht_key, target))
    skip = [ranked[0].peer_id, ranked[3].peer_id, ranked[-1].peer_id, b"unknown id"]
    expected = [p for p in ranked if p.peer_id not in skip]
    assert table.closest(target, 20, exclude=skip) == expected[:20]
    assert table.closest(target, 100, exclude=skip) == expected  # all the others
    assert table.closest(target, 1, exclude=skip) == expected[:1]
    everyone = [p.peer_id for p in ranked]
    assert table.closest(target, 20, exclude=everyone) == []


def test_closest_names_a_peer_by_its_latest_address() -> None:
    table = RoutingTable(os.urandom(32), k=20)
    peers = [_peer(i) for i in range(10)]
    for p in peers:
        table.add(p)
    target = peers[4].dht_key
    assert table.closest(target, 1) == [peers[4]]  # ranked once here
    moved = PeerInfo(peers[4].peer_id, "127.0.0.9", 9999)
    table.add(moved)
    assert table.closest(target, 1) == [moved]
    assert table.get(moved.peer_id) == moved


def test_leaving_out_one_asker_matches_brute_force_for_every_answer_size() -> None:
    table = RoutingTable(os.urandom(32), k=20)
    for i in range(24):
        table.add(_peer(i))
    known = table.peers()
    for _ in range(20):
        target = os.urandom(32)
        ranked = sorted(known, key=lambda p: distance(p.dht_key, target))
        asker = ranked[int.from_bytes(os.urandom(1), "big") % len(ranked)]
        kept = [p for p in ranked if p is not asker]
        for n in (1, 20, len(known) - 2, len(known) - 1, len(known)):
            assert table.closest(target, n, exclude=[asker.peer_id]) == kept[:n]
