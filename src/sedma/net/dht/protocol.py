"""RPC handlers of the DHT: PING, FIND_NODE, FIND_VALUE, STORE, ADD_PROVIDER, GET_PROVIDERS.

Handlers are pure over the routing table and storage they are given; every answer that names
peers returns the k known peers closest to the asked key, so look-ups can converge.

Peers travel compactly (wire version 2): ``peers`` is one bytes value of fixed 40-byte entries
(peer id 34 ‖ IPv4 4 ‖ port u16) for the usual peer with a dotted IPv4 address and no relay, so
an answer is one msgpack string, not 60 objects; ``peers_x`` lists the others as
``[id, host, port(, relay)]``. Both sides memoise entries: the same peers recur in every answer.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sedma.net.dht.routing import Ranking, RoutingTable
from sedma.net.dht.storage import DhtStorage, ProviderRecord, SignedRecord
from sedma.net.rpc import Caller, RpcEndpoint, load_to_wire
from sedma.net.types import IntegrityError, PeerInfo, PeerLoad, relay_from_wire, relay_to_wire

PING = "dht.ping"
FIND_NODE = "dht.find_node"
FIND_VALUE = "dht.find_value"
STORE = "dht.store"
ADD_PROVIDER = "dht.add_provider"
GET_PROVIDERS = "dht.get_providers"
MAX_BATCH = 256  # records or provider records accepted in one STORE / ADD_PROVIDER
ENTRY = 40  # bytes per compact peer: id 34 | IPv4 4 | port u16 (big-endian)
MAX_PEERS = 256  # peers accepted from one answer (we send k = 20); more and the list is ignored
_ID_PREFIX = b"\x12\x20"  # sha2-256 multihash: every peer id starts with it
_MEMO_MAX = 1 << 16  # bounded memos: entries come from the network
_LISTS_MAX = 1024
_ROW = np.dtype(f"V{ENTRY}")  # one compact entry as one opaque item: 1-D gathers are cheapest


def peer_to_wire(peer: PeerInfo) -> list[Any]:
    """``[id, host, port]``, plus ``[relay id, host, port]`` for a peer reached through a relay."""
    if peer.relay is None:
        return [peer.peer_id, peer.host, peer.port]
    return [peer.peer_id, peer.host, peer.port, relay_to_wire(peer.relay)]


def peer_from_wire(raw: Any) -> PeerInfo | None:
    """A peer named in an answer, or None when malformed (ignored, never trusted)."""
    if not (isinstance(raw, list) and len(raw) in (3, 4)):
        return None
    peer_id, host, port = raw[:3]
    if not (isinstance(peer_id, bytes) and isinstance(host, str) and isinstance(port, int)):
        return None
    if len(peer_id) != 34 or not 0 < port < 65536:
        return None
    relay = relay_from_wire(raw[3]) if len(raw) == 4 else None
    if len(raw) == 4 and relay is None:
        return None  # a relay entry that does not parse: the whole peer is suspect
    return PeerInfo(peer_id, host, port, relay)


def peer_entry(peer: PeerInfo) -> bytes | None:
    """The compact 40-byte entry of ``peer``, or None when it needs the general form."""
    if peer.relay is not None or len(peer.peer_id) != 34 or not peer.peer_id.startswith(_ID_PREFIX):
        return None
    try:
        addr = ipaddress.IPv4Address(peer.host)
    except ValueError:
        return None
    if str(addr) != peer.host or not 0 < peer.port < 65536:
        return None  # only canonical dotted quads: the entry must decode to the same PeerInfo
    return peer.peer_id + addr.packed + peer.port.to_bytes(2, "big")


def entry_to_peer(entry: bytes) -> PeerInfo | None:
    """The peer a 40-byte entry names, or None when malformed (ignored, never trusted)."""
    if len(entry) != ENTRY or not entry.startswith(_ID_PREFIX):
        return None
    port = int.from_bytes(entry[38:40], "big")
    return PeerInfo(entry[:34], socket.inet_ntoa(entry[34:38]), port) if port else None


class PeerCodec:
    """Encodes and decodes answers' peer lists, memoising the entries of peers seen before."""

    def __init__(self) -> None:
        self._out: dict[bytes, tuple[PeerInfo, bytes | None]] = {}  # peer id -> (peer, entry)
        self._in: dict[bytes, PeerInfo] = {}  # entry -> peer
        self._lists: dict[bytes, list[PeerInfo]] = {}  # whole entry list -> peers
        # The entries of one routing-table ranking as rows (None: some peer needs the general
        # form), so an answer is one fancy-indexing copy, not a loop over k peers.
        self._rows: tuple[Ranking | None, np.ndarray[Any, np.dtype[np.void]] | None] = (None, None)

    def encode(self, peers: list[PeerInfo]) -> dict[str, Any]:
        """``{"peers": entries, "peers_x": [general form, …]}`` (``peers_x`` only when needed)."""
        memo, entries, extra = self._out, [], []
        for peer in peers:
            got = memo.get(peer.peer_id)
            if got is None or got[0] is not peer:
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                got = memo[peer.peer_id] = (peer, peer_entry(peer))
            if got[1] is None:
                extra.append(peer_to_wire(peer))
            else:
                entries.append(got[1])
        body: dict[str, Any] = {"peers": b"".join(entries)}
        if extra:
            body["peers_x"] = extra
        return body

    def encode_ranked(self, ranking: Ranking, order: np.ndarray[Any, np.dtype[np.intp]]) -> dict[str, Any]:
        """:meth:`encode` of the peers at positions ``order`` of ``ranking``."""
        held, rows = self._rows
        if held is not ranking:
            entries = [peer_entry(p) for p in ranking.peers]
            rows = None
            if all(e is not None for e in entries):
                flat = b"".join(e for e in entries if e is not None)
                rows = np.frombuffer(flat, dtype=_ROW)
            self._rows = ranking, rows
        if rows is None:
            return self.encode([ranking.peers[i] for i in order.tolist()])
        return {"peers": rows[order].tobytes()}

    def decode(self, body: dict[str, Any]) -> list[PeerInfo]:
        """The peers an answer names (do not modify the list: it may be shared); a malformed
        list is ignored whole, a malformed entry alone."""
        blob = body.get("peers")
        # Sizes are checked before any entry is sliced out of the blob.
        out: list[PeerInfo] = []
        if isinstance(blob, bytes) and len(blob) % ENTRY == 0 and len(blob) <= ENTRY * MAX_PEERS:
            out = self._entries(blob)
        extra = body.get("peers_x")
        if isinstance(extra, list) and len(extra) <= MAX_PEERS:
            out = [*out, *(p for p in map(peer_from_wire, extra) if p is not None)]
        return out

    def _entries(self, blob: bytes) -> list[PeerInfo]:
        # Peers with near-complete tables give byte-identical lists for a key: decoded once.
        peers = self._lists.get(blob)
        if peers is not None:
            return peers
        memo, size = self._in, len(blob)
        try:  # the usual answer names only peers seen before: one pass of dict look-ups
            peers = [memo[blob[at : at + ENTRY]] for at in range(0, size, ENTRY)]
        except KeyError:
            got = [
                memo.get(e) or self._parse(e) for e in (blob[at : at + ENTRY] for at in range(0, size, ENTRY))
            ]
            peers = [p for p in got if p is not None]
        if len(self._lists) >= _LISTS_MAX:
            self._lists.clear()
        self._lists[blob] = peers
        return peers

    def _parse(self, entry: bytes) -> PeerInfo | None:
        peer = entry_to_peer(entry)
        if peer is not None:
            if len(self._in) >= _MEMO_MAX:
                self._in.clear()
            self._in[entry] = peer
        return peer


def _key(body: dict[str, Any]) -> bytes:
    key = body.get("key")
    if not (isinstance(key, bytes) and len(key) == 32):
        raise ValueError("field 'key' must be 32 bytes")
    return key


def _batch(body: dict[str, Any], field: str) -> list[Any]:
    items = body.get(field)
    if not isinstance(items, list) or len(items) > MAX_BATCH:
        raise ValueError(f"field {field!r} must be a list of at most {MAX_BATCH} items")
    return items


class DhtHandlers:
    """Answers DHT requests from the routing table and storage."""

    def __init__(
        self,
        routing: RoutingTable,
        storage: DhtStorage,
        *,
        load_fn: Callable[[], PeerLoad | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.routing, self.storage = routing, storage
        self.load_fn, self.clock = load_fn, clock
        self.codec = PeerCodec()

    def register(self, endpoint: RpcEndpoint) -> None:
        # Every handler is a pure look-up or insert: answered inline, without a task.
        endpoint.register_sync(PING, self.ping)
        endpoint.register_sync(FIND_NODE, self.find_node)
        endpoint.register_sync(FIND_VALUE, self.find_value)
        endpoint.register_sync(STORE, self.store)
        endpoint.register_sync(ADD_PROVIDER, self.add_provider)
        endpoint.register_sync(GET_PROVIDERS, self.get_providers)

    def _closer(self, key: bytes, caller: Caller) -> dict[str, Any]:
        ranking, order = self.routing.nearest(key, self.routing.k, exclude=(caller.peer_id,))
        return self.codec.encode_ranked(ranking, order)

    def ping(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"load": load_to_wire(self.load_fn() if self.load_fn else None)}

    def find_node(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return self._closer(_key(body), caller)

    def find_value(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        key = _key(body)
        rec = self.storage.get_record(key, self.clock())
        return {**self._closer(key, caller), "record": rec.to_wire() if rec else None}

    def get_providers(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        key = _key(body)
        provs = self.storage.get_providers(key, self.clock())
        return {**self._closer(key, caller), "providers": [p.to_wire() for p in provs]}

    def store(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        now, kept = self.clock(), 0
        for raw in _batch(body, "records"):
            try:
                kept += self.storage.put_record(SignedRecord.from_wire(raw), now)
            except IntegrityError:
                continue  # a forged record is dropped, the rest of the batch still counts
        return {"stored": kept}

    def add_provider(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        now, kept = self.clock(), 0
        for raw in _batch(body, "providers"):
            try:
                kept += self.storage.add_provider(ProviderRecord.from_wire(raw), now)
            except IntegrityError:
                continue
        return {"stored": kept}
