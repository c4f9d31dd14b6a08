"""Transports: a connection is a bidirectional stream of frames, whatever carries it.

:class:`Connection` and :class:`Transport` are the interface the RPC layer codes against;
:class:`TcpTransport` is the asyncio TCP backend, built on ``BufferedProtocol`` so large
payloads are received without intermediate copies, and :meth:`TcpTransport.adopt` wraps
sockets connected elsewhere (relayed circuits, punched holes: ``holepunch.NatTransport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, cast

from sedma.net.types import PeerError, PeerInfo, ProtocolError
from sedma.net.wire import MAX_FRAME, Frame, FrameDecoder, Lease, encode

FrameHandler = Callable[[Frame], None]
CloseHandler = Callable[[BaseException | None], None]
WRITE_HIGH_WATER = 4 * 1024 * 1024


class Connection(ABC):
    """One bidirectional frame stream to a remote endpoint."""

    remote: tuple[str, int]

    @abstractmethod
    def start(self, on_frame: FrameHandler, on_close: CloseHandler) -> None:
        """Begin delivering frames (in order) and the close event to the given callbacks."""

    @abstractmethod
    def write(self, kind: int, req_id: int, body: dict[str, Any] | None = None) -> None:
        """Queue one frame without waiting (small control frames)."""

    @abstractmethod
    async def send(self, kind: int, req_id: int, body: dict[str, Any] | None = None) -> None:
        """Queue one frame, then wait while the peer is not keeping up (backpressure)."""

    def expect_payload(self, req_id: int, into: Lease) -> None:
        """Receive the payload of the answer to ``req_id`` into ``into`` (a hint: may be ignored)."""
        return None

    def forget_payload(self, req_id: int) -> None:
        """Withdraw :meth:`expect_payload`; nothing is written into that buffer afterwards."""
        return None

    @abstractmethod
    def pause_reading(self) -> None:
        """Stop reading from the peer (our consumer is behind): TCP pushes back on it."""

    @abstractmethod
    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; ``on_close`` fires once."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...


class Listener(ABC):
    """A bound, accepting endpoint."""

    host: str
    port: int

    @abstractmethod
    async def close(self) -> None: ...


ConnectionHandler = Callable[[Connection], None]


class Transport(ABC):
    """Makes and accepts connections."""

    @abstractmethod
    async def connect(self, host: str, port: int, *, timeout: float) -> Connection: ...

    @abstractmethod
    async def listen(self, host: str, port: int, on_connection: ConnectionHandler) -> Listener: ...

    def add_route(self, peer: PeerInfo) -> None:
        """Note how to reach ``peer`` (its relay); transports without relays ignore it."""
        return None

    def stats(self) -> dict[str, int]:
        """Counters for metrics (none for plain transports)."""
        return {}

    async def close(self) -> None:
        """Release what the transport holds beyond connections (relay reservations)."""
        return None


class _FrameProtocol(asyncio.BufferedProtocol, Connection):
    """asyncio TCP connection speaking frames."""

    def __init__(self, on_made: ConnectionHandler | None = None, *, max_frame: int = MAX_FRAME):
        self._decoder = FrameDecoder(max_frame=max_frame)
        self._transport: asyncio.Transport | None = None
        self._on_made = on_made
        self._on_frame: FrameHandler | None = None
        self._on_close: CloseHandler | None = None
        self._early: list[Frame] = []
        self._drain: asyncio.Future[None] | None = None
        self._closed = False
        self._close_exc: BaseException | None = None
        self.remote = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.remote = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        if self._on_made is not None:
            self._on_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except ProtocolError as exc:
            # The stream is unrecoverable once framing breaks: drop the peer.
            self._abort(exc)
            return
        for frame in frames:
            if self._on_frame is None:
                self._early.append(frame)
            else:
                self._on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._close_exc = self._close_exc or exc
        self._wake_writer(PeerError(f"connection to {self.remote} closed"))
        if self._on_close is not None:
            handler, self._on_close = self._on_close, None
            handler(self._close_exc)

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer(None)

    def _wake_writer(self, exc: BaseException | None) -> None:
        fut, self._drain = self._drain, None
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
                fut.exception()  # a writer may not be waiting; do not warn "never retrieved"

    def _abort(self, exc: BaseException) -> None:
        self._close_exc = exc
        if self._transport is not None:
            self._transport.abort()

    # Connection interface
    def start(self, on_frame: FrameHandler, on_close: CloseHandler) -> None:
        self._on_frame, self._on_close = on_frame, on_close
        early, self._early = self._early, []
        for frame in early:
            on_frame(frame)
        if self._closed:
            self.connection_lost(None)

    def write(self, kind: int, req_id: int, body: dict[str, Any] | None = None) -> None:
        if self._closed or self._transport is None or self._transport.is_closing():
            raise PeerError(f"connection to {self.remote[0]}:{self.remote[1]} is closed")
        # One write per buffer: 3.11's writelines would join (copy) a 1 MiB payload first.
        for buf in encode(kind, req_id, body):
            self._transport.write(buf)

    async def send(self, kind: int, req_id: int, body: dict[str, Any] | None = None) -> None:
        self.write(kind, req_id, body)
        if self._drain is not None:
            await asyncio.shield(self._drain)

    def expect_payload(self, req_id: int, into: Lease) -> None:
        self._decoder.expect(req_id, into)

    def forget_payload(self, req_id: int) -> None:
        self._decoder.forget(req_id)

    def pause_reading(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.close()

    @property
    def closed(self) -> bool:
        return self._closed


class _TcpListener(Listener):
    def __init__(self, server: asyncio.Server) -> None:
        self._server = server
        sock = server.sockets[0].getsockname()
        self.host, self.port = str(sock[0]), int(sock[1])

    async def close(self) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 1.0)


class TcpTransport(Transport):
    """Frames over asyncio TCP; binds 127.0.0.1 unless told otherwise."""

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame

    async def connect(self, host: str, port: int, *, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _FrameProtocol(max_frame=self.max_frame), host, port),
                timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise PeerError(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from exc
        return proto

    async def adopt(self, sock: socket.socket) -> Connection:
        """Wrap an already connected socket (a relayed circuit, a punched hole) as a connection."""
        loop = asyncio.get_running_loop()
        try:
            _, proto = await loop.create_connection(
                lambda: _FrameProtocol(max_frame=self.max_frame), sock=sock
            )
        except OSError as exc:
            sock.close()
            raise PeerError(f"cannot use the connected socket: {exc}") from exc
        return proto

    async def listen(self, host: str, port: int, on_connection: ConnectionHandler) -> Listener:
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                lambda: _FrameProtocol(on_connection, max_frame=self.max_frame),
                host,
                port,
                family=socket.AF_INET if ":" not in host else socket.AF_INET6,
                reuse_address=True,
                backlog=512,
            )
        except OSError as exc:
            raise PeerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        return _TcpListener(server)
