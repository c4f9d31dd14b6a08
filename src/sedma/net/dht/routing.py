"""k-buckets over the 256-bit XOR key space (Eq. 2; Kademlia paper §2.2). Pure data, no I/O."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sedma.errors import ConfigError
from sedma.net.types import PeerInfo

KEY_BITS = 256
K = 20  # bucket size k, Kademlia paper §2.2
_FAR = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


def distance(a: bytes, b: bytes) -> int:
    """XOR distance d(k1, k2) = k1 ⊕ k2 as an integer (Eq. 2)."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(self_key: bytes, key: bytes) -> int:
    """Index of the bucket holding ``key``: position of the highest differing bit (-1: same)."""
    return distance(self_key, key).bit_length() - 1


def random_key_in_bucket(self_key: bytes, index: int) -> bytes:
    """A random key whose highest bit differing from ``self_key`` is ``index`` (bucket refresh)."""
    noise = int.from_bytes(os.urandom(KEY_BITS // 8), "big") & ((1 << index) - 1)
    key = int.from_bytes(self_key, "big") ^ ((1 << index) | noise)
    return key.to_bytes(KEY_BITS // 8, "big")


@dataclass(frozen=True, slots=True)
class Ranking:
    """Every known peer in one fixed order, rebuilt when membership or an address changes.

    ``top`` holds the top 64 bits of each DHT key: when they differ between all peers
    (``exact``) they order full 256-bit distances the same way, so one numpy argsort ranks.
    """

    peers: list[PeerInfo]
    top: np.ndarray[tuple[int], np.dtype[np.uint64]]
    exact: bool
    index: dict[bytes, int]  # peer id -> position
    # Scratch for one ranking at a time (the event loop's thread): distances and the key's top
    # 64 bits, so ranking allocates nothing but the argsort (small numpy calls cost per call).
    dist: np.ndarray[tuple[int], np.dtype[np.uint64]]
    key_top: np.ndarray[tuple[int], np.dtype[np.uint64]]


class RoutingTable:
    """256 least-recently-seen-ordered buckets of at most k peers each."""

    def __init__(self, self_key: bytes, *, k: int = K) -> None:
        if k < 1:
            raise ConfigError(f"bucket size k must be >= 1, got {k}")
        self.self_key = self_key
        self._self_int = int.from_bytes(self_key, "big")
        self.k = k
        self.buckets: list[OrderedDict[bytes, PeerInfo]] = [OrderedDict() for _ in range(KEY_BITS)]
        self._all: dict[bytes, PeerInfo] = {}  # every peer, flat: closest() skips the 256 buckets
        self._ranked: Ranking | None = None

    def add(self, peer: PeerInfo) -> tuple[bool, PeerInfo | None]:
        """Insert or refresh ``peer``; returns (is new, least-recently-seen peer to ping if full)."""
        index = (self._self_int ^ peer.dht_int).bit_length() - 1
        if index < 0:
            return False, None
        bucket = self.buckets[index]
        if peer.peer_id in bucket:
            old = self._all[peer.peer_id]
            if old is not peer and old != peer:
                self._ranked = None  # a new address: answers must name it
            bucket[peer.peer_id] = self._all[peer.peer_id] = peer
            bucket.move_to_end(peer.peer_id)
            return False, None
        if len(bucket) < self.k:
            bucket[peer.peer_id] = self._all[peer.peer_id] = peer
            self._ranked = None
            return True, None
        return False, next(iter(bucket.values()))

    def remove(self, peer: PeerInfo) -> bool:
        """Drop ``peer`` (it failed to answer)."""
        index = (self._self_int ^ peer.dht_int).bit_length() - 1
        if self._all.pop(peer.peer_id, None) is not None:
            self._ranked = None  # only a real change of membership re-ranks (dead peers repeat)
        return index >= 0 and self.buckets[index].pop(peer.peer_id, None) is not None

    def __contains__(self, peer: PeerInfo) -> bool:
        index = (self._self_int ^ peer.dht_int).bit_length() - 1
        return index >= 0 and peer.peer_id in self.buckets[index]

    def __len__(self) -> int:
        return len(self._all)

    def get(self, peer_id: bytes) -> PeerInfo | None:
        """The entry for ``peer_id``, if known."""
        return self._all.get(peer_id)

    def peers(self) -> list[PeerInfo]:
        return [p for b in self.buckets for p in b.values()]

    def closest(self, key: bytes, n: int, *, exclude: Iterable[bytes] = ()) -> list[PeerInfo]:
        """The ``n`` known peers nearest to ``key`` by XOR distance (Eq. 2)."""
        ranking, order = self.nearest(key, n, exclude=exclude)
        peers = ranking.peers
        return [peers[i] for i in order.tolist()]

    def nearest(
        self, key: bytes, n: int, *, exclude: Iterable[bytes] = ()
    ) -> tuple[Ranking, np.ndarray[tuple[int], np.dtype[np.intp]]]:
        """The ranking and the positions in it of the ``n`` peers nearest to ``key``, nearest first."""
        ranking = self._ranked or self._rank()
        skip = [i for i in map(ranking.index.get, exclude) if i is not None]
        if ranking.exact:
            dist = ranking.dist
            ranking.key_top[0] = int.from_bytes(key[:8], "big")
            np.bitwise_xor(ranking.top, ranking.key_top, out=dist)
            if len(skip) == 1 and n < len(dist) - 1:
                # The usual answer leaves out only the asker: rank it last instead of masking.
                # Tops are distinct, so at most one kept peer ties it at _FAR, and both sort
                # into the last two places, which n < N − 1 never reaches.
                dist[skip[0]] = _FAR
                return ranking, dist.argsort()[:n]
            order = dist.argsort()
        else:  # two peers share their top 64 bits: rank on full-width distances
            target = int.from_bytes(key, "big")
            full = [p.dht_int ^ target for p in ranking.peers]
            order = np.array(sorted(range(len(full)), key=full.__getitem__), dtype=np.intp)
        if skip:
            order = order[: n + len(skip)]
            order = order[order != skip[0]] if len(skip) == 1 else order[~np.isin(order, skip)]
        return ranking, order[:n]

    def _rank(self) -> Ranking:
        peers = list(self._all.values())
        top = np.array([p.dht_int >> (KEY_BITS - 64) for p in peers], dtype=np.uint64)
        index = {p.peer_id: i for i, p in enumerate(peers)}
        exact = len(np.unique(top)) == len(top)
        self._ranked = Ranking(peers, top, exact, index, np.empty_like(top), np.zeros(1, dtype=np.uint64))
        return self._ranked

    def refresh_indices(self) -> list[int]:
        """Buckets a join should refresh: every one farther than our nearest neighbour."""
        occupied = [i for i, b in enumerate(self.buckets) if b]
        if not occupied:
            return []
        return list(range(occupied[0] + 1, KEY_BITS))
