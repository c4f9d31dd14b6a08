"""Circuit relay: a public peer lends its address to peers behind a NAT.

A NATed peer opens a *control* connection to the relay and reserves a slot (both sides sign
the other's nonce, so the relay knows the slot belongs to that peer id and the peer knows it
talks to the relay it meant). A dialer asks the relay to CONNECT it to that peer id; the relay
tells the peer over its control connection, the peer opens a fresh outbound connection and
ACCEPTs the circuit, and from then on the relay copies bytes blindly between the two sockets.
The relay never sees a frame of the end-to-end protocol, so the usual RPC handshake run over
the circuit still proves the far peer's id: a relay cannot impersonate anyone.

Limits (reservations, circuits in total and per peer, bytes and seconds per circuit) are kept
in :class:`~sedma.net.relay_limits.RelayBook`, plain bookkeeping with the clock passed in, so
they are unit-tested without sockets. The messages are wire frames (:mod:`sedma.net.wire`) with small msgpack
bodies, read with exact lengths so no byte of the spliced stream is ever consumed by mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sedma.net.identity import Identity, peer_id_from_public, peer_id_text, verify
from sedma.net.relay_limits import Circuit, RelayBook, RelayLimits, RelayRefused, circuit_verdict
from sedma.net.types import PeerError, ProtocolError, RelayAddr
from sedma.net.wire import HEADER, HEADER_SIZE, MAGIC, VERSION, FrameDecoder, Kind, encode

log = logging.getLogger("sedma.net.relay")
MAX_CONTROL = 4096  # relay messages are tiny; anything larger is an attack or a bug
_CTX_RESERVE = b"sedma-relay-v1/reserve"
_CTX_RELAY = b"sedma-relay-v1/relay"

Address = tuple[str, int]


# -- messages -------------------------------------------------------------------------------------
def pack(body: dict[str, Any]) -> bytes:
    """One relay message as bytes (a wire frame with a small msgpack body)."""
    return b"".join(bytes(part) for part in encode(Kind.REQUEST, 0, body))


def body_length(head: bytes) -> int:
    """Validate a relay message header and return its body length (refusing large bodies)."""
    magic, version, _kind, _req, meta_len, pay_len = HEADER.unpack(head)
    if magic != MAGIC or version != VERSION:
        raise ProtocolError(f"not a sedma relay message (magic {bytes(magic)!r}, version {version})")
    if pay_len or meta_len > MAX_CONTROL:
        raise ProtocolError(f"relay message of {meta_len + pay_len} bytes refused (max {MAX_CONTROL})")
    return int(meta_len)


def unpack(head: bytes, meta: bytes) -> dict[str, Any]:
    frames = FrameDecoder(max_frame=MAX_CONTROL).feed(head + meta)
    if len(frames) != 1:
        raise ProtocolError("relay message did not decode to one frame")
    return frames[0].body


def address_to_wire(addr: Address | None) -> list[Any] | None:
    return None if addr is None else [addr[0], addr[1]]


def address_from_wire(raw: Any) -> Address | None:
    if isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str) and isinstance(raw[1], int):
        return (raw[0], raw[1])
    return None


def refusal(body: dict[str, Any], what: str) -> RelayRefused:
    return RelayRefused(f"{what}: {body.get('message', 'refused')}", code=str(body.get("code", "error")))


async def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a non-blocking socket (PeerError if it closes first)."""
    loop = asyncio.get_running_loop()
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = await loop.sock_recv_into(sock, view[got:])
        if k == 0:
            raise PeerError("connection closed")
        got += k
    return bytes(buf)


class SocketChannel:
    """Relay messages on a plain non-blocking socket, read with exact lengths.

    Exact reads matter: once a circuit is up, the next byte belongs to the end-to-end stream
    and must still be in the kernel buffer when the socket is handed to the transport.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._loop = asyncio.get_running_loop()

    async def send(self, body: dict[str, Any]) -> None:
        await self._loop.sock_sendall(self.sock, pack(body))

    async def recv(self, timeout: float | None) -> dict[str, Any]:
        async def one() -> dict[str, Any]:
            head = await recv_exact(self.sock, HEADER_SIZE)
            return unpack(head, await recv_exact(self.sock, body_length(head)))

        try:
            return await asyncio.wait_for(one(), timeout)
        except TimeoutError as exc:
            raise PeerError(f"relay did not answer within {timeout} s") from exc


def reuse_socket(local: Address) -> socket.socket:
    """A TCP socket bound to ``local`` that may share its port with our other such sockets
    (hole punching listens and dials from the relay connection's port); IPv6 for v6 literals."""
    v6 = ":" in local[0]
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(local)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def open_channel(addr: Address, *, timeout: float) -> SocketChannel:
    """Connect to ``addr`` from a port-sharing socket, so hole punching can reuse its port."""
    # An explicit bind makes the port ours: a kernel-chosen port for connect() may be shared
    # with other connections, and then the hole punch could not listen or dial from it.
    sock = reuse_socket(("::" if ":" in addr[0] else "0.0.0.0", 0))
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, addr), timeout)
    except (OSError, TimeoutError) as exc:
        sock.close()
        raise PeerError(f"cannot reach relay {addr[0]}:{addr[1]}: {exc or 'timed out'}") from exc
    return SocketChannel(sock)


def relay_proof(identity: Identity, nonce: bytes, peer_id: bytes) -> bytes:
    return identity.sign(_CTX_RELAY + nonce + peer_id)


def reserve_proof(identity: Identity, nonce: bytes, relay_id: bytes) -> bytes:
    return identity.sign(_CTX_RESERVE + nonce + relay_id)


def check_reserve_proof(public: Any, sig: Any, nonce: bytes, relay_id: bytes) -> bytes:
    """The peer id proven by a RESERVE message's signature over our nonce."""
    if not (isinstance(public, bytes) and isinstance(sig, bytes)):
        raise ProtocolError("RESERVE without a public key and signature")
    if not verify(public, sig, _CTX_RESERVE + nonce + relay_id):
        raise ProtocolError("RESERVE signature does not prove the claimed key")
    return peer_id_from_public(public)


def check_relay_proof(greeting: dict[str, Any], reply: dict[str, Any], nonce: bytes, me: bytes) -> bytes:
    """The relay's peer id, proven by its signature over our nonce and our peer id."""
    public = greeting.get("pub")
    sig = reply.get("sig")
    if not (
        isinstance(public, bytes) and isinstance(sig, bytes) and verify(public, sig, _CTX_RELAY + nonce + me)
    ):
        raise ProtocolError("relay's signature does not prove its key")
    return peer_id_from_public(public)


# -- the relay service ----------------------------------------------------------------------------
async def _read_msg(reader: asyncio.StreamReader, timeout: float | None) -> dict[str, Any]:
    head = await asyncio.wait_for(reader.readexactly(HEADER_SIZE), timeout)
    return unpack(head, await asyncio.wait_for(reader.readexactly(body_length(head)), timeout))


def _send(writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
    writer.write(pack(body))


def _observed(writer: asyncio.StreamWriter) -> Address:
    peer = writer.get_extra_info("peername")
    return (str(peer[0]), int(peer[1])) if peer else ("", 0)


@dataclass
class _Pending:
    """A circuit admitted by the book, waiting for its target to ACCEPT it."""

    dialer: Address
    arrived: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter, Address]]


class RelayServer:
    """The relay peer's service: reservations, circuit set-up and the byte splice."""

    def __init__(self, identity: Identity, *, limits: RelayLimits | None = None) -> None:
        self.identity = identity
        self.book = RelayBook((limits or RelayLimits()).validate())
        self.address: Address | None = None
        self.carried = 0  # bytes spliced over all circuits (metrics)
        self.circuits_done = 0
        self._controls: dict[bytes, asyncio.StreamWriter] = {}
        self._pending: dict[bytes, _Pending] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Address:
        """Listen for relay clients; binds loopback unless told otherwise."""
        try:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        except OSError as exc:
            raise PeerError(f"relay cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        sock = self._server.sockets[0].getsockname()
        self.address = (str(sock[0]), int(sock[1]))
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._controls.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stats(self) -> dict[str, int]:
        """Counters for metrics: reservations, live circuits, circuits finished, bytes carried."""
        return {
            "reservations": len(self.book.reservations),
            "circuits": len(self.book.circuits),
            "circuits_done": self.circuits_done,
            "bytes_carried": self.carried,
        }

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= self.book.limits.max_connections:
            writer.close()  # at capacity: refuse before spending a signature or a buffer
            return
        self._tasks.add(task)
        nonce = os.urandom(32)
        keep_open = False
        try:
            _send(writer, {"op": "relay", "pub": self.identity.public, "nonce": nonce})
            msg = await _read_msg(reader, self.book.limits.accept_timeout)
            op = msg.get("op")
            if op == "reserve":
                await self._control(reader, writer, msg, nonce)
            elif op == "connect":
                await self._connect(reader, writer, msg)
            elif op == "accept":
                keep_open = self._accept(reader, writer, msg)
            else:
                _send(writer, {"op": "error", "code": "bad_request", "message": f"unknown op {op!r}"})
        except RelayRefused as exc:
            _send(writer, {"op": "error", "code": exc.code, "message": str(exc)})
        except (ProtocolError, PeerError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("relay client %s dropped: %s", _observed(writer), exc)
        except asyncio.CancelledError:
            pass  # relay shutting down; asyncio's stream callback would log a cancelled task
        finally:
            self._tasks.discard(task)
            if not keep_open:
                with contextlib.suppress(OSError):
                    writer.close()

    async def _control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, msg: dict[str, Any], nonce: bytes
    ) -> None:
        peer_id = check_reserve_proof(msg.get("pub"), msg.get("sig"), nonce, self.identity.peer_id)
        their_nonce = msg.get("nonce")
        if not isinstance(their_nonce, bytes):
            raise ProtocolError("RESERVE without a nonce")
        owner = id(writer)
        expires = self.book.reserve(peer_id, owner, time.monotonic())
        old = self._controls.get(peer_id)
        self._controls[peer_id] = writer
        if old is not None and old is not writer:
            old.close()  # the peer reconnected: its previous control connection is stale
        _send(writer, self._granted(expires, writer, relay_proof(self.identity, their_nonce, peer_id)))
        try:
            while True:  # refreshes until the peer goes away
                if (await _read_msg(reader, None)).get("op") == "refresh":
                    expires = self.book.reserve(peer_id, owner, time.monotonic())
                    _send(writer, self._granted(expires, writer, None))
        finally:
            if self.book.release(peer_id, owner):
                self._controls.pop(peer_id, None)

    def _granted(self, expires: float, writer: asyncio.StreamWriter, sig: bytes | None) -> dict[str, Any]:
        limits = self.book.limits
        return {
            "op": "ok",
            "ttl": expires - time.monotonic(),
            "observed": address_to_wire(_observed(writer)),
            "limit_bytes": limits.circuit_bytes,
            "limit_seconds": limits.circuit_seconds,
            **({"sig": sig} if sig is not None else {}),
        }

    async def _connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, msg: dict[str, Any]
    ) -> None:
        target = msg.get("target")
        if not isinstance(target, bytes):
            raise ProtocolError("CONNECT without a target peer id")
        token = secrets.token_bytes(16)
        circuit = self.book.open_circuit(target, token, time.monotonic())
        try:
            pending = _Pending(_observed(writer), asyncio.get_running_loop().create_future())
            self._pending[token] = pending
            control = self._controls.get(target)
            if control is None or control.is_closing():
                raise RelayRefused("the reserved peer's control connection is gone", code="target_gone")
            _send(control, {"op": "incoming", "token": token, "from": address_to_wire(pending.dialer)})
            try:
                t_reader, t_writer, t_addr = await asyncio.wait_for(
                    pending.arrived, self.book.limits.accept_timeout
                )
            except TimeoutError as exc:
                raise RelayRefused(
                    "target did not accept the circuit in time", code="accept_timeout"
                ) from exc
            _send(writer, self._circuit_ok(pending.dialer, t_addr))
            await self._splice((reader, writer), (t_reader, t_writer), circuit)
        finally:
            self._pending.pop(token, None)
            self.book.close_circuit(token)

    def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, msg: dict[str, Any]
    ) -> bool:
        token = msg.get("token")
        pending = self._pending.get(token) if isinstance(token, bytes) else None
        if pending is None or pending.arrived.done():
            raise RelayRefused("unknown or expired circuit token", code="bad_token")
        _send(writer, self._circuit_ok(_observed(writer), pending.dialer))
        pending.arrived.set_result((reader, writer, _observed(writer)))
        return True  # the CONNECT side now owns this connection and closes it after the splice

    def _circuit_ok(self, observed: Address, other: Address) -> dict[str, Any]:
        limits = self.book.limits
        return {
            "op": "ok",
            "observed": address_to_wire(observed),
            "peer_observed": address_to_wire(other),
            "limit_bytes": limits.circuit_bytes,
            "limit_seconds": limits.circuit_seconds,
        }

    async def _splice(
        self,
        a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        circuit: Circuit,
    ) -> None:
        """Copy bytes both ways until both ends finish or a cap is reached, then close both."""
        limits = self.book.limits
        carried = [0]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(256 * 1024):
                carried[0] += len(data)
                self.carried += len(data)
                if circuit_verdict(
                    limits, carried=carried[0], opened_at=circuit.opened_at, now=time.monotonic()
                ):
                    raise PeerError("circuit cap reached")
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()  # pass the half-close on; the other direction may still flow

        left = limits.circuit_seconds - (time.monotonic() - circuit.opened_at)
        pumps = [asyncio.ensure_future(pump(a[0], b[1])), asyncio.ensure_future(pump(b[0], a[1]))]
        try:
            done, _ = await asyncio.wait(pumps, timeout=left, return_when=asyncio.FIRST_EXCEPTION)
            if len(done) < 2:
                log.info("circuit to %s cut: %s", peer_id_text(circuit.target)[:16], "cap or error")
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for _, writer in (a, b):
                with contextlib.suppress(OSError):
                    writer.close()
            self.circuits_done += 1


# -- the client side: reserving a slot, dialling through the relay ---------------------------------
CircuitHandler = Callable[[SocketChannel, dict[str, Any]], Awaitable[None]]


async def _greeted(relay: RelayAddr, *, timeout: float) -> tuple[SocketChannel, dict[str, Any]]:
    """A fresh connection to the relay and its greeting, checked against the expected peer id."""
    ch = await open_channel((relay[1], relay[2]), timeout=timeout)
    try:
        greeting = await ch.recv(timeout)
        public = greeting.get("pub")
        if greeting.get("op") != "relay" or not isinstance(public, bytes):
            raise ProtocolError(f"{relay[1]}:{relay[2]} is not a sedma relay")
        if peer_id_from_public(public) != relay[0]:
            who = peer_id_text(peer_id_from_public(public))[:16]
            raise PeerError(f"{relay[1]}:{relay[2]} is {who}, not the expected relay")
    except BaseException:
        ch.sock.close()
        raise
    return ch, greeting


async def dial_relay(
    relay: RelayAddr, target: bytes, *, timeout: float = 10.0
) -> tuple[SocketChannel, dict[str, Any]]:
    """Open a circuit to ``target`` through ``relay``; return the channel and the relay's answer.

    The answer holds ``observed`` (our address as the relay sees it) and ``peer_observed``
    (the target's), which hole punching uses. The channel's socket then carries raw bytes.
    """
    ch, _ = await _greeted(relay, timeout=timeout)
    try:
        await ch.send({"op": "connect", "target": target})
        reply = await ch.recv(timeout)
        if reply.get("op") != "ok":
            raise refusal(reply, f"relay {relay[1]}:{relay[2]} refused the circuit")
    except BaseException:
        ch.sock.close()
        raise
    return ch, reply


class RelayReservation:
    """A NATed peer's slot on a relay: the control connection and the circuits it accepts.

    ``on_circuit`` gets each accepted circuit's channel (raw bytes from then on) and the
    relay's answer; it owns the socket from that moment.
    """

    def __init__(
        self,
        identity: Identity,
        relay: RelayAddr,
        on_circuit: CircuitHandler,
        *,
        timeout: float = 5.0,
        refresh_every: float | None = None,
    ) -> None:
        self.identity = identity
        self.relay = relay
        self.on_circuit = on_circuit
        self.timeout = timeout
        self.refresh_every = refresh_every
        self.observed: Address | None = None
        self.ttl = 0.0
        self.accepted = 0
        self._granted_at = 0.0
        self._tasks: set[asyncio.Future[None]] = set()
        self._control: asyncio.Future[None] | None = None
        self.closed: asyncio.Event = asyncio.Event()
        self.stopped = False  # closed on purpose (not lost)

    async def open(self) -> RelayReservation:
        """Reserve the slot (mutually authenticated) and start serving incoming circuits."""
        ch, greeting = await _greeted(self.relay, timeout=self.timeout)
        try:
            nonce = os.urandom(32)
            their = greeting.get("nonce")
            if not isinstance(their, bytes):
                raise ProtocolError("relay greeting without a nonce")
            sig = reserve_proof(self.identity, their, self.relay[0])
            await ch.send({"op": "reserve", "pub": self.identity.public, "sig": sig, "nonce": nonce})
            reply = await ch.recv(self.timeout)
            if reply.get("op") != "ok":
                raise refusal(reply, "relay refused the reservation")
            check_relay_proof(greeting, reply, nonce, self.identity.peer_id)
        except BaseException:
            ch.sock.close()
            raise
        self._granted(reply)
        self._control = self._spawn(self._control_loop(ch))
        if self.refresh_every:
            self._spawn(self._refresh_loop(ch, self.refresh_every))
        return self

    def _granted(self, reply: dict[str, Any]) -> None:
        self.observed = address_from_wire(reply.get("observed"))
        self.ttl = float(reply.get("ttl", 0.0))
        self._granted_at = time.monotonic()

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _control_loop(self, ch: SocketChannel) -> None:
        try:
            while True:
                msg = await ch.recv(None)
                if msg.get("op") == "incoming" and isinstance(msg.get("token"), bytes):
                    self._spawn(self._accept(msg["token"]))
                elif msg.get("op") == "ok":
                    self._granted(msg)
        except (PeerError, ProtocolError, OSError) as exc:
            log.info("relay reservation at %s:%s ended: %s", self.relay[1], self.relay[2], exc)
        finally:
            ch.sock.close()  # only here, once nothing waits on the socket any more
            self.closed.set()

    async def _refresh_loop(self, ch: SocketChannel, every: float) -> None:
        """Renew the slot (and keep the NAT mapping warm); a relay that stops answering within
        ``timeout`` is treated as gone, so a keeper can re-reserve instead of waiting for TCP."""
        while True:
            await asyncio.sleep(every)
            sent = time.monotonic()
            try:
                await ch.send({"op": "refresh"})
            except OSError:
                self._lost()
                return
            await asyncio.sleep(self.timeout)
            if self._granted_at < sent:
                log.info("relay %s:%s stopped answering refreshes", self.relay[1], self.relay[2])
                self._lost()
                return

    def _lost(self) -> None:
        if self._control is not None:
            self._control.cancel()

    async def _accept(self, token: bytes) -> None:
        try:
            ch, _ = await _greeted(self.relay, timeout=self.timeout)
        except (PeerError, ProtocolError) as exc:
            log.warning("cannot accept a relayed circuit: %s", exc)
            return
        try:
            await ch.send({"op": "accept", "token": token})
            reply = await ch.recv(self.timeout)
            if reply.get("op") != "ok":
                raise refusal(reply, "relay dropped the circuit")
        except (PeerError, ProtocolError, OSError) as exc:
            ch.sock.close()
            log.warning("relayed circuit failed: %s", exc)
            return
        self.accepted += 1
        await self.on_circuit(ch, reply)

    async def close(self) -> None:
        self.stopped = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.closed.set()
