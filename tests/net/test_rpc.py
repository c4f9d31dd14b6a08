"""RPC over real loopback TCP: handshake, request/response, streams, errors, reuse."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from sedma.net.holepunch import NatTransport
from sedma.net.identity import Identity
from sedma.net.pending import settle
from sedma.net.rpc import Caller, RemoteError, RpcConfig, RpcEndpoint
from sedma.net.transport import TcpTransport
from sedma.net.types import PeerError, PeerInfo
from sedma.net.wire import Kind


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


async def _pair(**cfg: Any) -> tuple[RpcEndpoint, RpcEndpoint, PeerInfo]:
    server = RpcEndpoint(Identity.generate(), TcpTransport(), config=RpcConfig(**cfg))
    client = RpcEndpoint(Identity.generate(), TcpTransport(), config=RpcConfig(**cfg))
    host, port = await server.listen("127.0.0.1", 0)

    async def echo(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "who": caller.peer_id}

    async def slow(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(float(body["s"]))
        return {}

    server.register("echo", echo)
    server.register("slow", slow)
    return server, client, PeerInfo(server.identity.peer_id, host, port)


def test_request_response_proves_both_identities_and_reuses_the_connection() -> None:
    async def main() -> None:
        server, client, peer = await _pair()
        big = b"\x07" * (1 << 20)
        out = await client.request(peer, "echo", {"x": 1, "data": big})
        assert out["x"] == 1 and out["data"] == big
        assert out["who"] == client.identity.peer_id  # the server saw the proven id
        await asyncio.gather(*(client.request(peer, "echo", {"i": i}) for i in range(50)))
        assert len(client.connected()) == 1  # one pooled connection for all requests
        await client.close()
        await server.close()

    run(main())


def test_request_soon_answers_errors_and_times_out_like_request() -> None:
    async def main() -> None:
        server, client, peer = await _pair()
        first = client.request_soon(peer, "echo", {"i": 0})  # no connection yet: dials first
        assert (await first)["i"] == 0
        rpc = await client.connection(peer)
        answers = [client.request_soon(peer, "echo", {"i": i}) for i in range(20)]
        assert [a["i"] for a in await asyncio.gather(*answers)] == list(range(20))
        with pytest.raises(RemoteError, match="unknown method"):
            await client.request_soon(peer, "nope", {})
        started = time.perf_counter()
        with pytest.raises(PeerError, match="timed out"):
            await client.request_soon(peer, "slow", {"s": 5}, timeout=0.2)
        assert time.perf_counter() - started < 1.0
        await asyncio.sleep(0)
        assert len(rpc._pending) == 0  # answered, failed and expired requests leave nothing behind
        await server.close()
        await asyncio.sleep(0.05)
        with pytest.raises(PeerError):
            await client.request_soon(peer, "echo", {})  # closed: fails, never hangs
        await client.close()

    run(main())


def test_dialling_an_address_with_the_wrong_peer_id_fails() -> None:
    async def main() -> None:
        server, client, peer = await _pair()
        impostor = PeerInfo(Identity.generate().peer_id, peer.host, peer.port)
        with pytest.raises(PeerError, match="not the expected peer"):
            await client.request(impostor, "echo", {})
        await client.close()
        await server.close()

    run(main())


def test_unknown_method_and_unknown_frame_kind_get_error_answers() -> None:
    async def main() -> None:
        server, client, peer = await _pair()
        with pytest.raises(RemoteError, match="unknown method") as info:
            await client.request(peer, "nope", {})
        assert info.value.code == "unknown_method"
        rpc = await client.connection(peer)
        fut = asyncio.get_running_loop().create_future()
        rpc._pending.add(99, "probe", 5.0, settle(fut), now=asyncio.get_running_loop().time())
        rpc.conn.write(77, 99, {})  # a frame kind no peer knows
        with pytest.raises(RemoteError, match="unknown frame kind 77"):
            await fut
        await client.close()
        await server.close()

    run(main())


def test_timeout_raises_peer_error_quickly_and_connection_survives() -> None:
    async def main() -> None:
        server, client, peer = await _pair()
        t0 = time.perf_counter()
        with pytest.raises(PeerError, match="timed out"):
            await client.request(peer, "slow", {"s": 5}, timeout=0.2)
        assert time.perf_counter() - t0 < 1.0
        assert (await client.request(peer, "echo", {"ok": True}))["ok"] is True
        await client.close()
        await server.close()

    run(main())


def test_dead_address_fails_fast() -> None:
    async def main() -> None:
        client = RpcEndpoint(Identity.generate(), TcpTransport())
        probe = RpcEndpoint(Identity.generate(), TcpTransport())
        _, port = await probe.listen()
        await probe.close()  # the port is now closed: connection refused
        t0 = time.perf_counter()
        with pytest.raises(PeerError, match="cannot connect"):
            await client.request(PeerInfo(b"", "127.0.0.1", port), "echo", {})
        assert time.perf_counter() - t0 < 0.5

    run(main())


def test_stream_is_paced_by_the_reader_window() -> None:
    async def main() -> None:
        server, client, peer = await _pair(stream_window=4)
        produced: list[int] = []

        async def count(caller: Caller, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
            for i in range(int(body["n"])):
                produced.append(i)
                yield {"i": i}

        server.register_stream("count", count)
        seen = []
        async for item in client.stream(peer, "count", {"n": 20}):
            seen.append(item["i"])
            if len(seen) == 2:
                await asyncio.sleep(0.1)
                # The producer may run at most one window ahead of what we consumed.
                assert len(produced) <= 2 + 4 + 1
        assert seen == list(range(20))
        await client.close()
        await server.close()

    run(main())


def test_handler_errors_come_back_as_one_line_and_server_keeps_serving() -> None:
    async def main() -> None:
        server, client, peer = await _pair()

        async def bad(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
            raise ValueError("field 'x' must be positive, got -1")

        server.register("bad", bad)
        with pytest.raises(RemoteError, match="must be positive"):
            await client.request(peer, "bad", {})
        assert "who" in await client.request(peer, "echo", {})
        await client.close()
        await server.close()

    run(main())


def test_frames_before_handshake_close_the_connection() -> None:
    async def main() -> None:
        server, _, peer = await _pair()
        conn = await TcpTransport().connect(peer.host, peer.port, timeout=1)
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.start(lambda f: None, lambda e: closed.done() or closed.set_result(None))
        conn.write(Kind.REQUEST, 1, {"_m": "echo"})
        await asyncio.wait_for(closed, 3)
        await server.close()

    run(main())


def test_inbound_requests_beyond_max_inflight_wait_and_all_complete() -> None:
    async def main() -> None:
        server, client, peer = await _pair(max_inflight=3)
        running, peak = 0, 0

        async def busy(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1
            return {"i": body["i"]}

        server.register("busy", busy)
        out = await asyncio.gather(*(client.request(peer, "busy", {"i": i}) for i in range(30)))
        assert [o["i"] for o in out] == list(range(30))
        assert peak == 3  # never more handlers at once than the bound
        await client.close()
        await server.close()

    run(main())


def test_handshake_with_a_borrowed_public_key_is_refused() -> None:
    async def main() -> None:
        server, _, peer = await _pair()
        victim, thief = Identity.generate(), Identity.generate()
        seen: list[bytes] = []
        server.on_peer.append(lambda caller, rpc: seen.append(caller.peer_id))
        conn = await TcpTransport().connect(peer.host, peer.port, timeout=1)
        frames: asyncio.Queue[Any] = asyncio.Queue()
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.start(frames.put_nowait, lambda e: closed.done() or closed.set_result(None))
        conn.write(Kind.HELLO, 0, {"pub": victim.public, "nonce": b"n" * 32, "listen": None, "load": None})
        reply = await asyncio.wait_for(frames.get(), 3)
        forged = thief.sign(b"sedma-handshake-v1" + b"I" + reply.body["nonce"] + victim.public)
        conn.write(Kind.HELLO, 0, {"sig": forged})
        conn.write(Kind.REQUEST, 1, {"_m": "echo"})
        await asyncio.wait_for(closed, 3)  # dropped, and the request never answered
        assert frames.empty() and seen == []
        await server.close()

    run(main())


def test_idle_connections_are_closed_and_redialled_on_demand() -> None:
    async def main() -> None:
        server, client, peer = await _pair(idle_timeout=0.2)
        await client.request(peer, "echo", {})
        slow = asyncio.ensure_future(client.request(peer, "slow", {"s": 0.5}))
        await asyncio.sleep(0.3)
        assert client.close_idle() == 0  # a request is outstanding: not idle
        await slow
        await asyncio.sleep(0.25)
        assert client.close_idle() == 1
        await asyncio.sleep(0.05)
        assert client.connected() == []
        assert "who" in await client.request(peer, "echo", {})  # dialled again
        await client.close()
        await server.close()

    run(main())


def test_handshake_carries_the_relay_and_the_far_side_routes_through_it() -> None:
    async def main() -> None:
        server = RpcEndpoint(Identity.generate(), NatTransport())
        client = RpcEndpoint(Identity.generate(), NatTransport())
        host, port = await server.listen("127.0.0.1", 0)
        await client.listen("127.0.0.1", 0)
        relay = (b"\x12\x20" + b"r" * 32, "127.0.0.1", 9)
        client.relay = relay  # as a node behind a NAT sets it after reserving
        seen: list[Caller] = []

        async def who(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
            seen.append(caller)
            return {}

        server.register("who", who)
        await client.request(PeerInfo(server.identity.peer_id, host, port), "who", {})
        info = seen[0].info
        assert info is not None and info.relay == relay and info.peer_id == client.identity.peer_id
        assert isinstance(server.transport, NatTransport)
        assert server.transport.routes[(info.host, info.port)] == info
        # Dialling back: the direct attempt comes first and works here (loopback is public).
        client.register("who", who)
        server.close_connections()
        await asyncio.sleep(0.05)
        await server.request(info, "who", {})
        assert server.transport.paths[client.identity.peer_id] == "direct"
        await client.close()
        await server.close()

    run(main())


def test_each_request_expires_at_its_own_deadline_on_a_shared_connection() -> None:
    async def main() -> None:
        server, client, peer = await _pair()
        await client.request(peer, "echo", {})  # connect first: only the requests are timed
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def timed(s: float, timeout: float) -> tuple[str, float]:
            try:
                await client.request(peer, "slow", {"s": s}, timeout=timeout)
                outcome = "answered"
            except PeerError:
                outcome = "timed out"
            return outcome, loop.time() - t0

        # A long deadline armed first, then a shorter one, then one answered in time.
        late, early, fine = await asyncio.gather(timed(5, 1.2), timed(5, 0.3), timed(0.5, 2.0))
        assert early[0] == "timed out" and 0.25 <= early[1] < 0.8
        assert fine[0] == "answered" and fine[1] >= 0.5
        assert late[0] == "timed out" and 1.15 <= late[1] < 2.0
        assert (await client.request(peer, "echo", {"ok": 1}))["ok"] == 1  # connection survives
        await client.close()
        await server.close()

    run(main())
