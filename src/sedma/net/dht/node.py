"""Kademlia orchestration: join, look-ups, provide/find providers, records, maintenance.

Ties the pure routing table and look-up to the RPC endpoint. A peer that fails an RPC is
dropped from the table and ignored for ``dead_for`` seconds, so it costs one short timeout at
most once. Records and provider records held here are handed to peers that join later when
they land among the k closest, and our own are republished every ``republish_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sedma.errors import ConfigError, require_positive
from sedma.net.dht import protocol as proto
from sedma.net.dht.protocol import DhtHandlers, PeerCodec
from sedma.net.dht.routing import K, RoutingTable, random_key_in_bucket
from sedma.net.dht.storage import DhtStorage, ProviderRecord, SignedRecord, record_key
from sedma.net.dht.traverse import ALPHA, Answer, LookupResult, Respond, SendQuery, iterative_lookup
from sedma.net.rpc import Caller, RemoteError, RpcConnection, RpcEndpoint, load_from_wire
from sedma.net.types import IntegrityError, PeerError, PeerInfo, PeerLoad

log = logging.getLogger("sedma.net.dht")


@dataclass(frozen=True)
class DhtConfig:
    """Kademlia parameters (k, α from the paper §2.2–2.3) and our timers."""

    k: int = K
    alpha: int = ALPHA
    rpc_timeout: float = 0.5  # short: a dead peer must not cost seconds per look-up
    record_ttl: float = 3600.0
    provider_ttl: float = 3600.0
    republish_interval: float = 1800.0
    refresh_interval: float = 600.0
    dead_for: float = 30.0
    # A full bucket pings its least-recently-seen peer before dropping a newcomer only when
    # that peer has not answered us for this long (Kademlia §4.1: no probes of live contacts).
    ping_after: float = 60.0

    def validate(self) -> DhtConfig:
        if self.k < 1 or self.alpha < 1:
            raise ConfigError(f"DhtConfig k and alpha must be >= 1, got k={self.k} alpha={self.alpha}")
        require_positive(
            self, ("rpc_timeout", "record_ttl", "provider_ttl", "republish_interval", "ping_after")
        )
        return self


class DhtNode:
    """One peer's view of the DHT."""

    def __init__(
        self,
        endpoint: RpcEndpoint,
        *,
        config: DhtConfig | None = None,
        load_fn: Callable[[], PeerLoad | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.config = (config or DhtConfig()).validate()
        self.clock = clock
        self.self_key = PeerInfo(endpoint.identity.peer_id, "", 0).dht_key
        self.routing = RoutingTable(self.self_key, k=self.config.k)
        self.storage = DhtStorage()
        self.loads: dict[bytes, PeerLoad] = {}
        self.dead: dict[bytes, float] = {}
        self._heard: dict[bytes, float] = {}  # peer id -> when it last answered us (clock)
        self._provided: set[bytes] = set()
        self._published: dict[bytes, SignedRecord] = {}
        self._codec = PeerCodec()  # answers name the same peers again and again: entries memoised
        self._tasks: set[asyncio.Task[Any]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        DhtHandlers(self.routing, self.storage, load_fn=load_fn, clock=clock).register(endpoint)
        endpoint.on_peer.append(self._on_peer)

    # -- membership --------------------------------------------------------------------------
    def _on_peer(self, caller: Caller, rpc: RpcConnection) -> None:
        if caller.load is not None:
            self.loads[caller.peer_id] = caller.load
        if caller.info is not None:
            self.dead.pop(caller.peer_id, None)
            self._note_heard(caller.peer_id)
            self.add_peer(caller.info)

    def add_peer(self, peer: PeerInfo) -> None:
        """Note a live peer; a full bucket pings its least-recently-seen member if that one is stale."""
        if peer.peer_id == self.endpoint.identity.peer_id:
            return
        is_new, oldest = self.routing.add(peer)
        if is_new:
            self._spawn(self._hand_off(peer))
        elif oldest is not None and self._stale(oldest):
            self._spawn(self._evict_if_dead(oldest, peer))

    def _stale(self, peer: PeerInfo) -> bool:
        heard = self._heard.get(peer.peer_id)
        return heard is None or self.clock() - heard > self.config.ping_after

    def _note_heard(self, peer_id: bytes) -> None:
        heard = self._heard
        if len(heard) >= 65536 and peer_id not in heard:
            heard.clear()  # bounded: peer ids come from the network; forgetting only costs a ping
        heard[peer_id] = self.clock()

    def _mark_dead(self, peer: PeerInfo) -> None:
        self.routing.remove(peer)
        self._heard.pop(peer.peer_id, None)
        self.dead[peer.peer_id] = self.clock() + self.config.dead_for

    def _excluded(self) -> list[bytes]:
        now = self.clock()
        for pid in [p for p, until in self.dead.items() if until <= now]:
            del self.dead[pid]
        return [self.endpoint.identity.peer_id, *self.dead]

    async def _evict_if_dead(self, oldest: PeerInfo, newcomer: PeerInfo) -> None:
        if await self.ping(oldest) is None:
            self.routing.remove(oldest)
            self.add_peer(newcomer)
        else:
            self.routing.add(oldest)  # it answered: now the most recently seen (Kademlia §2.2)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- RPC wrappers --------------------------------------------------------------------
    async def _call(self, peer: PeerInfo, method: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await self.endpoint.request(peer, method, body, timeout=self.config.rpc_timeout)
        except RemoteError:
            raise
        except PeerError:
            self._mark_dead(peer)
            raise
        self._note_heard(peer.peer_id)
        return answer

    async def ping(self, peer: PeerInfo) -> PeerLoad | None:
        """PING ``peer``; its advertised load, or None when it did not answer."""
        try:
            body = await self._call(peer, proto.PING, {})
        except PeerError:
            return None
        load = load_from_wire(body.get("load"))
        if load is not None:
            self.loads[peer.peer_id] = load
        return load

    def _query(self, method: str, key: bytes, field: str | None) -> SendQuery:
        """The look-up's RPC in callback form: each answer reaches the look-up from its frame."""
        body, endpoint, timeout = {"key": key}, self.endpoint, self.config.rpc_timeout

        def send(peer: PeerInfo, respond: Respond) -> None:
            def reply(found: dict[str, Any] | None, exc: BaseException | None) -> None:
                self._answered(peer, field, found, exc, respond)

            endpoint.request_then(peer, method, body, reply, timeout=timeout)

        return send

    def _answered(
        self,
        peer: PeerInfo,
        field: str | None,
        found: dict[str, Any] | None,
        exc: BaseException | None,
        respond: Respond,
    ) -> None:
        if isinstance(exc, PeerError) and not isinstance(exc, RemoteError):
            self._mark_dead(peer)  # as _call does: a dead peer costs one timeout at most
        if exc is not None or found is None:
            respond(None, exc or PeerError("empty answer"))
            return
        self._note_heard(peer.peer_id)
        values = found.get(field) if field else None
        if field == "providers":
            values = values if isinstance(values, list) else []
        else:
            values = [values] if field == "record" and values is not None else []
        respond(Answer(self._codec.decode(found), values), None)

    async def _lookup(self, method: str, key: bytes, field: str | None) -> LookupResult:
        exclude = self._excluded()
        seeds = self.routing.closest(key, self.config.k, exclude=exclude)
        result = await iterative_lookup(
            key,
            seeds,
            send=self._query(method, key, field),
            k=self.config.k,
            alpha=self.config.alpha,
            exclude=exclude,
        )
        for peer in result.closest:
            self.add_peer(peer)
        return result

    # -- public operations ---------------------------------------------------------------
    async def find_node(self, key: bytes) -> LookupResult:
        """The k live peers closest to ``key`` (FIND_NODE, iterative)."""
        return await self._lookup(proto.FIND_NODE, key, None)

    async def bootstrap(self, addrs: list[tuple[str, int]]) -> int:
        """Join through ``addrs``: FIND_NODE(self), then refresh farther buckets; returns peers known."""
        answered = await asyncio.gather(*(self._ping_addr(h, p) for h, p in addrs))
        if addrs and not any(answered):
            raise PeerError(f"no bootstrap peer answered: {', '.join(f'{h}:{p}' for h, p in addrs)}")
        await self.find_node(self.self_key)
        await self.refresh(self.routing.refresh_indices())
        return len(self.routing)

    async def _ping_addr(self, host: str, port: int) -> bool:
        try:
            await self.endpoint.request(PeerInfo(b"", host, port), proto.PING, {}, timeout=2.0)
        except PeerError as exc:
            log.warning("bootstrap peer %s:%d did not answer: %s", host, port, exc)
            return False
        return True

    async def refresh(self, indices: list[int]) -> None:
        """Look up a random key in each given bucket (Kademlia bucket refresh)."""
        keys = [random_key_in_bucket(self.self_key, i) for i in indices]
        # Sequential on purpose: each look-up seeds the next with the peers it found.
        for key in keys:
            await self.find_node(key)

    async def provide(self, key: bytes) -> int:
        """ADD_PROVIDER for ``key`` at the k closest peers; returns how many stored it."""
        self._provided.add(key)
        host, port = self.endpoint.advertised or ("127.0.0.1", 0)
        rec = ProviderRecord.create(
            self.endpoint.identity,
            key,
            host,
            port,
            expires=self.clock() + self.config.provider_ttl,
            relay=self.endpoint.relay,
        )
        self.storage.add_provider(rec, self.clock())
        closest = (await self.find_node(key)).closest
        return await self._send_all(closest, proto.ADD_PROVIDER, {"providers": [rec.to_wire()]})

    async def _send_all(self, peers: list[PeerInfo], method: str, body: dict[str, Any]) -> int:
        results = await asyncio.gather(*(self._call(p, method, body) for p in peers), return_exceptions=True)
        return sum(isinstance(r, dict) and int(r.get("stored", 0)) > 0 for r in results)

    async def get_providers(self, key: bytes) -> tuple[list[ProviderRecord], LookupResult]:
        """Every live provider of ``key`` known to any of its k closest peers."""
        result = await self._lookup(proto.GET_PROVIDERS, key, "providers")
        found = {p.public: p for p in self.storage.get_providers(key, self.clock())}
        for raw in _distinct(result.values):
            with contextlib.suppress(IntegrityError):
                rec = ProviderRecord.from_wire(raw)
                if rec.key == key and rec.expires > self.clock():
                    found.setdefault(rec.public, rec)
        return list(found.values()), result

    async def put_value(self, name: bytes, value: bytes, *, ttl: float | None = None) -> bytes:
        """STORE a signed record ``name`` -> ``value``; returns its key."""
        ident = self.endpoint.identity
        key = record_key(ident.public, name)
        held = self._published.get(key)
        seq = held.seq + 1 if held else int(self.clock() * 1000)
        expires = self.clock() + (ttl or self.config.record_ttl)
        rec = SignedRecord.create(ident, name, value, seq=seq, expires=expires)
        self._published[key] = rec
        self.storage.put_record(rec, self.clock())
        closest = (await self.find_node(key)).closest
        await self._send_all(closest, proto.STORE, {"records": [rec.to_wire()]})
        return key

    async def get_value(self, key: bytes) -> bytes | None:
        """The newest valid record under ``key`` (FIND_VALUE, aggregated over the k closest)."""
        best = self.storage.get_record(key, self.clock())
        result = await self._lookup(proto.FIND_VALUE, key, "record")
        for raw in _distinct(result.values):
            with contextlib.suppress(IntegrityError):
                rec = SignedRecord.from_wire(raw)
                if rec.key == key and rec.expires > self.clock() and (best is None or rec.seq > best.seq):
                    best = rec
        return best.value if best else None

    # -- maintenance ---------------------------------------------------------------------
    async def _hand_off(self, peer: PeerInfo) -> None:
        """Give a newly met peer the records it is now among the k closest for."""
        now, k = self.clock(), self.config.k
        recs = [
            r.to_wire()
            for key, r in list(self.storage.records.items())
            if r.expires > now and peer in self.routing.closest(key, k)
        ]
        provs = [
            p.to_wire()
            for key, group in list(self.storage.providers.items())
            if peer in self.routing.closest(key, k)
            for p in group.values()
            if p.expires > now
        ]
        with contextlib.suppress(PeerError):
            for i in range(0, len(recs), proto.MAX_BATCH):
                await self._call(peer, proto.STORE, {"records": recs[i : i + proto.MAX_BATCH]})
            for i in range(0, len(provs), proto.MAX_BATCH):
                await self._call(peer, proto.ADD_PROVIDER, {"providers": provs[i : i + proto.MAX_BATCH]})

    async def republish(self) -> None:
        """Re-announce our own provider keys and records with fresh expiries."""
        for key in list(self._provided):
            await self.provide(key)
        for rec in list(self._published.values()):
            await self.put_value(rec.name, rec.value)

    def start(self) -> None:
        """Run bucket refresh, republish and expiry in the background."""
        if self._maintenance is None:
            self._maintenance = asyncio.ensure_future(self._maintain())

    async def _maintain(self) -> None:
        last_publish = self.clock()
        while True:
            await asyncio.sleep(min(self.config.refresh_interval, self.config.republish_interval))
            try:
                self.storage.expire(self.clock())
                await self.refresh(self.routing.refresh_indices()[-4:])
                if self.clock() - last_publish >= self.config.republish_interval:
                    last_publish = self.clock()
                    await self.republish()
            except PeerError as exc:
                log.info("DHT maintenance round incomplete: %s", exc)

    async def stop(self) -> None:
        tasks = [t for t in [self._maintenance, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._maintenance = None


def _distinct(raws: list[Any]) -> list[Any]:
    """Each wire record once (the k closest mostly return the same ones): parsed and checked once.

    Only byte-identical records are merged, so a forged copy cannot hide the genuine one.
    """
    seen: set[tuple[Any, ...]] = set()
    out: list[Any] = []
    for raw in raws:
        try:
            flat = tuple(raw)
            if flat in seen:
                continue
            seen.add(flat)
        except TypeError:  # not a list, or one holding a list (a relay): kept, parsed as is
            pass
        out.append(raw)
    return out
