"""Hole punching after a relayed connection: upgrade to a direct socket, or stay on the relay."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from nat_procs import addr_arg, dial_local, relayed_endpoint, start_local

from sedma.errors import ConfigError
from sedma.net.holepunch import (
    NatTransport,
    PunchConfig,
    attach_behind_nat,
    candidate_addrs,
    dialable,
    register_nat_api,
)
from sedma.net.identity import Identity
from sedma.net.relay import RelayServer
from sedma.net.rpc import Caller, RpcEndpoint
from sedma.net.transport import TcpTransport
from sedma.net.types import PeerInfo


def test_candidates_are_the_observed_then_the_local_address_without_duplicates() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        local = ("127.0.0.1", sock.getsockname()[1])
        assert candidate_addrs(sock, ("10.200.0.10", 4242)) == [("10.200.0.10", 4242), local]
        assert candidate_addrs(sock, local) == [local]
        assert candidate_addrs(sock, None) == [local]


def test_a_responder_dials_only_the_host_the_relay_saw_the_dialer_on() -> None:
    offered = [("198.51.100.7", 4000), ("10.0.0.9", 4000), ("192.0.2.1", 22), ("198.51.100.7", 4001)]
    assert dialable(offered, ("198.51.100.7", 4000)) == [("198.51.100.7", 4000), ("198.51.100.7", 4001)]
    assert dialable(offered, None) == []


@pytest.mark.parametrize("field", ["deadline", "retry_every", "exchange_timeout"])
def test_punch_config_refuses_non_positive_times(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        PunchConfig(**{field: 0.0}).validate()


async def _pair(
    *, dialer_punch: bool, target_punch: bool, host: str = "127.0.0.1"
) -> tuple[str, list[str], bytes, bytes]:
    """One relay, a reserved target and a dialer in this process; returns what each side saw."""
    relay = RelayServer(Identity.generate())
    host, port = await relay.start(host)
    addr = (relay.identity.peer_id, host, port)
    target = Identity.generate()
    t_transport = NatTransport(target, punch=PunchConfig(enabled=target_punch))
    server = RpcEndpoint(target, t_transport)

    async def whoami(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"you": caller.peer_id}

    server.register("whoami", whoami)
    await server.listen()
    await t_transport.reserve(addr)
    me = Identity.generate()
    d_transport = NatTransport(me, punch=PunchConfig(enabled=dialer_punch))
    client = RpcEndpoint(me, d_transport)
    peer = PeerInfo(target.peer_id, host, 1, relay=addr)
    d_transport.add_route(peer)
    try:
        seen = await client.request(peer, "whoami", {})
        rpc = await client.connection(peer)
        assert rpc.caller is not None
        return (
            d_transport.paths[target.peer_id],
            list(t_transport.inbound_paths),
            seen["you"],
            rpc.caller.peer_id,
        )
    finally:
        await client.close()
        await server.close()
        await t_transport.close()
        await relay.close()


def test_both_sides_upgrade_to_a_direct_socket_when_they_can() -> None:
    path, inbound, seen, proven = asyncio.run(_pair(dialer_punch=True, target_punch=True))
    assert (path, inbound) == ("holepunch", ["holepunch"])
    assert seen != proven  # each side proved its own id over the punched socket


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_relay_and_hole_punching_work_over_ipv6() -> None:
    path, inbound, _, _ = asyncio.run(_pair(dialer_punch=True, target_punch=True, host="::1"))
    assert (path, inbound) == ("holepunch", ["holepunch"])


@pytest.mark.parametrize(("dialer", "target"), [(True, False), (False, True)])
def test_a_side_that_declines_keeps_both_on_the_relay(dialer: bool, target: bool) -> None:
    path, inbound, _, _ = asyncio.run(_pair(dialer_punch=dialer, target_punch=target))
    assert (path, inbound) == ("relay", ["relay"])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_node_that_cannot_be_dialled_back_reserves_on_the_relay_it_discovers() -> None:
    async def scenario() -> None:
        public = RpcEndpoint(Identity.generate(), TcpTransport())
        relay = RelayServer(public.identity)
        await relay.start()
        register_nat_api(public, relay=relay)
        p_host, p_port = await public.listen()
        public_info = PeerInfo(public.identity.peer_id, p_host, p_port)
        # Reachable: the public node dials it back (and it proves its id), so no relay is used.
        open_transport = NatTransport()
        reachable = RpcEndpoint(Identity.generate(), open_transport)
        await reachable.listen()
        assert await attach_behind_nat(reachable, open_transport, [public_info]) is None
        # "Behind a NAT": it advertises an address nobody can open, so it takes a relay slot.
        nat_transport = NatTransport(punch=PunchConfig(enabled=False))
        hidden = RpcEndpoint(Identity.generate(), nat_transport)
        await hidden.listen()
        hidden.advertised = ("127.0.0.1", _closed_port())
        reservation = await attach_behind_nat(hidden, nat_transport, [public_info])
        assert reservation is not None and reservation.relay == (public.identity.peer_id, *relay.address)
        hidden.register("ping", _pong)
        dialer_transport = NatTransport()
        dialer = RpcEndpoint(Identity.generate(), dialer_transport)
        peer = PeerInfo(hidden.identity.peer_id, *hidden.advertised, relay=reservation.relay)
        dialer_transport.add_route(peer)
        assert await dialer.request(peer, "ping", {}) == {"pong": True}
        assert dialer_transport.paths[peer.peer_id] == "relay"
        assert dialer_transport.stats()["out_relay"] == 1
        hidden_stats = nat_transport.stats()
        assert hidden_stats["in_relay"] == 1 and hidden_stats["in_holepunch"] == 0
        assert hidden_stats["reservations"] == 1
        for ep in (dialer, hidden, reachable, public):
            await ep.close()
        await nat_transport.close()
        await relay.close()

    asyncio.run(scenario())


async def _pong(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return {"pong": True}


@pytest.fixture(scope="module")
def relay_and_target() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        relay = start_local(["relay"], procs)
        target = start_local(["target", "--relay", addr_arg(relay)], procs)
        yield relay, target
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=5)


def test_processes_upgrade_a_relayed_connection_and_move_a_tensor_directly(
    relay_and_target: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    relay, target = relay_and_target
    result = dial_local(
        [
            "--relay",
            addr_arg(relay),
            "--target",
            addr_arg(target, host="127.0.0.2"),
            "--manifest",
            target["manifest"],
        ]
    )
    assert result["ok"] is True, result
    assert result["path"] == "holepunch" and result["target_paths"][-1] == "holepunch"
    assert result["proven_peer_id"] == target["peer_id"]
    assert result["sha256"] == target["sha256"]


class _CountingTcp(TcpTransport):
    """The real TCP transport, recording where it was asked to dial."""

    def __init__(self) -> None:
        super().__init__()
        self.dialled: list[tuple[str, int]] = []

    async def connect(self, host: str, port: int, *, timeout: float) -> Any:
        self.dialled.append((host, port))
        return await super().connect(host, port, timeout=timeout)


def test_after_a_failed_direct_dial_the_relay_is_used_straight_away_until_retry_time() -> None:
    async def main() -> None:
        relay = RelayServer(Identity.generate())
        host, port = await relay.start("127.0.0.1")
        via = (relay.identity.peer_id, host, port)
        target = Identity.generate()
        t_transport, server = await relayed_endpoint(target, via)
        inner = _CountingTcp()
        dialer = NatTransport(Identity.generate(), inner=inner, punch=PunchConfig(enabled=False))
        peer = PeerInfo(target.peer_id, "127.0.0.1", 1, relay=via)  # port 1: refused
        dialer.add_route(peer)
        for _ in range(2):
            conn = await dialer.connect(peer.host, peer.port, timeout=5.0)
            conn.close()
        assert inner.dialled == [("127.0.0.1", 1)]  # tried once, then straight to the relay
        assert (
            dialer.paths[target.peer_id] == "relay" and "127.0.0.1:1" in dialer.direct_errors[target.peer_id]
        )
        dialer.direct_retry_after = 0.0
        (await dialer.connect(peer.host, peer.port, timeout=5.0)).close()
        assert inner.dialled == [("127.0.0.1", 1)] * 2  # retry time passed: direct first again
        await dialer.close()
        await t_transport.close()
        await server.close()
        await relay.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_routes_and_paths_are_bounded_oldest_first() -> None:
    transport = NatTransport(max_routes=2)
    via = (b"\x12\x20" + b"r" * 32, "127.0.0.1", 9)
    peers = [PeerInfo(bytes([0x12, 0x20, i]) + b"p" * 31, "10.0.0.5", 4000 + i, relay=via) for i in range(3)]
    for peer in peers:
        transport.add_route(peer)
    transport.add_route(PeerInfo(peers[0].peer_id, "10.0.0.5", 4000))  # no relay: not a route
    assert list(transport.routes.values()) == peers[1:]
