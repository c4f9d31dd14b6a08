"""k-buckets over the 256-bit XOR key space (Eq. 2; Kademlia paper §2.2). Pure data, no I/O."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from sedma.errors import ConfigError
from sedma.net.types import PeerInfo

KEY_BITS = 256
K = 20  # bucket size k, Kademlia paper §2.2


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


class RoutingTable:
    """256 least-recently-seen-ordered buckets of at most k peers each."""

    def __init__(self, self_key: bytes, *, k: int = K) -> None:
        if k < 1:
            raise ConfigError(f"bucket size k must be >= 1, got {k}")
        self.self_key = self_key
        self._self_int = int.from_bytes(self_key, "big")
        self.k = k
        self.buckets: list[OrderedDict[bytes, PeerInfo]] = [OrderedDict() for _ in range(KEY_BITS)]
        self._ints: dict[bytes, int] = {}  # peer id -> DHT key as an int, so sorting hashes nothing
        self._all: dict[bytes, PeerInfo] = {}  # every peer, flat: closest() skips the 256 buckets
        # closest() ranks by the top 64 bits of the distance as one numpy array (rebuilt when
        # membership changes); exact whenever those bits differ between all peers.
        self._ranked: tuple[list[bytes], np.ndarray[tuple[int], np.dtype[np.uint64]], bool] | None = None

    def add(self, peer: PeerInfo) -> tuple[bool, PeerInfo | None]:
        """Insert or refresh ``peer``; returns (is new, least-recently-seen peer to ping if full)."""
        index = (self._self_int ^ peer.dht_int).bit_length() - 1
        if index < 0:
            return False, None
        bucket = self.buckets[index]
        if peer.peer_id in bucket:
            bucket[peer.peer_id] = self._all[peer.peer_id] = peer
            bucket.move_to_end(peer.peer_id)
            return False, None
        if len(bucket) < self.k:
            bucket[peer.peer_id] = self._all[peer.peer_id] = peer
            self._ints[peer.peer_id] = peer.dht_int
            self._ranked = None
            return True, None
        return False, next(iter(bucket.values()))

    def remove(self, peer: PeerInfo) -> bool:
        """Drop ``peer`` (it failed to answer)."""
        index = (self._self_int ^ peer.dht_int).bit_length() - 1
        if self._ints.pop(peer.peer_id, None) is not None:
            self._ranked = None  # only a real change of membership re-ranks (dead peers repeat)
        self._all.pop(peer.peer_id, None)
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
        skip = set(exclude)
        ids, top, exact = self._ranked or self._rank()
        if not exact:
            return self._closest_exact(key, n, skip)
        # Distinct top 64 bits order the full 256-bit distances the same way.
        order = np.argsort(top ^ np.uint64(int.from_bytes(key[:8], "big")))
        known = self._all
        out: list[PeerInfo] = []
        for i in order.tolist():
            if ids[i] not in skip:
                out.append(known[ids[i]])
                if len(out) == n:
                    break
        return out

    def _rank(self) -> tuple[list[bytes], np.ndarray[tuple[int], np.dtype[np.uint64]], bool]:
        ids = list(self._ints)
        top = np.array([v >> (KEY_BITS - 64) for v in self._ints.values()], dtype=np.uint64)
        self._ranked = (ids, top, len(np.unique(top)) == len(top))
        return self._ranked

    def _closest_exact(self, key: bytes, n: int, skip: set[bytes]) -> list[PeerInfo]:
        """Full-width ranking, for tables where two peers share their top 64 key bits."""
        target = int.from_bytes(key, "big")
        ints, known = self._ints, self._all
        # (distance, id) pairs sort on the int alone: distinct keys have distinct distances.
        ranked = sorted(zip([v ^ target for v in ints.values()], ints, strict=True))
        out: list[PeerInfo] = []
        for _, pid in ranked:
            if pid not in skip:
                out.append(known[pid])
                if len(out) == n:
                    break
        return out

    def refresh_indices(self) -> list[int]:
        """Buckets a join should refresh: every one farther than our nearest neighbour."""
        occupied = [i for i, b in enumerate(self.buckets) if b]
        if not occupied:
            return []
        return list(range(occupied[0] + 1, KEY_BITS))
