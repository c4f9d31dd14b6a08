"""The layer's one library entry point: :class:`Node`, a peer of the tensor network.

A node owns an identity, an RPC endpoint on a pluggable transport, a Kademlia DHT, an on-disk
block store, the BitSwap-like exchange, the Eq. 10 tensor cache and the Eq. 7–9 selection
state. ``put_tensor`` stores blocks, announces the manifest and block CIDs as provider records
and places replicas on peers ranked by Eq. 7; ``get_tensor`` finds every provider, ranks them
with the configured strategy (``adaptive``, ``dht-only`` or ``random``: the paper's
ablations), fetches verified blocks in parallel and assembles the tensor. Peer profiles go to
LTM and loads/RTTs to STM through the shared :class:`~sedma.memory.DualMemory`. Behind a NAT
a node notices at start that its bootstrap peers cannot dial it back, reserves a slot on a
relay they run and advertises it (the transport is :class:`~sedma.net.holepunch.NatTransport`,
which also dials such peers through their relay, with a hole-punching upgrade).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sedma.errors import ConfigError, InputError
from sedma.net import load as peerload
from sedma.net.cache import CacheConfig, TensorCache
from sedma.net.dht.node import DhtConfig, DhtNode
from sedma.net.dht.routing import distance
from sedma.net.exchange import METHODS, BlockExchange, BlockSink, ExchangeConfig, ProviderOutcome
from sedma.net.holepunch import NatTransport, attach_behind_nat, register_nat_api
from sedma.net.identity import Identity, peer_id_text
from sedma.net.replication import ReplicationConfig, replicate
from sedma.net.rpc import Caller, RpcConfig, RpcEndpoint
from sedma.net.selection import STRATEGIES, SelectionConfig, feature_matrix, scores, select
from sedma.net.store import BlockStore, StoreConfig, process_hot_cache
from sedma.net.tensor import Manifest, TensorAssembly, chunk_tensor
from sedma.net.transport import Transport
from sedma.net.types import Blob, PeerError, PeerInfo, PeerStats
from sedma.net.weights import WeightConfig, WeightLearner, make_decision

log = logging.getLogger("sedma.net.node")


def parse_addr(text: str, *, field: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); :class:`InputError` naming the field otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InputError(f"{field}: {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def dht_key(cid: str) -> bytes:
    """Position of a CID in the DHT key space."""
    return hashlib.sha256(cid.encode()).digest()


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to start; keyword-only in spirit, validated by validate()."""

    host: str = "127.0.0.1"
    port: int = 0
    bootstrap: tuple[str, ...] = ()
    strategy: str = "adaptive"
    topk: int = 3  # providers fetched from in parallel (TOPK of Eq. 7)
    home: Path | None = None  # identity and blocks; $SEDMA_HOME when None
    ephemeral: bool = False  # fresh identity and a private block directory (swarms, tests)
    relay: bool = False  # also serve as a circuit relay for peers behind NATs
    relay_port: int = 0
    # Ask the bootstrap peers to dial us back; when none can, reserve a slot on a relay they run.
    autonat: bool = True
    use_memory: bool = True
    store_budget_bytes: int = 1 << 30
    cache_budget_bytes: int = 256 << 20
    dht: DhtConfig = field(default_factory=DhtConfig)
    rpc: RpcConfig = field(default_factory=RpcConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)

    def validate(self) -> NodeConfig:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if not 0 <= self.port < 65536 or not 0 <= self.relay_port < 65536:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.topk < 1:
            raise ConfigError(f"topk must be >= 1, got {self.topk}")
        for addr in self.bootstrap:
            parse_addr(addr, field="bootstrap")
        self.dht.validate()
        self.rpc.validate()
        self.exchange.validate()
        return self


@dataclass(slots=True)
class NodeStats:
    """Counters exported as metrics."""

    puts: int = 0
    gets: int = 0
    get_failures: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    penalties: int = 0
    cache_hits: int = 0


class Node:
    """A peer of the tensor network (start/stop, put/get tensors, peers)."""

    def __init__(
        self,
        config: NodeConfig | None = None,
        *,
        transport: Transport | None = None,
        memory: Any = None,
        identity: Identity | None = None,
    ) -> None:
        self.config = (config or NodeConfig()).validate()
        self.transport = transport or NatTransport()
        self.memory = memory
        self._identity = identity
        self.stats = NodeStats()
        self.learner = WeightLearner(WeightConfig())
        self.cache = TensorCache(CacheConfig(budget_bytes=self.config.cache_budget_bytes))
        self.relay_address: tuple[str, int] | None = None
        self._relay: Any = None
        self._own_memory: Any = None
        self._last_outcomes: list[ProviderOutcome] = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> Node:
        """Open identity, store and memory, listen, join the DHT through the bootstrap peers."""
        home = self._home()
        ident = self._identity or (
            Identity.generate() if self.config.ephemeral else Identity.load_or_create(home / "net")
        )
        self.identity = ident
        blocks = home / "swarm" / ident.text[:20] / "blocks" if self.config.ephemeral else home / "blocks"
        # Memory copies of published blocks share one budget per process (swarm: many nodes).
        store_config = StoreConfig(budget_bytes=self.config.store_budget_bytes)
        self.store = BlockStore(blocks, config=store_config, hot=process_hot_cache())
        if self.memory is None and self.config.use_memory:
            from sedma.memory import DualMemory

            self.memory = self._own_memory = DualMemory.open(home=home)
        self.probe = peerload.LoadProbe()
        self.endpoint = RpcEndpoint(ident, self.transport, config=self.config.rpc, load_fn=self.probe.sample)
        self.dht = DhtNode(self.endpoint, config=self.config.dht, load_fn=self.probe.sample)
        self.endpoint.on_peer.append(self._on_peer)
        self.exchange = BlockExchange(
            self.store,
            request=self.request,
            config=self.config.exchange,
            on_penalty=self._penalty,
            on_outcome=self._outcomes,
            on_stored=self._announce,
        )
        self._register()
        try:
            await self.endpoint.listen(self.config.host, self.config.port)
            await self._start_relay()
            register_nat_api(self.endpoint, relay=self._relay)
            boot = [parse_addr(a, field="bootstrap") for a in self.config.bootstrap]
            await self._attach_behind_nat(boot)
            await self.join(boot)
        except BaseException:
            await self._release()  # a failed start leaves no listener, reservation or relay behind
            raise
        self.dht.start()
        self.endpoint.start_reaper()
        self._started = True
        return self

    def _home(self) -> Path:
        if self.config.home is not None:
            return Path(self.config.home)
        from sedma.net.store import default_root

        return default_root().parent

    async def _start_relay(self) -> None:
        if not self.config.relay:
            return
        from sedma.net.relay import RelayServer

        self._relay = RelayServer(self.identity)
        self.relay_address = await self._relay.start(self.config.host, self.config.relay_port)

    async def _attach_behind_nat(self, boot: list[tuple[str, int]]) -> None:
        """AutoNAT before joining: when no bootstrap peer can dial us, reserve on a relay.

        It runs before the DHT join so that every peer learns our relay with our address: the
        probe connections (made without it) are closed, and the join re-dials with it.
        """
        transport = self.transport
        if not (boot and self.config.autonat and self._relay is None and isinstance(transport, NatTransport)):
            return
        reservation = await attach_behind_nat(
            self.endpoint, transport, [PeerInfo(b"", h, p) for h, p in boot]
        )
        if reservation is None:
            return
        self.endpoint.relay = reservation.relay
        self.endpoint.close_connections()
        relay_id, host, port = reservation.relay
        log.info("behind a NAT: reachable through relay %s at %s:%d", peer_id_text(relay_id)[:16], host, port)

    async def join(self, addrs: list[tuple[str, int]]) -> int:
        """Bootstrap into the DHT (FIND_NODE(self), then bucket refresh); returns peers known."""
        if not addrs:
            return 0
        return await self.dht.bootstrap(addrs)

    async def stop(self) -> None:
        """Leave: stop maintenance, close connections, the relay and memory."""
        if not self._started:
            return
        self._started = False
        await self._release()

    async def _release(self) -> None:
        await self.exchange.flush()  # fetched blocks still on their way to the store
        await self.dht.stop()
        await self.endpoint.close()
        await self.transport.close()
        if self._relay is not None:
            await self._relay.close()
            self._relay = None
        self.cache.flush()
        self.store.release_hot()
        if self._own_memory is not None:
            self._own_memory.close()
            self.memory = self._own_memory = None

    async def __aenter__(self) -> Node:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def info(self) -> PeerInfo:
        host, port = self.endpoint.advertised or (self.config.host, self.config.port)
        return PeerInfo(self.identity.peer_id, host, port, self.endpoint.relay)

    @property
    def addr(self) -> str:
        return self.info.addr

    # -- wiring ----------------------------------------------------------------------------------
    async def request(self, peer: PeerInfo, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """:data:`~sedma.net.types.RequestFn` for the exchange and replication."""
        return await self.endpoint.request(peer, method, body)

    def _register(self) -> None:
        handlers = self.exchange.handlers()
        for method in METHODS:
            self.endpoint.register(method, _by_peer_id(handlers[method]))
        from sedma.net.client import register_client_api

        register_client_api(self)

    def _on_peer(self, caller: Caller, _: Any) -> None:
        if caller.load is not None and self.memory is not None:
            peerload.record_load(self.memory, caller.peer_id, caller.load)

    def _penalty(self, peer: PeerInfo, reason: str) -> None:
        self.stats.penalties += 1
        log.warning("peer %s penalised: %s", peer_id_text(peer.peer_id)[:16], reason)
        peerload.update_profile(self.memory, peer.peer_id, completed=False, seconds=0.0, nbytes=0)

    def _outcomes(self, outcomes: list[ProviderOutcome]) -> None:
        self._last_outcomes = outcomes
        for out in outcomes:
            self.stats.bytes_in += out.nbytes
            if out.blocks or out.failed:
                peerload.update_profile(
                    self.memory,
                    out.peer.peer_id,
                    completed=out.failed is None,
                    seconds=out.seconds,
                    nbytes=out.nbytes,
                )

    async def _announce(self, cids: list[str]) -> None:
        await asyncio.gather(*(self.dht.provide(dht_key(c)) for c in cids))

    # -- tensors ---------------------------------------------------------------------------------
    async def put_tensor(self, arr: np.ndarray[Any, Any], *, replicas: int = 1) -> str:
        """Store, announce and replicate ``arr`` on ``replicas`` other peers; returns its CID."""
        if replicas < 0:
            raise InputError(f"replicas must be >= 0, got {replicas}")
        blocks = chunk_tensor(arr)
        self.store.put_many(blocks.blocks, verify=False, pin=True, hot=True)
        await self.publish(blocks.manifest_cid, replicas=replicas)
        return blocks.manifest_cid

    async def publish(self, cid: str, *, replicas: int = 1) -> list[PeerInfo]:
        """Announce a tensor whose blocks are in our store; place replicas; returns holders."""
        manifest = self._local_manifest(cid)
        cids = [cid, *manifest.blocks]
        self.store.pin(cids)
        await self._announce(cids)
        self.stats.puts += 1
        if replicas == 0:
            return []
        candidates = self._candidates(self.dht.routing.closest(dht_key(cid), self.config.dht.k), cid)
        cfg = ReplicationConfig(replicas=replicas, strategy=self.config.strategy)
        result = await replicate(
            cids,
            source=self.info,
            candidates=candidates,
            request=self.request,
            config=cfg,
            weights=self.learner.weights,
        )
        if len(result.holders) < replicas:
            log.warning("placed %d of %d replicas of %s", len(result.holders), replicas, cid)
        return result.holders

    def _local_manifest(self, cid: str) -> Manifest:
        data = self.store.get(cid)
        if data is None:
            raise InputError(f"tensor {cid} is not in this node's block store")
        return Manifest.from_block(data)

    async def get_tensor(self, cid: str) -> np.ndarray[Any, Any]:
        """Fetch (verified) and assemble the tensor ``cid``; the array is read-only."""
        cached = self.cache.get(cid)
        if isinstance(cached, np.ndarray):
            self.stats.cache_hits += 1
            return cached
        try:
            arr = await self._fetch_tensor(cid)
        except PeerError:
            self.stats.get_failures += 1
            raise
        self.stats.gets += 1
        # Content under a CID never changes: the array is read-only, so the cache can hand out
        # the same one without a defensive 16 MiB copy (``.copy()`` it to modify).
        arr.flags.writeable = False
        self.cache.put(cid, arr, arr.nbytes)
        return arr

    async def _fetch_tensor(self, cid: str) -> np.ndarray[Any, Any]:
        # The providers' Eq. 7 inputs are read from memory (and pinged) once per get, not
        # again for the blocks right after the manifest (≈ 2 ms of STM/LTM queries each time).
        memo: dict[bytes, PeerStats] = {}
        manifest, providers = await self._manifest(cid, memo)
        # Every block was checked against its CID on arrival (exchange) or on put (store); each
        # is copied into the output as soon as it is, while the others are still arriving.
        assembly = TensorAssembly(manifest)
        await self._fetch(
            list(manifest.blocks), providers, on_block=assembly.place, staging=assembly, memo=memo
        )
        return assembly.result()

    async def fetch_blocks(self, cid: str) -> tuple[Manifest, dict[str, Blob]]:
        """The manifest and every block of tensor ``cid``, fetched into our store if missing."""
        manifest, providers = await self._manifest(cid)
        return manifest, await self._fetch(list(manifest.blocks), providers)

    async def _manifest(
        self, cid: str, memo: dict[bytes, PeerStats] | None = None
    ) -> tuple[Manifest, list[PeerInfo]]:
        """Tensor ``cid``'s manifest, and its providers when some of its blocks are not here."""
        manifest_data: Blob | None = self.store.get(cid)
        providers: list[PeerInfo] = []
        if manifest_data is None or not all(
            self.store.has(c) for c in Manifest.from_block(manifest_data).blocks
        ):
            providers = await self.find_providers(cid)
            if not providers:
                raise PeerError(f"no provider of {cid} found in the DHT")
        if manifest_data is None:
            manifest_data = (await self._fetch([cid], providers, memo=memo))[cid]
        return Manifest.from_block(manifest_data), providers

    async def find_providers(self, cid: str) -> list[PeerInfo]:
        """Every provider the DHT knows for ``cid`` (aggregated over the k closest)."""
        records, _ = await self.dht.get_providers(dht_key(cid))
        return [self._dialable(r.peer) for r in records if r.peer.peer_id != self.identity.peer_id]

    def _dialable(self, peer: PeerInfo) -> PeerInfo:
        """A provider listening on every interface signs 0.0.0.0 (or ::) as its host; dial it at
        the address its handshake came from, when we know it (dialling 0.0.0.0 means ourselves)."""
        if peer.host not in ("0.0.0.0", "::"):
            return peer
        known = self.dht.routing.get(peer.peer_id)
        if known is None or known.port != peer.port or known.host in ("0.0.0.0", "::"):
            return peer
        return replace(peer, host=known.host, relay=peer.relay or known.relay)

    async def _fetch(
        self,
        cids: list[str],
        providers: list[PeerInfo],
        *,
        on_block: BlockSink | None = None,
        staging: TensorAssembly | None = None,
        memo: dict[bytes, PeerStats] | None = None,
    ) -> dict[str, Blob]:
        """Blocks from the TOPK providers by the strategy, then from all if those fail.

        With ``staging`` (a tensor's assembly) blocks are checked in place in its output and
        reach the store after the fetch returns (``exchange.flush()`` waits for that).
        """
        fetch = functools.partial(
            self.exchange.fetch, on_block=on_block, staging=staging, store_later=staging is not None
        )
        if all(self.store.has(c) for c in cids):
            return await fetch(cids, [])
        stats = self._candidates(providers, cids[0], memo)
        await self._measure(stats)
        chosen = select(
            stats,
            config=SelectionConfig(strategy=self.config.strategy, k=self.config.topk),
            weights=self.learner.weights,
        )
        self._last_outcomes = []
        try:
            blocks = await fetch(cids, [s.peer for s in chosen])
        except PeerError:
            self._learn(chosen)
            rest = [s.peer for s in stats if s not in chosen]
            if not rest:
                raise
            return await fetch(cids, rest)
        self._learn(chosen)
        return blocks

    def _candidates(
        self, peers: list[PeerInfo], cid: str, memo: dict[bytes, PeerStats] | None = None
    ) -> list[PeerStats]:
        """Eq. 7 inputs of each peer: advertised load, STM RTT/load, LTM profile (``memo``: reuse)."""
        key = dht_key(cid)
        out = []
        for peer in peers:
            known = memo.get(peer.peer_id) if memo is not None else None
            if known is not None:
                out.append(replace(known, xor_distance=distance(peer.dht_key, key)))
                continue
            load = self.dht.loads.get(peer.peer_id)
            base = PeerStats(peer)
            if load is not None:
                base = replace(base, availability=load.idle_fraction, mem_free_gb=load.mem_free_gb)
            xor = distance(peer.dht_key, key)
            out.append(peerload.stats_from_memory(self.memory, peer, xor_distance=xor, fallback=base))
            if memo is not None:
                memo[peer.peer_id] = out[-1]  # _measure fills in its RTT in place
        return out

    async def _measure(self, stats: list[PeerStats], *, always: bool = False) -> None:
        """PING candidates with no RTT on record yet (RTT to STM, load from the reply)."""
        if self.config.strategy != "adaptive" and not always:
            return
        todo = [s for s in stats if not self._has_rtt(s.peer)]

        async def one(s: PeerStats) -> None:
            # A first contact's ping also dials and handshakes (several round trips): it is not
            # an RTT. Ping once untimed when there is no connection yet, then time one.
            if not self.endpoint.has_connection(s.peer) and await self.dht.ping(s.peer) is None:
                return
            t0 = time.perf_counter()
            load = await self.dht.ping(s.peer)
            if load is not None:
                s.rtt_ms = (time.perf_counter() - t0) * 1e3
                s.availability, s.mem_free_gb = load.idle_fraction, load.mem_free_gb
                peerload.record_rtt(self.memory, s.peer.peer_id, s.rtt_ms)
                peerload.record_load(self.memory, s.peer.peer_id, load)

        await asyncio.gather(*(one(s) for s in todo))

    def _has_rtt(self, peer: PeerInfo) -> bool:
        recent = getattr(self.memory, "recent", None)
        return recent is not None and recent(peerload.rtt_stream(peer.peer_id)) is not None

    def _learn(self, chosen: list[PeerStats]) -> None:
        """Eq. 8–9: one weight update from this fetch's per-provider outcomes.

        A provider "completed" when it served blocks without failing; its time is seconds per
        block served, so make_decision labels the providers that kept up with the fastest.
        """
        asked = {s.peer.peer_id for s in chosen}  # concurrent fetches share the callback
        outcomes = {
            o.peer.peer_id: (o.failed is None and o.blocks > 0, o.seconds / max(o.blocks, 1))
            for o in self._last_outcomes
            if o.peer.peer_id in asked
        }
        if len(outcomes) < 2:
            return
        self.learner.observe(make_decision(chosen, outcomes))
        self.learner.step()

    def use_strategy(self, strategy: str) -> None:
        """Switch peer selection at run time (``adaptive``, ``dht-only``, ``random``: ablations)."""
        self.config = replace(self.config, strategy=strategy).validate()

    # -- peers -----------------------------------------------------------------------------------
    async def peers(self) -> list[dict[str, Any]]:
        """Known peers with their Eq. 7 inputs and score under the current weights."""
        known = self.dht.routing.peers()
        stats = self._candidates(known, self.identity.text)
        await self._measure(stats, always=True)
        score = scores(feature_matrix(stats), self.learner.weights) if stats else np.zeros(0)
        rows = [_peer_row(s, float(v)) for s, v in zip(stats, score, strict=True)]
        return sorted(rows, key=lambda r: -r["score"])


def _peer_row(s: PeerStats, score: float) -> dict[str, Any]:
    return {
        "peer_id": peer_id_text(s.peer.peer_id),
        "addr": s.peer.addr,
        "availability": round(s.availability, 4),
        "rtt_ms": round(s.rtt_ms, 4),
        "mem_free_gb": round(s.mem_free_gb, 3),
        "score": round(score, 4),
        "relay": f"{s.peer.relay[1]}:{s.peer.relay[2]}" if s.peer.relay else None,
    }


def _by_peer_id(handler: Any) -> Any:
    async def adapted(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await handler(caller.peer_id, body)
        return result

    return adapted
