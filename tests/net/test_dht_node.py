"""DHT nodes over real loopback sockets in one event loop."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from sedma.net.dht.node import DhtConfig, DhtNode
from sedma.net.dht.storage import ProviderRecord
from sedma.net.identity import Identity
from sedma.net.rpc import RpcEndpoint
from sedma.net.transport import TcpTransport
from sedma.net.types import PeerInfo, PeerLoad


async def _swarm(n: int, **cfg: Any) -> list[DhtNode]:
    nodes = []
    for _ in range(n):
        ep = RpcEndpoint(Identity.generate(), TcpTransport())
        await ep.listen()
        nodes.append(DhtNode(ep, config=DhtConfig(**cfg)))
    boot = nodes[0].endpoint.advertised
    assert boot is not None
    for node in nodes[1:]:
        await node.bootstrap([boot])
    return nodes


async def _close(nodes: list[DhtNode]) -> None:
    for node in nodes:
        await node.stop()
        await node.endpoint.close()


def _key(i: int) -> bytes:
    return hashlib.sha256(b"k%d" % i).digest()


def test_every_provider_is_found_from_every_peer_right_after_providing() -> None:
    async def main() -> None:
        nodes = await _swarm(12)
        for i, node in enumerate(nodes[:4]):
            assert await node.provide(_key(i)) >= 10
        await nodes[5].provide(_key(0))  # a second provider of key 0
        for node in nodes:
            for i in range(4):
                provs, result = await node.get_providers(_key(i))
                expected = {nodes[i].endpoint.identity.peer_id} | (
                    {nodes[5].endpoint.identity.peer_id} if i == 0 else set()
                )
                assert {p.peer.peer_id for p in provs} == expected  # every provider, not a part
                assert all(p.peer.port > 0 for p in provs)  # provider records carry addresses
                assert result.hops <= 5
        await _close(nodes)

    asyncio.run(main())


def test_signed_value_round_trips_and_newest_wins() -> None:
    async def main() -> None:
        nodes = await _swarm(8)
        key = await nodes[1].put_value(b"model/latest", b"v1")
        assert await nodes[6].get_value(key) == b"v1"
        assert await nodes[1].put_value(b"model/latest", b"v2") == key
        assert await nodes[7].get_value(key) == b"v2"
        assert await nodes[3].get_value(hashlib.sha256(b"absent").digest()) is None
        await _close(nodes)

    asyncio.run(main())


def test_peer_joining_later_receives_records_it_is_now_closest_for() -> None:
    async def main() -> None:
        nodes = await _swarm(6, k=3)
        for i in range(12):
            await nodes[i % 6].provide(_key(i))
        late = await _swarm(1, k=3)
        boot = nodes[0].endpoint.advertised
        assert boot is not None
        await late[0].bootstrap([boot])
        await asyncio.sleep(0.3)  # hand-offs run in the background
        held = set(late[0].storage.providers)
        everyone = nodes + late
        should = set()
        for i in range(12):
            order = sorted(
                everyone, key=lambda n: int.from_bytes(n.self_key, "big") ^ int.from_bytes(_key(i), "big")
            )
            if late[0] in order[:2]:
                should.add(_key(i))
        assert should and should <= held
        await _close(everyone)

    asyncio.run(main())


async def _two_lookups(node: DhtNode, key: bytes) -> tuple[list[ProviderRecord], float, float]:
    """Providers of ``key`` and the seconds of two look-ups in a row (the second after any
    dead peer met by the first has been marked)."""
    t0 = time.perf_counter()
    provs, _ = await node.get_providers(key)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    await node.get_providers(key)
    return provs, first, time.perf_counter() - t0


def test_dead_peer_costs_one_short_timeout_at_most_then_is_skipped() -> None:
    async def main() -> None:
        nodes = await _swarm(10, rpc_timeout=0.3)
        for victim in nodes[6:9]:
            await victim.endpoint.close()
        await nodes[0].provide(_key(1))
        provs, first, second = await _two_lookups(nodes[1], _key(1))
        assert provs and first < 1.0 and second < 0.5  # the second skips the dead outright
        known = {p.peer_id for p in nodes[1].routing.peers()}
        for victim in nodes[6:9]:
            assert victim.endpoint.identity.peer_id in nodes[1].dead
            assert victim.endpoint.identity.peer_id not in known
        await _close(nodes[:6] + nodes[9:])

    asyncio.run(main())


def test_republish_keeps_provider_records_alive_past_their_ttl() -> None:
    now = [1000.0]

    def clock() -> float:
        return now[0]

    async def main() -> None:
        nodes = []
        for _ in range(6):
            ep = RpcEndpoint(Identity.generate(), TcpTransport())
            await ep.listen()
            nodes.append(DhtNode(ep, config=DhtConfig(provider_ttl=100.0), clock=clock))
        boot = nodes[0].endpoint.advertised
        assert boot is not None
        for node in nodes[1:]:
            await node.bootstrap([boot])
        await nodes[2].provide(_key(9))
        now[0] += 90.0
        await nodes[2].republish()
        now[0] += 60.0  # 150 s after the first provide: only the republished records live
        provs, _ = await nodes[4].get_providers(_key(9))
        assert [p.peer.peer_id for p in provs] == [nodes[2].endpoint.identity.peer_id]
        now[0] += 200.0
        assert (await nodes[4].get_providers(_key(9)))[0] == []  # expired without republish
        await _close(nodes)

    asyncio.run(main())


def test_bucket_refresh_looks_up_a_key_in_each_asked_bucket() -> None:
    async def main() -> None:
        nodes = await _swarm(5)
        before = len(nodes[3].routing)
        await nodes[3].refresh(nodes[3].routing.refresh_indices()[-2:])
        assert len(nodes[3].routing) >= before == 4
        await _close(nodes)

    asyncio.run(main())


def test_chained_bootstrap_does_not_split_a_small_swarm() -> None:
    async def main() -> None:
        nodes = []
        for _ in range(8):
            ep = RpcEndpoint(Identity.generate(), TcpTransport())
            await ep.listen()
            node = DhtNode(ep)
            if nodes:  # each joins through the previous one only
                prev = nodes[-1].endpoint.advertised
                assert prev is not None
                await node.bootstrap([prev])
            nodes.append(node)
        for node in nodes:
            assert len(node.routing) == 7, "every peer must know every other one"
        await _close(nodes)

    asyncio.run(main())


def test_a_hung_peer_costs_one_rpc_timeout_then_is_skipped() -> None:
    async def main() -> None:
        nodes = await _swarm(6, rpc_timeout=0.3)

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 20)  # accepts, reads, never answers: a stopped process

        hung = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = hung.sockets[0].getsockname()[1]
        ghost = PeerInfo(Identity.generate().peer_id, "127.0.0.1", port)
        nodes[1].add_peer(ghost)
        await nodes[0].provide(_key(3))
        provs, first, second = await _two_lookups(nodes[1], _key(3))
        assert provs and 0.25 < first < 1.0 and second < 0.25
        assert ghost.peer_id in nodes[1].dead
        hung.close()
        await _close(nodes)

    asyncio.run(main())


def test_full_bucket_pings_its_oldest_only_when_not_heard_from_lately() -> None:
    # Kademlia §4.1: a contact that answered recently is not probed again; a stale one is
    # pinged, kept (and moved to the tail) if it answers, replaced by the newcomer if not.
    async def main() -> None:
        now = [1000.0]
        ep = RpcEndpoint(Identity.generate(), TcpTransport())
        me = DhtNode(ep, config=DhtConfig(k=1, ping_after=60.0, rpc_timeout=0.3), clock=lambda: now[0])
        pings: list[bytes] = []
        request = ep.request

        async def counted(peer: PeerInfo, method: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
            pings.extend([peer.peer_id] if method == "dht.ping" else [])
            return await request(peer, method, body, **kw)

        ep.request = counted  # type: ignore[method-assign]
        old, new = await _same_bucket_pair(me)
        old_info = PeerInfo(old.endpoint.identity.peer_id, *old.endpoint.advertised or ("", 0))
        new_info = PeerInfo(new.endpoint.identity.peer_id, *new.endpoint.advertised or ("", 0))
        me.add_peer(old_info)
        assert await me.ping(old_info) is not None and len(pings) == 1
        me.add_peer(new_info)  # bucket full, oldest heard from just now: no probe
        await asyncio.sleep(0.05)
        assert len(pings) == 1 and new_info not in me.routing
        now[0] += 61.0
        me.add_peer(new_info)  # oldest silent for 61 s: probed, answers, stays
        await asyncio.sleep(0.2)
        assert pings[1:] == [old_info.peer_id] and old_info in me.routing and new_info not in me.routing
        await old.endpoint.close()
        now[0] += 61.0
        me.add_peer(new_info)  # probed again, dead now: replaced
        await asyncio.sleep(0.6)
        assert len(pings) == 3 and old_info not in me.routing and new_info in me.routing
        await _close([me, new])

    asyncio.run(main())


async def _same_bucket_pair(me: DhtNode) -> tuple[DhtNode, DhtNode]:
    """Two listening DHT peers whose keys fall into the same bucket of ``me``."""
    from sedma.net.dht.routing import bucket_index

    by_bucket: dict[int, DhtNode] = {}
    while True:
        ep = RpcEndpoint(Identity.generate(), TcpTransport())
        await ep.listen()
        node = DhtNode(ep, load_fn=lambda: PeerLoad(0.5, 1.0, time.time()))  # PING answers carry a load
        index = bucket_index(me.self_key, node.self_key)
        if index in by_bucket:
            return by_bucket.pop(index), node
        by_bucket[index] = node


def test_identical_wire_records_are_parsed_once_and_forged_copies_are_not_merged() -> None:
    from sedma.net.dht.node import _distinct

    genuine = [b"k" * 32, b"p" * 32, "127.0.0.1", 4000, 1e9, b"s" * 64]
    forged = [*genuine[:3], 4001, *genuine[4:]]  # same signature, another port
    relayed = [*genuine, [b"r" * 34, "10.0.0.1", 5000]]
    raws = [genuine, list(genuine), forged, relayed, list(relayed), 7, genuine]
    assert _distinct(raws) == [genuine, forged, relayed, relayed, 7]
