"""RPC handlers of the DHT: PING, FIND_NODE, FIND_VALUE, STORE, ADD_PROVIDER, GET_PROVIDERS.

Handlers are pure over the routing table and storage they are given; every answer that names
peers returns the k known peers closest to the asked key, so look-ups can converge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sedma.net.dht.routing import RoutingTable
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

    def register(self, endpoint: RpcEndpoint) -> None:
        # Every handler is a pure look-up or insert: answered inline, without a task.
        endpoint.register_sync(PING, self.ping)
        endpoint.register_sync(FIND_NODE, self.find_node)
        endpoint.register_sync(FIND_VALUE, self.find_value)
        endpoint.register_sync(STORE, self.store)
        endpoint.register_sync(ADD_PROVIDER, self.add_provider)
        endpoint.register_sync(GET_PROVIDERS, self.get_providers)

    def _closer(self, key: bytes, caller: Caller) -> list[list[Any]]:
        peers = self.routing.closest(key, self.routing.k, exclude=(caller.peer_id,))
        return [peer_to_wire(p) for p in peers]

    def ping(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"load": load_to_wire(self.load_fn() if self.load_fn else None)}

    def find_node(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"peers": self._closer(_key(body), caller)}

    def find_value(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        key = _key(body)
        rec = self.storage.get_record(key, self.clock())
        return {"peers": self._closer(key, caller), "record": rec.to_wire() if rec else None}

    def get_providers(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        key = _key(body)
        provs = self.storage.get_providers(key, self.clock())
        return {"peers": self._closer(key, caller), "providers": [p.to_wire() for p in provs]}

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
