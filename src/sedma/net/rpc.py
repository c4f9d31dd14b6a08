"""Request/response and streaming RPC over any :class:`~sedma.net.transport.Connection`.

Each connection starts with a three-message handshake in which both sides sign the other's
fresh nonce with their Ed25519 key, so a peer id is proven, never just claimed. After it, frames
carry request ids; requests may be answered once (RESPONSE / ERROR) or as a stream (STREAM
items then STREAM_END) paced by CREDIT frames from the reader. Connections are pooled by peer
id and reused; inbound requests beyond ``max_inflight`` pause reading so TCP pushes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sedma.errors import ConfigError, SedmaError, require_positive
from sedma.net.identity import Identity, peer_id_from_public, peer_id_text, verify
from sedma.net.pending import Pending, Reply, deliver, settle
from sedma.net.transport import Connection, Listener, Transport
from sedma.net.types import (
    PeerError,
    PeerInfo,
    PeerLoad,
    ProtocolError,
    RelayAddr,
    relay_from_wire,
    relay_to_wire,
)
from sedma.net.wire import RECEIVE_INTO, Frame, Kind

log = logging.getLogger("sedma.net.rpc")
_HS_CONTEXT = b"sedma-handshake-v1"
METHOD_KEY = "_m"
STREAM_KEY = "_s"


class RemoteError(PeerError):
    """The peer answered a request with an error frame."""

    def __init__(self, message: str, *, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RpcConfig:
    """Timeouts and flow-control limits of one RPC endpoint."""

    connect_timeout: float = 2.0
    handshake_timeout: float = 2.0
    request_timeout: float = 10.0
    max_inflight: int = 256  # inbound requests handled at once per connection
    stream_window: int = 8  # stream items the sender may have in flight
    idle_timeout: float = 300.0  # a connection unused this long is closed (re-dialled on demand)
    # Reaching a peer behind a NAT costs a failed direct dial, a circuit and a hole-punch
    # attempt (up to 2 s) whatever the request's own timeout; only the dial gets this long.
    relayed_connect_timeout: float = 6.0

    def validate(self) -> RpcConfig:
        timeouts = ("connect_timeout", "handshake_timeout", "request_timeout", "idle_timeout")
        require_positive(self, (*timeouts, "relayed_connect_timeout"))
        if self.max_inflight < 1 or self.stream_window < 1:
            raise ConfigError("RpcConfig.max_inflight and stream_window must be >= 1")
        return self


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated remote side of a request, as handlers see it."""

    peer_id: bytes
    public: bytes
    info: PeerInfo | None  # None for clients that do not listen (CLI)
    load: PeerLoad | None


Handler = Callable[[Caller, dict[str, Any]], Awaitable[dict[str, Any]]]
SyncHandler = Callable[[Caller, dict[str, Any]], dict[str, Any]]
StreamHandler = Callable[[Caller, dict[str, Any]], AsyncIterator[dict[str, Any]]]
PeerHook = Callable[[Caller, "RpcConnection"], None]


def load_to_wire(load: PeerLoad | None) -> list[float] | None:
    return None if load is None else [load.idle_fraction, load.mem_free_gb, load.measured_at]


def load_from_wire(raw: Any) -> PeerLoad | None:
    if not (isinstance(raw, list) and len(raw) == 3 and all(isinstance(v, int | float) for v in raw)):
        return None
    return PeerLoad(idle_fraction=float(raw[0]), mem_free_gb=float(raw[1]), measured_at=float(raw[2]))


def _transcript(role: bytes, nonce: bytes, public: bytes) -> bytes:
    return _HS_CONTEXT + role + nonce + public


class RpcConnection:
    """One authenticated connection: pending requests, inbound handlers, streams."""

    def __init__(self, conn: Connection, endpoint: RpcEndpoint, *, initiator: bool) -> None:
        self.conn = conn
        self.endpoint = endpoint
        self.initiator = initiator
        self.caller: Caller | None = None
        self.ready: asyncio.Future[Caller] = asyncio.get_running_loop().create_future()
        self._nonce = os.urandom(32)
        self._state = "hello"
        self._ids = itertools.count(1)
        self._loop = asyncio.get_running_loop()
        self._pending = Pending(self._loop, str(conn.remote))
        self.last_used = self._loop.time()
        self._streams: dict[int, asyncio.Queue[Frame]] = {}
        self._credits: dict[int, asyncio.Queue[int]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._inflight = 0
        self._paused = False
        self._backlog: deque[tuple[int, str, dict[str, Any], Any]] = deque()
        conn.start(self._on_frame, self._on_close)
        if initiator:
            conn.write(Kind.HELLO, 0, endpoint.hello_body(self._nonce))

    # -- handshake ---------------------------------------------------------------------------
    def _on_hello(self, body: dict[str, Any]) -> None:
        ident = self.endpoint.identity
        if self._state == "hello":
            public, nonce = body.get("pub"), body.get("nonce")
            if not (isinstance(public, bytes) and isinstance(nonce, bytes) and len(nonce) == 32):
                raise ProtocolError("malformed HELLO")
            if self.initiator:
                self._check_proof(public, body.get("sig"), b"R")
                proof = ident.sign(_transcript(b"I", nonce, ident.public))
                self.conn.write(Kind.HELLO, 0, {"sig": proof})
                self._open(public, body)
            else:
                reply = self.endpoint.hello_body(self._nonce)
                reply["sig"] = ident.sign(_transcript(b"R", nonce, ident.public))
                self.conn.write(Kind.HELLO, 0, reply)
                self._hello, self._state = (public, body), "proof"
        elif self._state == "proof":
            public, hello = self._hello
            self._check_proof(public, body.get("sig"), b"I")
            self._open(public, hello)
        else:
            raise ProtocolError("unexpected HELLO after the handshake")

    def _check_proof(self, public: bytes, sig: Any, role: bytes) -> None:
        message = _transcript(role, self._nonce, public)
        if not (isinstance(sig, bytes) and verify(public, sig, message)):
            raise ProtocolError("handshake signature does not prove the claimed key")

    def _open(self, public: bytes, hello: dict[str, Any]) -> None:
        peer_id = peer_id_from_public(public)
        info = None
        listen = hello.get("listen")
        if isinstance(listen, list) and len(listen) == 2 and isinstance(listen[1], int):
            host = str(listen[0]) if listen[0] not in ("0.0.0.0", "::", "") else self.conn.remote[0]
            info = PeerInfo(peer_id, host, int(listen[1]), relay_from_wire(hello.get("relay")))
        self.caller = Caller(peer_id, public, info, load_from_wire(hello.get("load")))
        self._state = "open"
        if not self.ready.done():
            self.ready.set_result(self.caller)

    # -- frames ------------------------------------------------------------------------------
    def _on_frame(self, frame: Frame) -> None:
        self.last_used = self._loop_time()
        try:
            self._dispatch(frame)
        except ProtocolError as exc:
            log.warning("protocol error from %s: %s", self.conn.remote, exc)
            self._fail(PeerError(f"protocol error: {exc}"))
            self.conn.close()

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.kind
        if kind == Kind.HELLO:
            self._on_hello(frame.body)
        elif self._state != "open":
            raise ProtocolError(f"frame kind {kind} before the handshake completed")
        elif kind == Kind.RESPONSE or kind == Kind.ERROR:
            self._on_answer(frame)
        elif kind == Kind.REQUEST:
            self._on_request(frame)
        elif kind == Kind.STREAM or kind == Kind.STREAM_END:
            queue = self._streams.get(frame.req_id)
            if queue is not None:
                queue.put_nowait(frame)
        elif kind == Kind.CREDIT:
            credit = self._credits.get(frame.req_id)
            if credit is not None:
                credit.put_nowait(int(frame.body.get("n", 1)))
        elif kind == Kind.CANCEL:
            task = self._tasks.get(frame.req_id)
            if task is not None:
                task.cancel()
        else:
            self._error(frame.req_id, "unknown_type", f"unknown frame kind {kind}")

    def _on_answer(self, frame: Frame) -> None:
        if frame.kind == Kind.ERROR and frame.req_id in self._streams:
            self._streams[frame.req_id].put_nowait(frame)
            return
        reply = self._pending.pop(frame.req_id)
        if reply is None:
            return
        if frame.kind == Kind.RESPONSE:
            reply(frame.body, None)
        else:
            reply(None, self._remote_error(frame.body))

    def _remote_error(self, body: dict[str, Any]) -> RemoteError:
        who = peer_id_text(self.caller.peer_id)[:16] if self.caller else str(self.conn.remote)
        code = str(body.get("code", "error"))
        return RemoteError(f"peer {who}: {body.get('message', code)}", code=code)

    def _on_request(self, frame: Frame) -> None:
        body = frame.body
        method = body.pop(METHOD_KEY, None)
        window = body.pop(STREAM_KEY, None)
        if not isinstance(method, str):
            self._error(frame.req_id, "bad_request", "request without a method name")
            return
        sync = self.endpoint.sync_handlers.get(method)
        if sync is not None and window is None:
            self._serve_now(frame.req_id, method, sync, body)
            return
        if self._inflight >= self.endpoint.config.max_inflight:
            # Frames already decoded wait here; reading stops, so TCP pushes back on the peer.
            self._backlog.append((frame.req_id, method, body, window))
            if not self._paused:
                self._paused = True
                self.conn.pause_reading()
            return
        self._start(frame.req_id, method, body, window)

    def _start(self, req_id: int, method: str, body: dict[str, Any], window: Any) -> None:
        if isinstance(window, int):
            coro = self._serve_stream(req_id, method, body, window)
        else:
            coro = self._serve(req_id, method, body)
        self._inflight += 1
        self._tasks[req_id] = asyncio.create_task(coro)

    def _error(self, req_id: int, code: str, message: str) -> None:
        with contextlib.suppress(PeerError):
            self.conn.write(Kind.ERROR, req_id, {"code": code, "message": message})

    def _done(self, req_id: int) -> None:
        self._tasks.pop(req_id, None)
        self._inflight -= 1
        limit = self.endpoint.config.max_inflight
        while self._backlog and self._inflight < limit:
            self._start(*self._backlog.popleft())
        if self._paused and not self._backlog and self._inflight <= limit // 2:
            self._paused = False
            self.conn.resume_reading()

    def _serve_now(self, req_id: int, method: str, handler: SyncHandler, body: dict[str, Any]) -> None:
        """Answer a non-blocking handler inline: no task, no extra loop iteration."""
        assert self.caller is not None
        try:
            result = handler(self.caller, body)
            self.conn.write(Kind.RESPONSE, req_id, result)
        except Exception as exc:
            self._handler_failed(req_id, method, exc)

    async def _serve(self, req_id: int, method: str, body: dict[str, Any]) -> None:
        try:
            handler = self.endpoint.handlers.get(method)
            if handler is None:
                self._error(req_id, "unknown_method", f"unknown method {method!r}")
                return
            assert self.caller is not None
            result = await handler(self.caller, body)
            await self.conn.send(Kind.RESPONSE, req_id, result)
        except Exception as exc:  # any handler failure goes back to the caller as one line
            self._handler_failed(req_id, method, exc)
        finally:
            self._done(req_id)

    def _handler_failed(self, req_id: int, method: str, exc: BaseException) -> None:
        if isinstance(exc, SedmaError | ValueError | KeyError | TypeError):
            self._error(req_id, getattr(exc, "code", "error"), f"{method}: {exc}")
        else:
            log.exception("handler %s failed", method)
            self._error(req_id, "internal", f"{method}: internal error")

    async def _serve_stream(self, req_id: int, method: str, body: dict[str, Any], window: int) -> None:
        credits: asyncio.Queue[int] = asyncio.Queue()
        self._credits[req_id] = credits
        available = max(1, min(window, 1024))
        try:
            handler = self.endpoint.stream_handlers.get(method)
            if handler is None:
                self._error(req_id, "unknown_method", f"unknown stream method {method!r}")
                return
            assert self.caller is not None
            async for item in handler(self.caller, body):
                while available <= 0:
                    available += await credits.get()
                available -= 1
                await self.conn.send(Kind.STREAM, req_id, item)
            await self.conn.send(Kind.STREAM_END, req_id, {})
        except asyncio.CancelledError:
            pass  # the reader sent CANCEL
        except Exception as exc:
            self._handler_failed(req_id, method, exc)
        finally:
            self._credits.pop(req_id, None)
            self._done(req_id)

    # -- outbound ----------------------------------------------------------------------------
    def _loop_time(self) -> float:
        return self._loop.time()

    def idle(self, now: float) -> float:
        """Seconds since the last frame, or 0 while anything is outstanding on it."""
        busy = self._pending or self._tasks or self._streams or self._backlog
        return 0.0 if busy else now - self.last_used

    def _register(self, method: str, timeout: float, reply: Reply) -> int:
        """A fresh request id whose outcome goes to ``reply`` (or a timeout error)."""
        now = self.last_used = self._loop.time()
        req_id = next(self._ids) & 0xFFFFFFFF
        self._pending.add(req_id, method, timeout, reply, now=now)
        return req_id

    async def call(self, method: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request, one answer, or :class:`PeerError` after ``timeout`` seconds."""
        fut: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        req_id = self._register(method, timeout, settle(fut))
        into = RECEIVE_INTO.get()
        if into is not None:
            self.conn.expect_payload(req_id, into)
        try:
            await self.conn.send(Kind.REQUEST, req_id, {**body, METHOD_KEY: method})
            return await fut
        finally:
            self._pending.pop(req_id)
            if into is not None:
                self.conn.forget_payload(req_id)

    def start_call(self, method: str, body: dict[str, Any], timeout: float, reply: Reply) -> None:
        """Write one small request now; its answer (or :class:`PeerError`) goes to ``reply``.

        ``reply`` runs inside the frame, timer or close callback that settles the request: no
        task, no future and no extra loop turn per request (a look-up sends 20 at once). The
        frame is queued without waiting for the peer to drain, which suits small requests only.
        """
        req_id = self._register(method, timeout, reply)
        try:
            self.conn.write(Kind.REQUEST, req_id, {**body, METHOD_KEY: method})
        except PeerError as exc:
            self._pending.pop(req_id)
            reply(None, exc)

    async def stream(
        self, method: str, body: dict[str, Any], timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """Items of a streamed answer; pacing them with CREDIT frames as they are consumed."""
        req_id = next(self._ids) & 0xFFFFFFFF
        queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._streams[req_id] = queue
        window = self.endpoint.config.stream_window
        finished = False
        try:
            await self.conn.send(Kind.REQUEST, req_id, {**body, METHOD_KEY: method, STREAM_KEY: window})
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError as exc:
                    raise PeerError(f"stream {method} from {self.conn.remote} stalled") from exc
                if frame.kind == Kind.STREAM_END:
                    finished = True
                    return
                if frame.kind == Kind.ERROR:
                    finished = True
                    raise self._remote_error(frame.body)
                yield frame.body
                self.conn.write(Kind.CREDIT, req_id, {"n": 1})
        finally:
            self._streams.pop(req_id, None)
            if not finished and not self.conn.closed:
                with contextlib.suppress(PeerError):
                    self.conn.write(Kind.CANCEL, req_id, {})

    # -- closing -----------------------------------------------------------------------------
    def _on_close(self, exc: BaseException | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(PeerError(f"connection to {self.conn.remote[0]}:{self.conn.remote[1]} closed{reason}"))
        self._backlog.clear()
        for task in list(self._tasks.values()):
            task.cancel()
        self.endpoint._forget(self)

    def _fail(self, exc: PeerError) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()
        self._pending.fail_all(exc)
        for queue in self._streams.values():
            queue.put_nowait(Frame(Kind.ERROR, 0, {"code": "closed", "message": str(exc)}))

    def close(self) -> None:
        self.conn.close()


class RpcEndpoint:
    """Our side of the protocol: identity, handlers, pooled connections, the listener."""

    def __init__(
        self,
        identity: Identity,
        transport: Transport,
        *,
        config: RpcConfig | None = None,
        load_fn: Callable[[], PeerLoad | None] | None = None,
    ) -> None:
        self.identity = identity
        self.transport = transport
        self.config = (config or RpcConfig()).validate()
        self.load_fn = load_fn
        self.handlers: dict[str, Handler] = {}
        self.sync_handlers: dict[str, SyncHandler] = {}
        self.stream_handlers: dict[str, StreamHandler] = {}
        self.on_peer: list[PeerHook] = []
        self.listener: Listener | None = None
        self.advertised: tuple[str, int] | None = None
        self.relay: RelayAddr | None = None  # where peers reach us when they cannot dial us
        self._pool: dict[bytes | str, RpcConnection] = {}
        self._dialing: dict[bytes | str, asyncio.Future[RpcConnection]] = {}
        self._all: set[RpcConnection] = set()
        self._reaper: asyncio.Task[None] | None = None

    def register(self, method: str, handler: Handler) -> None:
        self.handlers[method] = handler

    def register_sync(self, method: str, handler: SyncHandler) -> None:
        """A handler that never blocks (pure look-ups): answered inline, without a task."""
        self.sync_handlers[method] = handler

    def register_stream(self, method: str, handler: StreamHandler) -> None:
        self.stream_handlers[method] = handler

    def hello_body(self, nonce: bytes) -> dict[str, Any]:
        load = self.load_fn() if self.load_fn else None
        listen = list(self.advertised) if self.advertised else None
        body = {"pub": self.identity.public, "nonce": nonce, "listen": listen, "load": load_to_wire(load)}
        if self.relay is not None:
            body["relay"] = relay_to_wire(self.relay)
        return body

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Accept connections on ``host:port`` (port 0 picks one); returns the bound address."""
        self.listener = await self.transport.listen(host, port, self._accept)
        self.advertised = (self.listener.host, self.listener.port)
        return self.advertised

    def _accept(self, conn: Connection) -> None:
        rpc = RpcConnection(conn, self, initiator=False)
        self._all.add(rpc)
        asyncio.get_running_loop().call_later(self.config.handshake_timeout, self._reap, rpc)
        rpc.ready.add_done_callback(lambda fut: self._accepted(rpc, fut))

    def _reap(self, rpc: RpcConnection) -> None:
        if not rpc.ready.done():
            rpc.close()

    def _accepted(self, rpc: RpcConnection, fut: asyncio.Future[Caller]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        caller = fut.result()
        self._pool.setdefault(caller.peer_id, rpc)
        self._notify(caller, rpc)

    def _notify(self, caller: Caller, rpc: RpcConnection) -> None:
        if caller.info is not None and caller.info.relay is not None:
            self.transport.add_route(caller.info)
        for hook in self.on_peer:
            hook(caller, rpc)

    def has_connection(self, peer: PeerInfo) -> bool:
        """Whether a pooled, open connection to ``peer`` exists (no dialling)."""
        rpc = self._pool.get(peer.peer_id or peer.addr)
        return rpc is not None and not rpc.conn.closed

    async def connection(self, peer: PeerInfo) -> RpcConnection:
        """A pooled authenticated connection to ``peer`` (dialled once, then reused)."""
        key: bytes | str = peer.peer_id or peer.addr
        rpc = self._pool.get(key)
        if rpc is not None and not rpc.conn.closed:
            return rpc
        pending = self._dialing.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._dial(peer, key))
            self._dialing[key] = pending
            pending.add_done_callback(lambda _: self._dialing.pop(key, None))
        return await asyncio.shield(pending)

    async def _dial(self, peer: PeerInfo, key: bytes | str) -> RpcConnection:
        timeout = self.config.connect_timeout
        if peer.relay is not None:
            self.transport.add_route(peer)
            timeout = max(timeout, self.config.relayed_connect_timeout)
        conn = await self.transport.connect(peer.host, peer.port, timeout=timeout)
        rpc = RpcConnection(conn, self, initiator=True)
        self._all.add(rpc)
        try:
            caller = await asyncio.wait_for(asyncio.shield(rpc.ready), self.config.handshake_timeout)
        except (TimeoutError, PeerError) as exc:
            rpc.close()
            raise PeerError(f"handshake with {peer.addr} failed: {exc or 'timed out'}") from exc
        if peer.peer_id and caller.peer_id != peer.peer_id:
            rpc.close()
            raise PeerError(f"{peer.addr} is {peer_id_text(caller.peer_id)}, not the expected peer")
        self._pool[key] = rpc
        self._pool.setdefault(caller.peer_id, rpc)
        self._notify(caller, rpc)
        return rpc

    async def request(
        self, peer: PeerInfo, method: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The layer's :data:`~sedma.net.types.RequestFn`: one request to ``peer``.

        ``timeout`` bounds the whole request, dialling and handshake included, except that
        dialling a peer behind a relay may take ``relayed_connect_timeout``.
        """
        limit = timeout or self.config.request_timeout
        key: bytes | str = peer.peer_id or peer.addr
        rpc = self._pool.get(key)
        if rpc is None or rpc.conn.closed:
            loop = asyncio.get_running_loop()
            started = loop.time()
            dial_limit = limit if peer.relay is None else max(limit, self.config.relayed_connect_timeout)
            try:
                rpc = await asyncio.wait_for(self.connection(peer), dial_limit)
            except TimeoutError as exc:
                raise PeerError(f"connecting to {peer.addr} timed out after {dial_limit}s") from exc
            if peer.relay is None:  # a relayed dial has its own budget; the request keeps its own
                limit = max(0.001, limit - (loop.time() - started))
        return await rpc.call(method, body, limit)

    def request_soon(
        self, peer: PeerInfo, method: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> asyncio.Future[dict[str, Any]]:
        """:meth:`request` for small bodies as a future (see :meth:`request_then`)."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.request_then(peer, method, body, settle(fut), timeout=timeout)
        return fut

    def request_then(
        self, peer: PeerInfo, method: str, body: dict[str, Any], reply: Reply, *, timeout: float | None = None
    ) -> None:
        """:meth:`request` for small bodies, its outcome handed to ``reply``: written at once on a
        pooled connection (no task per request); otherwise a task dials first."""
        rpc = self._pool.get(peer.peer_id or peer.addr)
        if rpc is not None and not rpc.conn.closed:
            rpc.start_call(method, body, timeout or self.config.request_timeout, reply)
            return
        task = asyncio.ensure_future(self.request(peer, method, body, timeout=timeout))
        task.add_done_callback(lambda done: deliver(done, reply))

    async def stream(
        self, peer: PeerInfo, method: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Items of a streamed answer from ``peer``."""
        rpc = await self.connection(peer)
        async for item in rpc.stream(method, body, timeout or self.config.request_timeout):
            yield item

    def _forget(self, rpc: RpcConnection) -> None:
        self._all.discard(rpc)
        for key in [k for k, v in self._pool.items() if v is rpc]:
            del self._pool[key]

    def close_idle(self) -> int:
        """Close connections unused for ``idle_timeout`` (they are re-dialled when needed)."""
        now = asyncio.get_running_loop().time()
        idle = [r for r in self._all if r.idle(now) >= self.config.idle_timeout]
        for rpc in idle:
            rpc.close()
        return len(idle)

    def start_reaper(self) -> None:
        """Close idle connections in the background, checking a few times per timeout."""
        if self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap_idle())

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(self.config.idle_timeout / 4)
            closed = self.close_idle()
            if closed:
                log.debug("closed %d idle connection(s)", closed)

    def close_connections(self) -> int:
        """Close every connection but keep listening (peers re-dial and re-handshake)."""
        live = list(self._all)
        for rpc in live:
            rpc.close()
        return len(live)

    def connected(self) -> list[Caller]:
        """Callers of the open, authenticated connections."""
        return [r.caller for r in self._all if r.caller is not None and not r.conn.closed]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        if self.listener is not None:
            await self.listener.close()
            self.listener = None
        for rpc in list(self._all):
            rpc.close()
        self._pool.clear()
        await asyncio.sleep(0)
