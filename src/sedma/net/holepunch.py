"""Hole punching after a relayed connection, and the transport that dials through relays.

Once a circuit is up, the two peers trade the addresses the relay observed for them over the
circuit itself, time the round trip, and then both open TCP from the very local port their
relay connection uses (SO_REUSEADDR + SO_REUSEPORT): each side listens there *and* dials the
other's observed address, so whichever of accept, connect or a true simultaneous open lands
first wins. A port-preserving NAT (Linux ``masquerade``) has by then a mapping for the
outgoing SYN and lets the other side's SYN in. The winning socket must carry the session
nonce the peers agreed over the relay; the initiator picks it and says so over the relay.
On any failure before the deadline the relayed circuit is kept: callers learn the path used
(``direct``, ``holepunch`` or ``relay``). A symmetric NAT (a fresh port per destination)
defeats this by design; the relay then stays in use.

:class:`NatTransport` wraps a :class:`~sedma.net.transport.TcpTransport`: peers known to sit
behind a relay (``PeerInfo.relay``) are dialled directly first, then through their relay with
an upgrade attempt; circuits accepted by our own reservation are handed to the same connection
handler as ordinary inbound TCP, so the RPC handshake proves peer ids end to end either way.

Nodes find out whether they need a relay AutoNAT-style: :func:`register_nat_api` lets a public
node answer ``nat.relay`` (where its relay listens) and ``nat.dialback`` (dial the caller's
advertised address and prove its id); :func:`attach_behind_nat` asks known peers to dial us
back and, when none can, reserves a slot on the first relay found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from sedma.errors import ConfigError, require_positive
from sedma.net.identity import Identity
from sedma.net.relay import (
    Address,
    RelayReservation,
    RelayServer,
    SocketChannel,
    address_from_wire,
    address_to_wire,
    dial_relay,
    recv_exact,
    reuse_socket,
)
from sedma.net.rpc import Caller, RpcConfig, RpcEndpoint
from sedma.net.transport import Connection, ConnectionHandler, Listener, TcpTransport, Transport
from sedma.net.types import PeerError, PeerInfo, ProtocolError, RelayAddr

log = logging.getLogger("sedma.net.holepunch")
_TAG = 8
_ACK = b"\x01"
_PROVE_WAIT = 2.0  # seconds a fresh direct socket has to show the session nonce
_BACKOFF_MIN, _BACKOFF_MAX = 0.2, 30.0  # seconds between attempts to re-make a lost reservation


@dataclass(frozen=True)
class PunchConfig:
    """Hole punching options: off switch, how long to try, how often to re-dial."""

    enabled: bool = True
    deadline: float = 2.0
    retry_every: float = 0.05
    exchange_timeout: float = 5.0

    def validate(self) -> PunchConfig:
        require_positive(self, ("deadline", "retry_every", "exchange_timeout"))
        return self


@dataclass
class PunchOutcome:
    """The socket to use and how it was reached (``holepunch`` or ``relay``)."""

    path: str
    sock: socket.socket
    rtt_ms: float | None = None
    reason: str = ""


def candidate_addrs(sock: socket.socket, observed: Address | None) -> list[Address]:
    """Where the other side may reach us: the relay-observed address, then our local one."""
    local = sock.getsockname()
    out = [observed] if observed else []
    if (local[0], int(local[1])) not in out:
        out.append((str(local[0]), int(local[1])))
    return out


def dialable(offered: list[Address], observed_by_relay: Address | None) -> list[Address]:
    """The offered addresses a responder will dial: only those on the host the relay saw the
    dialer come from, so an anonymous dialer cannot aim our SYNs at third parties."""
    if observed_by_relay is None:
        return []
    return [a for a in offered if a[0] == observed_by_relay[0]]


def _addrs(raw: Any) -> list[Address]:
    found = [address_from_wire(a) for a in raw] if isinstance(raw, list) else []
    return [a for a in found if a is not None][:8]


# -- the direct attempt ---------------------------------------------------------------------------
class _Verified:
    """Sockets that proved the session nonce, by tag; the first one found ends the initiator."""

    def __init__(self) -> None:
        self.socks: dict[bytes, socket.socket] = {}
        self.tasks: set[asyncio.Future[None]] = set()
        self.first: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def add(self, tag: bytes, sock: socket.socket) -> None:
        self.socks[tag] = sock
        if not self.first.done():
            self.first.set_result(tag)

    def take(self, tag: bytes | None) -> socket.socket | None:
        chosen = self.socks.pop(tag, None) if tag is not None else None
        for sock in self.socks.values():
            sock.close()
        self.socks.clear()
        return chosen


async def _prove(
    sock: socket.socket, initiator: bool, nonce: bytes, verified: _Verified, wait: float
) -> None:
    """Run the nonce exchange on a fresh direct socket; keep it only if it proves the session."""
    loop = asyncio.get_running_loop()
    try:
        if initiator:
            tag = os.urandom(_TAG)
            await loop.sock_sendall(sock, nonce + tag)
            if await asyncio.wait_for(recv_exact(sock, 1), wait) != _ACK:
                raise ProtocolError("bad punch acknowledgement")
        else:
            got = await asyncio.wait_for(recv_exact(sock, len(nonce) + _TAG), wait)
            if got[: len(nonce)] != nonce:
                raise ProtocolError("direct connection without our session nonce")
            tag = got[len(nonce) :]
            verified.socks[tag] = sock  # registered before the ack, so the initiator's pick is here
            await loop.sock_sendall(sock, _ACK)
    except BaseException as exc:  # cancelled too: a half-proven socket must not leak
        verified.socks = {t: s for t, s in verified.socks.items() if s is not sock}
        sock.close()
        if isinstance(exc, OSError | TimeoutError | PeerError | ProtocolError):
            return
        raise
    verified.add(tag, sock)


async def _accept_loop(listener: socket.socket, initiator: bool, nonce: bytes, verified: _Verified) -> None:
    loop = asyncio.get_running_loop()
    while True:
        sock, _ = await loop.sock_accept(listener)
        sock.setblocking(False)
        task = asyncio.ensure_future(_prove(sock, initiator, nonce, verified, _PROVE_WAIT))
        verified.tasks.add(task)
        task.add_done_callback(verified.tasks.discard)


async def _dial_loop(
    local: Address, target: Address, initiator: bool, nonce: bytes, verified: _Verified, every: float
) -> None:
    loop = asyncio.get_running_loop()
    while not verified.first.done():
        try:
            sock = reuse_socket(local)
        except OSError as exc:  # the port is not ours to share: the listener may still win
            log.debug("cannot dial from %s: %s", local, exc)
            return
        try:
            await asyncio.wait_for(loop.sock_connect(sock, target), max(every * 4, 0.2))
        except (OSError, TimeoutError):
            sock.close()  # refused or dropped: the other side's SYN has not opened the NAT yet
            await asyncio.sleep(every)
            continue
        await _prove(sock, initiator, nonce, verified, _PROVE_WAIT)
        return


def _listener(local: Address) -> socket.socket | None:
    try:
        sock = reuse_socket(local)
    except OSError as exc:
        log.debug("cannot listen on %s for hole punching: %s", local, exc)
        return None
    try:
        sock.listen(8)
    except OSError as exc:
        sock.close()
        log.debug("cannot listen on %s for hole punching: %s", local, exc)
        return None
    return sock


async def attempt_direct(
    local: Address,
    targets: list[Address],
    *,
    initiator: bool,
    nonce: bytes,
    cfg: PunchConfig,
    stop: Awaitable[Any],
) -> _Verified:
    """Listen on and dial from ``local`` until a socket proves ``nonce``, ``stop`` or the deadline."""
    verified = _Verified()
    listener = _listener(local)
    tasks: list[asyncio.Future[None]] = [
        asyncio.ensure_future(_dial_loop(local, t, initiator, nonce, verified, cfg.retry_every))
        for t in targets
    ]
    if listener is not None:
        tasks.append(asyncio.ensure_future(_accept_loop(listener, initiator, nonce, verified)))
    ending = asyncio.ensure_future(stop)
    try:
        await asyncio.wait(
            [verified.first, ending], timeout=cfg.deadline, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        tasks.extend(verified.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if listener is not None:
            listener.close()
    return verified


# -- the exchange over the relayed circuit -----------------------------------------------------------
async def punch_initiator(ch: SocketChannel, reply: dict[str, Any], cfg: PunchConfig) -> PunchOutcome:
    """The dialling side: trade addresses, time the relay RTT, try direct, announce the choice."""
    mine = candidate_addrs(ch.sock, address_from_wire(reply.get("observed"))) if cfg.enabled else []
    nonce = os.urandom(32)
    t0 = time.perf_counter()
    await ch.send({"op": "punch", "addrs": [address_to_wire(a) for a in mine], "nonce": nonce})
    answer = await ch.recv(cfg.exchange_timeout)
    rtt = time.perf_counter() - t0
    theirs = _addrs(answer.get("addrs"))
    if not (mine and theirs):
        await ch.send({"op": "use", "path": "relay"})
        return PunchOutcome("relay", ch.sock, rtt * 1e3, "hole punching disabled on one side")
    await ch.send({"op": "sync"})
    await asyncio.sleep(rtt / 2)  # the sync reaches the other side about now: dial together
    local = ch.sock.getsockname()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    verified = await attempt_direct(
        (str(local[0]), int(local[1])), theirs, initiator=True, nonce=nonce, cfg=cfg, stop=never
    )
    never.cancel()
    tag = verified.first.result() if verified.first.done() else None
    sock = verified.take(tag)
    await ch.send({"op": "use", "path": "holepunch" if sock else "relay", "tag": tag})
    if sock is None:
        return PunchOutcome("relay", ch.sock, rtt * 1e3, f"no direct connection within {cfg.deadline:g} s")
    ch.sock.close()
    return PunchOutcome("holepunch", sock, rtt * 1e3)


async def punch_responder(ch: SocketChannel, reply: dict[str, Any], cfg: PunchConfig) -> PunchOutcome:
    """The accepting side: answer with our addresses, try direct until the initiator decides."""
    offer = await ch.recv(cfg.exchange_timeout)
    nonce = offer.get("nonce")
    if offer.get("op") != "punch" or not isinstance(nonce, bytes) or len(nonce) != 32:
        raise ProtocolError("relayed circuit did not start with a punch offer")
    theirs = dialable(_addrs(offer.get("addrs")), address_from_wire(reply.get("peer_observed")))
    mine = candidate_addrs(ch.sock, address_from_wire(reply.get("observed"))) if cfg.enabled else []
    await ch.send({"op": "punch", "addrs": [address_to_wire(a) for a in mine]})
    if not (mine and theirs):
        await _expect_use(ch, cfg)
        return PunchOutcome("relay", ch.sock, None, "hole punching disabled on one side")
    if (await ch.recv(cfg.exchange_timeout)).get("op") != "sync":
        raise ProtocolError("expected the punch sync")
    local = ch.sock.getsockname()
    decision = asyncio.ensure_future(_expect_use(ch, cfg))
    patient = PunchConfig(
        cfg.enabled, cfg.deadline + cfg.exchange_timeout, cfg.retry_every, cfg.exchange_timeout
    )
    verified = await attempt_direct(
        (str(local[0]), int(local[1])), theirs, initiator=False, nonce=nonce, cfg=patient, stop=decision
    )
    use = await decision
    sock = verified.take(use.get("tag") if use.get("path") == "holepunch" else None)
    if sock is None:
        return PunchOutcome("relay", ch.sock, None, "the initiator kept the relay")
    ch.sock.close()
    return PunchOutcome("holepunch", sock, None)


async def _expect_use(ch: SocketChannel, cfg: PunchConfig) -> dict[str, Any]:
    use = await ch.recv(cfg.deadline + cfg.exchange_timeout)
    if use.get("op") != "use":
        raise ProtocolError(f"expected the punch decision, got {use.get('op')!r}")
    return use


# -- the transport ----------------------------------------------------------------------------------
class NatTransport(Transport):
    """TCP, plus relayed circuits with a hole-punching upgrade for peers behind NATs."""

    def __init__(
        self,
        identity: Identity | None = None,
        *,
        inner: TcpTransport | None = None,
        punch: PunchConfig | None = None,
        direct_timeout: float = 1.0,
        direct_retry_after: float = 60.0,
        max_routes: int = 4096,
    ) -> None:
        self.identity = identity
        self.inner = inner or TcpTransport()
        self.punch = (punch or PunchConfig()).validate()
        self.direct_timeout = direct_timeout
        # A direct dial into a NAT often hangs until its timeout: after one fails, the relay
        # is used straight away for this long.
        self.direct_retry_after = direct_retry_after
        self.max_routes = max_routes  # bounds routes, paths and direct_errors (oldest go first)
        self.routes: dict[Address, PeerInfo] = {}
        self.paths: dict[bytes, str] = {}  # peer id -> how we last reached it
        self.direct_errors: dict[bytes, str] = {}  # peer id -> why the direct dial failed
        self.inbound_paths: deque[str] = deque(maxlen=256)  # how recent accepted circuits ended up
        self._inbound_total: Counter[str] = Counter()
        self.reservations: list[RelayReservation] = []
        self._on_connection: ConnectionHandler | None = None
        self._keepers: set[asyncio.Future[None]] = set()
        self._direct_failed: dict[bytes, float] = {}  # peer id -> monotonic time of the failure

    def _remember(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        table.pop(key, None)  # re-inserted last: insertion order is recency
        table[key] = value
        if len(table) > self.max_routes:
            del table[next(iter(table))]

    def add_route(self, peer: PeerInfo) -> None:
        """Remember that ``peer`` (with ``relay`` set) is reached through its relay."""
        if peer.relay is not None and self.routes.get((peer.host, peer.port)) != peer:
            self._remember(self.routes, (peer.host, peer.port), peer)

    async def connect(self, host: str, port: int, *, timeout: float) -> Connection:
        route = self.routes.get((host, port))
        if route is None or route.relay is None:
            return await self.inner.connect(host, port, timeout=timeout)
        failed_at = self._direct_failed.get(route.peer_id)
        if failed_at is None or time.monotonic() - failed_at >= self.direct_retry_after:
            try:
                conn = await self.inner.connect(host, port, timeout=min(timeout, self.direct_timeout))
            except PeerError as exc:
                self._remember(self.direct_errors, route.peer_id, str(exc))
                self._remember(self._direct_failed, route.peer_id, time.monotonic())
                log.debug("direct dial of %s failed (%s); using relay", route.addr, exc)
            else:
                self._direct_failed.pop(route.peer_id, None)
                self._remember(self.paths, route.peer_id, "direct")
                return conn
        return await self.connect_relayed(route.relay, route.peer_id, timeout=timeout)

    async def connect_relayed(self, relay: RelayAddr, target: bytes, *, timeout: float) -> Connection:
        """A connection to ``target`` through ``relay``, upgraded to a direct one when possible."""
        ch, reply = await dial_relay(relay, target, timeout=max(timeout, 5.0))
        try:
            outcome = await punch_initiator(ch, reply, self.punch)
        except BaseException:
            ch.sock.close()
            raise
        self._remember(self.paths, target, outcome.path)
        log.info("reached %s by %s (%s)", target.hex()[:12], outcome.path, outcome.reason or "ok")
        return await self.inner.adopt(outcome.sock)

    def stats(self) -> dict[str, int]:
        """Connections by path, outbound (last path per routed peer) and inbound circuits, for metrics."""
        counts = {f"{way}_{path}": 0 for way in ("out", "in") for path in ("direct", "holepunch", "relay")}
        for path in self.paths.values():
            counts[f"out_{path}"] += 1
        for path, n in self._inbound_total.items():
            counts[f"in_{path}"] += n
        counts["reservations"] = len(self.reservations)
        return counts

    async def listen(self, host: str, port: int, on_connection: ConnectionHandler) -> Listener:
        self._on_connection = on_connection
        return await self.inner.listen(host, port, on_connection)

    async def reserve(
        self,
        relay: RelayAddr,
        *,
        identity: Identity | None = None,
        refresh_every: float | None = 60.0,
        keep: bool = True,
    ) -> RelayReservation:
        """Hold a slot on ``relay`` so peers can reach us there; circuits arrive as inbound.

        ``identity`` defaults to the one given at construction (a node creates its identity
        only when it starts, after its transport). With ``keep`` a lost reservation (relay
        restart, dropped connection) is re-made with exponential backoff; ``reservations``
        always lists the live ones.
        """
        ident = identity or self.identity
        if ident is None:
            raise ConfigError("NatTransport.reserve needs the node's identity")
        reservation = await self._reserve_once(relay, ident, refresh_every)
        if keep:
            self._keepers.add(asyncio.ensure_future(self._keep(reservation, ident, refresh_every)))
        return reservation

    async def _reserve_once(
        self, relay: RelayAddr, ident: Identity, refresh_every: float | None
    ) -> RelayReservation:
        reservation = RelayReservation(ident, relay, self._on_circuit, refresh_every=refresh_every)
        await reservation.open()
        self.reservations.append(reservation)
        return reservation

    async def _keep(self, current: RelayReservation, ident: Identity, refresh_every: float | None) -> None:
        backoff = _BACKOFF_MIN
        while True:
            await current.closed.wait()
            with contextlib.suppress(ValueError):
                self.reservations.remove(current)
            if current.stopped:
                return  # closed on purpose, not lost
            await asyncio.sleep(backoff)
            try:
                current = await self._reserve_once(current.relay, ident, refresh_every)
            except (PeerError, ProtocolError) as exc:
                log.info("re-reserving on relay %s:%s failed: %s", current.relay[1], current.relay[2], exc)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            backoff = _BACKOFF_MIN

    async def _on_circuit(self, ch: SocketChannel, reply: dict[str, Any]) -> None:
        try:
            outcome = await punch_responder(ch, reply, self.punch)
        except (PeerError, ProtocolError, OSError) as exc:
            ch.sock.close()
            log.warning("relayed circuit dropped during hole punching: %s", exc)
            return
        self.inbound_paths.append(outcome.path)
        self._inbound_total[outcome.path] += 1
        try:
            conn = await self.inner.adopt(outcome.sock)
        except PeerError as exc:
            log.warning("relayed circuit unusable: %s", exc)
            return
        if self._on_connection is None:
            conn.close()  # nothing listens for inbound connections here
            return
        self._on_connection(conn)

    async def close(self) -> None:
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        self._keepers.clear()
        for reservation in self.reservations:
            await reservation.close()
        self.reservations.clear()


# -- node integration: AutoNAT-style reachability and relay discovery ------------------------------
NAT_RELAY, NAT_DIALBACK = "nat.relay", "nat.dialback"


def register_nat_api(endpoint: RpcEndpoint, *, relay: RelayServer | None, dial_timeout: float = 1.0) -> None:
    """Serve ``nat.relay`` (our relay's address, if we run one) and ``nat.dialback``."""

    async def where(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        if relay is None or relay.address is None:
            return {"relay": None}
        return {"relay": [relay.identity.peer_id, *relay.address]}

    async def dialback(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        # Only the caller's own advertised address is dialled, so we cannot be aimed elsewhere.
        if caller.info is None:
            return {"reachable": False, "reason": "no listen address advertised"}
        probe = RpcEndpoint(endpoint.identity, TcpTransport(), config=RpcConfig(connect_timeout=dial_timeout))
        try:
            await probe.connection(caller.info)  # the handshake proves it is the caller
        except PeerError as exc:
            return {"reachable": False, "reason": str(exc)}
        finally:
            await probe.close()
        return {"reachable": True}

    endpoint.register(NAT_RELAY, where)
    endpoint.register(NAT_DIALBACK, dialback)


async def discover_relay(endpoint: RpcEndpoint, peer: PeerInfo) -> RelayAddr | None:
    """The relay ``peer`` runs, if any (an unspecified bind address means the peer's host)."""
    raw = (await endpoint.request(peer, NAT_RELAY, {})).get("relay")
    if not (
        isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], bytes) and isinstance(raw[2], int)
    ):
        return None
    host = peer.host if raw[1] in ("0.0.0.0", "::", "") else str(raw[1])
    return (raw[0], host, raw[2])


async def dialback(endpoint: RpcEndpoint, peer: PeerInfo) -> bool:
    """Whether ``peer`` can open a connection to the address we advertise."""
    return bool((await endpoint.request(peer, NAT_DIALBACK, {})).get("reachable"))


async def attach_behind_nat(
    endpoint: RpcEndpoint, transport: NatTransport, peers: list[PeerInfo]
) -> RelayReservation | None:
    """Reserve on a relay when no peer can dial us back; None when we are reachable (or alone)."""
    relays: list[RelayAddr] = []
    for peer in peers:
        try:
            if await dialback(endpoint, peer):
                return None
            if (relay := await discover_relay(endpoint, peer)) is not None:
                relays.append(relay)
        except PeerError as exc:
            log.info("NAT probe via %s failed: %s", peer.addr, exc)
    for relay in relays:
        try:
            return await transport.reserve(relay, identity=endpoint.identity)
        except PeerError as exc:
            log.info("relay %s:%s refused us: %s", relay[1], relay[2], exc)
    if peers:
        log.warning("no peer confirmed it can dial us and no relay took us: peers may not reach us")
    return None
