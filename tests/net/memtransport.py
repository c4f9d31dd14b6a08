"""An in-memory RequestFn for unit tests: peers are handlers in one process, bodies cross msgpack.

Bodies are packed and unpacked with msgpack exactly as the wire would, so a handler that returns
something the wire cannot carry fails here too. Peers can be killed (every request then raises
PeerError, as a closed connection does), set to die after serving some blocks, or slowed down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from sedma.errors import SedmaError
from sedma.net.types import PeerError, PeerInfo, RequestFn

Handler = Callable[[bytes, str, dict[str, Any]], Awaitable[dict[str, Any]]]


class RemoteError(PeerError):
    """The peer's handler raised: the error travels back with its code, as the RPC layer does."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Peer:
    info: PeerInfo
    handler: Handler
    alive: bool = True
    die_after_blocks: int | None = None
    delay_s: float = 0.0
    block_delay_s: float = 0.0
    inflight: int = 0
    max_inflight_seen: int = 0
    calls: dict[str, int] = field(default_factory=dict)


class MemNetwork:
    """Peers by id, each a handler(caller_id, method, body) -> body."""

    def __init__(self) -> None:
        self.peers: dict[bytes, _Peer] = {}

    def add(self, info: PeerInfo, handler: Handler, *, delay_s: float = 0.0) -> None:
        self.peers[info.peer_id] = _Peer(info, handler, delay_s=delay_s)

    def kill(self, peer_id: bytes) -> None:
        self.peers[peer_id].alive = False

    def die_after(self, peer_id: bytes, blocks: int) -> None:
        self.peers[peer_id].die_after_blocks = blocks

    def slow_blocks(self, peer_id: bytes, seconds: float) -> None:
        """Delay only this peer's block answers (a slow link once the transfer starts)."""
        self.peers[peer_id].block_delay_s = seconds

    def stats(self, peer_id: bytes) -> _Peer:
        return self.peers[peer_id]

    def request_fn(self, caller: PeerInfo) -> RequestFn:
        async def request(peer: PeerInfo, method: str, body: dict[str, Any]) -> dict[str, Any]:
            return await self._deliver(caller, peer, method, body)

        return request

    async def _deliver(
        self, caller: PeerInfo, peer: PeerInfo, method: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        target = self.peers.get(peer.peer_id)
        if target is None or not target.alive:
            raise PeerError(f"connection to {peer.addr} refused")
        wire_body = msgpack.unpackb(msgpack.packb(body, use_bin_type=True), raw=False)
        target.inflight += 1
        target.max_inflight_seen = max(target.max_inflight_seen, target.inflight)
        try:
            delay = target.delay_s + (target.block_delay_s if method == "bs.block" else 0.0)
            if delay:
                await asyncio.sleep(delay)
            reply = await self._serve(target, caller, method, wire_body)
        finally:
            target.inflight -= 1
        if not target.alive:
            raise PeerError(f"connection to {peer.addr} reset")
        return dict(msgpack.unpackb(msgpack.packb(reply, use_bin_type=True), raw=False))

    async def _serve(
        self, target: _Peer, caller: PeerInfo, method: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        target.calls[method] = target.calls.get(method, 0) + 1
        limit = target.die_after_blocks
        if method == "bs.block" and limit is not None and target.calls[method] > limit:
            target.alive = False
            raise PeerError(f"{target.info.addr} died mid-transfer")
        try:
            return await target.handler(caller.peer_id, method, body)
        except SedmaError as exc:
            raise RemoteError(str(exc), getattr(exc, "code", "error")) from None
