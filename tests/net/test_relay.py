"""Circuit relay: the bookkeeping limits, then real relays, targets and dialers over loopback."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from nat_procs import addr_arg, dial_local, relayed_endpoint, start_local

from sedma.errors import ConfigError
from sedma.net.holepunch import NatTransport, PunchConfig
from sedma.net.identity import Identity
from sedma.net.relay import (
    HEADER,
    MAGIC,
    VERSION,
    RelayReservation,
    RelayServer,
    SocketChannel,
    body_length,
    dial_relay,
    pack,
    unpack,
)
from sedma.net.relay_limits import RelayBook, RelayLimits, RelayRefused, circuit_verdict
from sedma.net.rpc import Caller, RpcEndpoint
from sedma.net.transport import TcpTransport
from sedma.net.types import PeerError, PeerInfo, ProtocolError

PID_A, PID_B, PID_C = b"\x12\x20" + b"a" * 32, b"\x12\x20" + b"b" * 32, b"\x12\x20" + b"c" * 32


# -- bookkeeping (no sockets) ---------------------------------------------------------------------
def test_reservations_are_capped_but_renewals_are_not_counted_twice() -> None:
    book = RelayBook(RelayLimits(max_reservations=2, reservation_ttl=10.0))
    book.reserve(PID_A, owner=1, now=0.0)
    book.reserve(PID_B, owner=2, now=0.0)
    assert book.reserve(PID_A, owner=1, now=5.0) == 15.0  # renewal extends, takes no new slot
    with pytest.raises(RelayRefused) as err:
        book.reserve(PID_C, owner=3, now=5.0)
    assert err.value.code == "reservations_full"
    assert book.expire(10.0) == [PID_B]  # A was renewed to 15, B expired at 10
    book.reserve(PID_C, owner=3, now=10.0)


def test_only_the_holding_connection_releases_a_reservation() -> None:
    book = RelayBook()
    book.reserve(PID_A, owner=1, now=0.0)
    book.reserve(PID_A, owner=2, now=1.0)  # the peer reconnected
    assert not book.release(PID_A, owner=1)
    assert PID_A in book.reservations
    assert book.release(PID_A, owner=2)
    assert PID_A not in book.reservations


def test_circuits_need_a_reservation_and_respect_total_and_per_peer_caps() -> None:
    book = RelayBook(RelayLimits(max_circuits=3, max_circuits_per_peer=2))
    with pytest.raises(RelayRefused) as err:
        book.open_circuit(PID_A, b"t0", now=0.0)
    assert err.value.code == "no_reservation"
    book.reserve(PID_A, owner=1, now=0.0)
    book.reserve(PID_B, owner=2, now=0.0)
    book.open_circuit(PID_A, b"t1", now=0.0)
    book.open_circuit(PID_A, b"t2", now=0.0)
    with pytest.raises(RelayRefused) as err:
        book.open_circuit(PID_A, b"t3", now=0.0)
    assert err.value.code == "peer_circuits_full"
    book.open_circuit(PID_B, b"t4", now=0.0)
    with pytest.raises(RelayRefused) as err:
        book.open_circuit(PID_B, b"t5", now=0.0)
    assert err.value.code == "circuits_full"
    book.close_circuit(b"t1")
    book.open_circuit(PID_B, b"t5", now=0.0)


def test_circuit_verdict_cuts_on_bytes_or_time() -> None:
    limits = RelayLimits(circuit_bytes=1000, circuit_seconds=10.0)
    assert circuit_verdict(limits, carried=1000, opened_at=0.0, now=9.9) is None
    assert "byte cap" in str(circuit_verdict(limits, carried=1001, opened_at=0.0, now=1.0))
    assert "time cap" in str(circuit_verdict(limits, carried=0, opened_at=0.0, now=10.0))


@pytest.mark.parametrize("field", ["max_reservations", "max_circuits", "circuit_bytes"])
def test_limits_refuse_non_positive_counts(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RelayLimits(**{field: 0}).validate()


def test_relay_messages_round_trip_and_refuse_oversize_or_foreign_headers() -> None:
    raw = pack({"op": "connect", "target": PID_A})
    head, meta = raw[: HEADER.size], raw[HEADER.size :]
    assert body_length(head) == len(meta)
    assert unpack(head, meta) == {"op": "connect", "target": PID_A}
    with pytest.raises(ProtocolError, match="refused"):
        body_length(HEADER.pack(MAGIC, VERSION, 2, 0, 1 << 20, 0))
    with pytest.raises(ProtocolError, match="not a sedma relay"):
        body_length(HEADER.pack(b"XX", VERSION, 2, 0, 10, 0))


# -- real sockets, one process ----------------------------------------------------------------------
async def _circuit_sink(received: list[bytes]) -> Any:
    async def on_circuit(ch: SocketChannel, reply: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        while data := await loop.sock_recv(ch.sock, 65536):
            received.append(data)
        ch.sock.close()

    return on_circuit


def test_reservation_limit_and_unknown_targets_are_refused_over_the_wire() -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate(), limits=RelayLimits(max_reservations=1))
        host, port = await relay.start()
        addr = (relay.identity.peer_id, host, port)
        first = await RelayReservation(Identity.generate(), addr, await _circuit_sink([])).open()
        assert first.observed is not None and first.observed[0] == "127.0.0.1"
        with pytest.raises(RelayRefused) as err:
            await RelayReservation(Identity.generate(), addr, await _circuit_sink([])).open()
        assert err.value.code == "reservations_full"
        with pytest.raises(RelayRefused) as err:
            await dial_relay(addr, Identity.generate().peer_id, timeout=2.0)
        assert err.value.code == "no_reservation"
        await first.close()
        await relay.close()

    asyncio.run(scenario())


def test_a_relay_with_another_key_is_not_trusted() -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate())
        host, port = await relay.start()
        wrong = (Identity.generate().peer_id, host, port)
        with pytest.raises(PeerError, match="not the expected relay"):
            await RelayReservation(Identity.generate(), wrong, await _circuit_sink([])).open()
        await relay.close()

    asyncio.run(scenario())


def test_circuit_is_cut_at_its_byte_cap() -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate(), limits=RelayLimits(circuit_bytes=256 * 1024))
        host, port = await relay.start()
        addr = (relay.identity.peer_id, host, port)
        received: list[bytes] = []
        target = Identity.generate()
        reservation = await RelayReservation(target, addr, await _circuit_sink(received)).open()
        ch, reply = await dial_relay(addr, target.peer_id, timeout=5.0)
        assert reply["limit_bytes"] == 256 * 1024
        loop = asyncio.get_running_loop()
        with pytest.raises(OSError):
            for _ in range(200):  # 12.5 MiB offered; the relay must stop near 256 KiB
                await loop.sock_sendall(ch.sock, b"x" * 65536)
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.1)
        assert 0 < sum(map(len, received)) <= 256 * 1024
        assert relay.stats()["circuits"] == 0
        ch.sock.close()
        await reservation.close()
        await relay.close()

    asyncio.run(scenario())


class _DeafReservation(RelayReservation):
    """A reserved peer that never accepts the circuits it is offered."""

    async def _accept(self, token: bytes) -> None:
        return None


def test_a_circuit_the_target_never_accepts_is_refused_after_the_accept_timeout() -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate(), limits=RelayLimits(accept_timeout=0.3))
        host, port = await relay.start()
        addr = (relay.identity.peer_id, host, port)
        target = Identity.generate()
        reservation = await _DeafReservation(target, addr, await _circuit_sink([])).open()
        with pytest.raises(RelayRefused) as err:
            await dial_relay(addr, target.peer_id, timeout=5.0)
        assert err.value.code == "accept_timeout"
        assert relay.stats()["circuits"] == 0
        await reservation.close()
        await relay.close()

    asyncio.run(scenario())


def test_circuit_is_cut_at_its_time_cap() -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate(), limits=RelayLimits(circuit_seconds=0.3))
        host, port = await relay.start()
        addr = (relay.identity.peer_id, host, port)
        target = Identity.generate()
        reservation = await RelayReservation(target, addr, await _circuit_sink([])).open()
        loop = asyncio.get_running_loop()
        started = loop.time()  # before the relay opens the circuit, so the cap cannot come sooner
        ch, _ = await dial_relay(addr, target.peer_id, timeout=5.0)
        assert await asyncio.wait_for(loop.sock_recv(ch.sock, 1), 5.0) == b""  # the relay hung up
        assert loop.time() - started >= 0.3
        ch.sock.close()
        await reservation.close()
        await relay.close()

    asyncio.run(scenario())


class _SwappingRelay(RelayServer):
    """A malicious relay that splices circuits for one peer to another peer."""

    swap_to: bytes = b""

    async def _connect(self, reader: Any, writer: Any, msg: dict[str, Any]) -> None:
        await super()._connect(reader, writer, {**msg, "target": self.swap_to})


def test_end_to_end_handshake_exposes_a_relay_that_swaps_peers() -> None:
    async def scenario() -> None:
        relay = _SwappingRelay(Identity.generate())
        host, port = await relay.start()
        addr = (relay.identity.peer_id, host, port)
        impostor = Identity.generate()
        transport, server = await relayed_endpoint(impostor, addr)
        relay.swap_to = impostor.peer_id
        honest = Identity.generate()  # the peer the dialer wants; it never reserved anything
        client_transport = NatTransport(punch=PunchConfig(enabled=False))
        client = RpcEndpoint(Identity.generate(), client_transport)
        wanted = PeerInfo(honest.peer_id, "127.0.0.1", 1, relay=addr)
        client_transport.add_route(wanted)
        with pytest.raises(PeerError, match="not the expected peer"):
            await client.connection(wanted)
        await client.close()
        await server.close()
        await transport.close()
        await relay.close()

    asyncio.run(scenario())


def test_adopted_circuit_carries_rpc_with_a_proven_peer_id() -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate())
        host, port = await relay.start()
        addr = (relay.identity.peer_id, host, port)
        target = Identity.generate()

        async def echo(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
            return {"x": body["x"], "you": caller.peer_id}

        transport, server = await relayed_endpoint(target, addr)
        server.register("echo", echo)
        me = Identity.generate()
        ch, _ = await dial_relay(addr, target.peer_id)
        outcome_sock = ch.sock
        await ch.send({"op": "punch", "addrs": [], "nonce": b"n" * 32})  # decline punching
        assert (await ch.recv(5.0))["op"] == "punch"
        await ch.send({"op": "use", "path": "relay"})
        conn = await TcpTransport(max_frame=1 << 20).adopt(outcome_sock)
        from sedma.net.rpc import RpcConnection

        client = RpcEndpoint(me, NatTransport(me))
        rpc = RpcConnection(conn, client, initiator=True)
        caller = await asyncio.wait_for(rpc.ready, 5.0)
        assert caller.peer_id == target.peer_id
        answer = await rpc.call("echo", {"x": b"through the relay"}, 5.0)
        assert answer == {"x": b"through the relay", "you": me.peer_id}
        assert list(transport.inbound_paths) == ["relay"]
        rpc.close()
        await server.close()
        await transport.close()
        await relay.close()

    asyncio.run(scenario())


# -- real processes ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def relay_and_target() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        relay = start_local(["relay"], procs)
        target = start_local(["target", "--node", "--relay", addr_arg(relay)], procs)  # a full Node
        yield relay, target
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=5)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_processes_reach_a_peer_only_through_the_relay(relay_and_target: tuple[dict[str, Any], ...]) -> None:
    relay, target = relay_and_target
    unreachable = addr_arg(target, host="127.0.0.1").rsplit(":", 1)[0] + f":{_closed_port()}"
    direct = dial_local(["--direct-only", "--target", unreachable])
    assert direct["ok"] is False
    via = dial_local(
        ["--relay", addr_arg(relay), "--target", unreachable, "--manifest", target["manifest"], "--no-punch"]
    )
    assert via["ok"] is True, via
    assert via["proven_peer_id"] == target["peer_id"]
    assert via["echo"] == "ping"
    assert via["path"] == "relay" and via["target_paths"][-1] == "relay"
    assert via["direct_error"]
    assert via["sha256"] == target["sha256"]  # 2.3 MiB tensor in CID-verified blocks over the circuit
    args = ["--relay", addr_arg(relay), "--target", unreachable, "--manifest", target["manifest"]]
    node = dial_local(["--node", "--no-punch", *args])
    assert node["ok"] is True, node  # a full Node's block exchange over the circuit
    assert node["path"] == "relay" and node["sha256"] == target["sha256"]


def test_a_lost_reservation_is_remade_when_the_relay_comes_back() -> None:
    async def scenario() -> None:
        relay_id = Identity.generate()
        relay = RelayServer(relay_id)
        host, port = await relay.start()
        addr = (relay_id.peer_id, host, port)
        target = Identity.generate()
        transport = NatTransport(target, punch=PunchConfig(enabled=False))
        first = await transport.reserve(addr)
        await relay.close()  # the relay restarts: every control connection drops
        await asyncio.wait_for(first.closed.wait(), 5.0)
        relay = RelayServer(relay_id)
        await relay.start(host, port)
        for _ in range(100):
            if transport.reservations and transport.reservations[-1] is not first:
                break
            await asyncio.sleep(0.05)
        assert transport.reservations and transport.reservations[-1] is not first
        ch, _ = await dial_relay(addr, target.peer_id, timeout=5.0)  # reachable again
        ch.sock.close()
        await transport.close()
        assert transport.reservations == []
        await relay.close()

    asyncio.run(scenario())


def test_connections_beyond_the_cap_are_closed_before_any_work() -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate(), limits=RelayLimits(max_connections=2))
        host, port = await relay.start()
        idle = [await asyncio.open_connection(host, port) for _ in range(2)]
        for reader, _ in idle:  # each got the greeting and holds a handshake slot
            assert len(await reader.readexactly(HEADER.size)) == HEADER.size
        reader, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(reader.read(), 5.0) == b""  # closed without a greeting
        for _, w in [*idle, (reader, writer)]:
            w.close()
        await relay.close()

    asyncio.run(scenario())


def test_circuits_beyond_the_per_peer_cap_are_refused_over_the_wire() -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate(), limits=RelayLimits(max_circuits_per_peer=2))
        host, port = await relay.start()
        addr = (relay.identity.peer_id, host, port)
        target = Identity.generate()
        reservation = await RelayReservation(target, addr, await _circuit_sink([])).open()
        held = [(await dial_relay(addr, target.peer_id, timeout=5.0))[0] for _ in range(2)]
        with pytest.raises(RelayRefused) as err:
            await dial_relay(addr, target.peer_id, timeout=5.0)
        assert err.value.code == "peer_circuits_full"
        held[0].sock.close()  # one circuit ends: the slot frees up
        for _ in range(100):
            if relay.stats()["circuits"] < 2:
                break
            await asyncio.sleep(0.02)
        again, _ = await dial_relay(addr, target.peer_id, timeout=5.0)
        for ch in (again, held[1]):
            ch.sock.close()
        await reservation.close()
        await relay.close()

    asyncio.run(scenario())


def test_a_frozen_relay_is_noticed_by_the_refresh_and_the_reservation_ends() -> None:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        doc = start_local(["relay"], procs)
        addr = (bytes.fromhex(doc["peer_id"]), doc["host"], int(doc["port"]))

        async def scenario() -> float:
            sink = await _circuit_sink([])
            reservation = RelayReservation(Identity.generate(), addr, sink, timeout=0.3, refresh_every=0.2)
            await reservation.open()
            await asyncio.sleep(0.5)
            assert not reservation.closed.is_set()  # refreshes answered while the relay runs
            procs[0].send_signal(signal.SIGSTOP)  # alive for TCP, silent for us
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(reservation.closed.wait(), 5.0)
            await reservation.close()
            return asyncio.get_running_loop().time() - started

        assert asyncio.run(scenario()) < 3.0  # refresh every 0.2 s, answer due within 0.3 s
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\n\r\n" + b"x" * 64,  # not our protocol at all
        HEADER.pack(MAGIC, VERSION, 2, 0, 1 << 30, 0),  # a 1 GiB body announced: refused unread
        HEADER.pack(MAGIC, VERSION, 2, 0, 3, 0) + b"\xc1\xc1\xc1",  # invalid msgpack
        pack({"op": "no-such-op"}),
        pack({"op": "reserve", "pub": b"k" * 32, "sig": b"s" * 64, "nonce": b"n" * 32}),  # forged
        pack({"op": "accept", "token": b"t" * 16}),  # a token nobody was given
    ],
)
def test_malformed_or_forged_input_is_dropped_and_the_relay_keeps_serving(garbage: bytes) -> None:
    async def scenario() -> None:
        relay = RelayServer(Identity.generate())
        host, port = await relay.start()
        reader, writer = await asyncio.open_connection(host, port)
        head = await reader.readexactly(HEADER.size)
        await reader.readexactly(body_length(head))  # the relay's greeting
        writer.write(garbage)
        rest = await asyncio.wait_for(reader.read(), 5.0)  # the relay answers at most an error, then hangs up
        assert rest == b"" or unpack(rest[: HEADER.size], rest[HEADER.size :])["op"] == "error"
        writer.close()
        assert relay.stats()["reservations"] == 0
        addr = (relay.identity.peer_id, host, port)
        ok = await RelayReservation(Identity.generate(), addr, await _circuit_sink([])).open()
        assert relay.stats()["reservations"] == 1
        await ok.close()
        await relay.close()

    asyncio.run(scenario())
