"""Node: put/get across real loopback peers in one loop, replication, strategies, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import numpy as np
import pytest

from sedma.errors import ConfigError, InputError
from sedma.net import NatTransport, Node, NodeClient, NodeConfig, PeerError
from sedma.net.node import dht_key, parse_addr
from sedma.net.types import PeerInfo, PeerStats


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def _nodes(n: int, **cfg: Any) -> list[Node]:
    first = await Node(NodeConfig(ephemeral=True, **cfg)).start()
    rest = [
        await Node(NodeConfig(ephemeral=True, bootstrap=(first.addr,), **cfg)).start() for _ in range(n - 1)
    ]
    return [first, *rest]


async def _stop(nodes: list[Node]) -> None:
    for node in nodes:
        await node.stop()


def test_tensor_put_on_one_peer_is_gettable_from_every_other_with_dtype_and_shape() -> None:
    async def main() -> None:
        nodes = await _nodes(5)
        rng = np.random.default_rng(1)
        arrays = [rng.standard_normal((700, 800)).astype(np.float32), np.arange(10, dtype=np.int16)]
        cids = [await nodes[i].put_tensor(a, replicas=0) for i, a in enumerate(arrays)]
        for node in nodes:
            for cid, arr in zip(cids, arrays, strict=True):
                got = await node.get_tensor(cid)
                assert got.dtype == arr.dtype and got.shape == arr.shape and np.array_equal(got, arr)
        assert nodes[3].stats.gets == 2 and nodes[3].stats.bytes_in > arrays[0].nbytes
        again = await nodes[3].get_tensor(cids[0])  # from the cache: the same read-only array
        assert again is await nodes[3].get_tensor(cids[0]) and not again.flags.writeable
        assert nodes[3].stats.cache_hits == 2
        await _stop(nodes)

    run(main())


def test_replicas_let_a_reader_survive_the_loss_of_the_publisher() -> None:
    async def main() -> None:
        nodes = await _nodes(6)
        arr = np.random.default_rng(2).standard_normal(300_000)
        cid = await nodes[0].put_tensor(arr, replicas=2)
        holders = [n for n in nodes[1:] if n.store.has(cid)]
        assert len(holders) == 2 and all(h.store.pinned() >= {cid} for h in holders)
        await nodes[0].stop()  # the publisher leaves
        reader = next(n for n in nodes[1:] if n not in holders)
        assert np.array_equal(await reader.get_tensor(cid), arr)
        await _stop(nodes[1:])

    run(main())


@pytest.mark.parametrize("strategy", ["dht-only", "random"])
def test_ablation_strategies_are_real_code_paths_that_still_deliver(strategy: str) -> None:
    async def main() -> None:
        nodes = await _nodes(4, strategy=strategy)
        arr = np.arange(50_000, dtype=np.float64)
        cid = await nodes[0].put_tensor(arr, replicas=2)
        assert np.array_equal(await nodes[3].get_tensor(cid), arr)
        rows = await nodes[3].peers()
        assert len(rows) == 3 and all(r["rtt_ms"] > 0 for r in rows)
        await _stop(nodes)

    run(main())


def test_unknown_cid_fails_with_peer_error_and_client_sees_one_line() -> None:
    async def main() -> None:
        nodes = await _nodes(3)
        absent = await Node(NodeConfig(ephemeral=True)).start()
        cid = await absent.put_tensor(np.zeros(3), replicas=0)  # never announced to this swarm
        await absent.stop()
        with pytest.raises(PeerError, match="no provider"):
            await nodes[1].get_tensor(cid)
        async with NodeClient("127.0.0.1", nodes[2].info.port) as client:
            with pytest.raises(PeerError, match="no provider"):
                await client.get(cid)
            got_cid, _ = await client.put(np.ones((2, 3)), replicas=1)
            assert np.array_equal(await client.get(got_cid), np.ones((2, 3)))
        await _stop(nodes)

    run(main())


def test_bad_config_and_addresses_are_typed_errors_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="strategy"):
        NodeConfig(strategy="fastest").validate()
    with pytest.raises(InputError, match="bootstrap"):
        NodeConfig(bootstrap=("nohost",)).validate()
    with pytest.raises(InputError, match="--node"):
        parse_addr("localhost:http", field="--node")
    assert parse_addr("[::1]:80") == ("::1", 80)


def test_relay_option_starts_a_relay_service_beside_the_node() -> None:
    async def main() -> None:
        node = await Node(NodeConfig(ephemeral=True, use_memory=False, relay=True)).start()
        assert node.relay_address is not None and node.relay_address[0] == "127.0.0.1"
        _reader, writer = await asyncio.open_connection(*node.relay_address)  # accepting
        writer.close()
        await node.stop()

    run(main())


def test_strategy_can_be_switched_at_run_time_and_is_validated() -> None:
    async def main() -> None:
        nodes = await _nodes(3, use_memory=False)
        cid = await nodes[0].put_tensor(np.arange(9.0), replicas=1)
        for strategy in ("random", "dht-only", "adaptive"):
            nodes[2].use_strategy(strategy)
            nodes[2].cache = type(nodes[2].cache)(nodes[2].cache.config)  # force a network fetch
            assert np.array_equal(await nodes[2].get_tensor(cid), np.arange(9.0))
        with pytest.raises(ConfigError, match="strategy"):
            nodes[2].use_strategy("fastest")
        await _stop(nodes)

    run(main())


def test_a_fetch_from_several_providers_feeds_one_eq8_weight_update() -> None:
    async def main() -> None:
        nodes = await _nodes(5, use_memory=False, topk=3)
        cid = await nodes[0].put_tensor(np.random.default_rng(3).standard_normal(3 * 2**17), replicas=2)
        reader = next(n for n in nodes[1:] if not n.store.has(cid))  # not a replica holder
        assert reader.learner.updates == 0
        await reader.get_tensor(cid)
        assert reader.learner.updates >= 1 and len(reader.learner.decisions) >= 1
        labels = reader.learner.decisions[-1].labels
        assert np.nansum(labels) >= 1  # at least the provider that served the blocks succeeded
        await _stop(nodes)

    run(main())


def test_default_node_on_loopback_is_reachable_so_it_reserves_nothing_and_works_as_before() -> None:
    async def main() -> None:
        relay = await Node(NodeConfig(ephemeral=True, use_memory=False, relay=True)).start()
        nodes = [
            await Node(NodeConfig(ephemeral=True, use_memory=False, bootstrap=(relay.addr,))).start()
            for _ in range(2)
        ]
        for node in nodes:
            assert isinstance(node.transport, NatTransport)
            # The dial-back reached it: no relay slot, no relay in what it advertises.
            assert node.transport.reservations == [] and node.info.relay is None
            assert node.transport.stats()["reservations"] == 0
        assert relay.info.relay is None
        arr = np.random.default_rng(3).standard_normal((400, 700))
        cid = await nodes[0].put_tensor(arr, replicas=0)
        assert np.array_equal(await nodes[1].get_tensor(cid), arr)
        rows = await nodes[1].peers()
        assert {r["addr"] for r in rows} == {relay.addr, nodes[0].addr}
        assert all(r["relay"] is None for r in rows)
        await _stop([*nodes, relay])

    run(main())


def test_a_peers_relay_travels_through_hello_dht_answers_and_provider_records() -> None:
    async def main() -> None:
        relay = await Node(NodeConfig(ephemeral=True, use_memory=False, relay=True)).start()
        assert relay.relay_address is not None
        via = (relay.identity.peer_id, *relay.relay_address)
        behind = await Node(NodeConfig(ephemeral=True, use_memory=False)).start()
        behind.endpoint.relay = via  # what attach-behind-NAT sets when the dial-back fails
        await behind.join([parse_addr(relay.addr)])
        cid = await behind.put_tensor(np.arange(1000, dtype=np.int64), replicas=0)
        # A newcomer joining through the relay node learns ``behind`` with its relay (from DHT
        # answers, and from the handshake whenever the two talk)...
        late = await Node(NodeConfig(ephemeral=True, use_memory=False, bootstrap=(relay.addr,))).start()
        known = {p.peer_id: p for p in late.dht.routing.peers()}
        assert known[behind.identity.peer_id].relay == via
        # ...and from the signed provider record, then reaches it (directly: loopback is public).
        providers = await late.find_providers(cid)
        assert [p.relay for p in providers] == [via]
        assert np.array_equal(await late.get_tensor(cid), np.arange(1000))
        assert isinstance(late.transport, NatTransport)
        assert late.transport.paths[behind.identity.peer_id] == "direct"
        await _stop([late, behind, relay])

    run(main())


def test_a_provider_listening_on_every_interface_is_dialled_where_its_handshake_came_from() -> None:
    async def main() -> None:
        wide = await Node(NodeConfig(host="0.0.0.0", ephemeral=True, use_memory=False)).start()
        port = wide.info.port
        reader = await Node(
            NodeConfig(ephemeral=True, use_memory=False, bootstrap=(f"127.0.0.1:{port}",))
        ).start()
        cid = await wide.put_tensor(np.arange(50, dtype=np.float64), replicas=0)
        records, _ = await reader.dht.get_providers(dht_key(cid))
        assert [(r.host, r.port) for r in records] == [("0.0.0.0", port)]  # what it signed
        assert [(p.host, p.port) for p in await reader.find_providers(cid)] == [("127.0.0.1", port)]
        assert np.array_equal(await reader.get_tensor(cid), np.arange(50))
        await _stop([reader, wide])

    run(main())


def test_a_start_that_cannot_join_fails_typed_and_releases_its_listener() -> None:
    async def main() -> None:
        node = Node(NodeConfig(ephemeral=True, use_memory=False, bootstrap=("127.0.0.1:1",)))
        with pytest.raises(PeerError, match="no bootstrap peer answered"):
            await node.start()
        assert node.endpoint.advertised is not None and node.endpoint.listener is None
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", node.endpoint.advertised[1])

    run(main())


def test_a_first_contacts_rtt_is_timed_over_an_open_connection_not_the_dial() -> None:
    async def main() -> None:
        a = await Node(NodeConfig(ephemeral=True, use_memory=False)).start()
        b = await Node(NodeConfig(ephemeral=True, use_memory=False)).start()
        assert not b.endpoint.has_connection(a.info)
        ping, opened = b.dht.ping, []

        async def spy(peer: PeerInfo) -> Any:
            opened.append(b.endpoint.has_connection(peer))
            return await ping(peer)

        b.dht.ping = spy  # type: ignore[method-assign]
        stats = [PeerStats(a.info)]
        await b._measure(stats, always=True)
        # The dialling ping is untimed; the RTT comes from a second ping on the open connection.
        assert opened == [False, True] and 0 < stats[0].rtt_ms < 1000
        opened.clear()
        stats = [PeerStats(a.info)]
        await b._measure(stats, always=True)
        assert opened == [True]  # connected already: one timed ping
        await _stop([b, a])

    run(main())
