"""The node's API for local clients (the CLI) and the client that speaks it.

A client is an ordinary protocol peer with its own ephemeral identity that does not listen:
it uploads blocks (each checked against its CID by the node), asks the node to publish, and
downloads a tensor's blocks through the same ``bs.block`` method peers use, verifying each.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from sedma.errors import BackendUnavailable, InputError
from sedma.net.cid import DAG_JSON, compute_cid, validate_cid, verify_block
from sedma.net.identity import Identity, peer_id_text
from sedma.net.rpc import Caller, RpcConfig, RpcEndpoint
from sedma.net.tensor import Manifest, assemble_tensor, chunk_tensor
from sedma.net.transport import TcpTransport
from sedma.net.types import PeerError, PeerInfo

if TYPE_CHECKING:
    from sedma.net.node import Node

PARALLEL = 4  # blocks in flight between a client and its node


def register_client_api(node: Node) -> None:
    """Register the ``node.*`` methods on ``node``'s endpoint."""
    api = _ClientApi(node)
    for name in ("put_value", "put_block", "publish", "get", "peers", "locate"):
        node.endpoint.register(f"node.{name}", getattr(api, name))
    node.endpoint.register_sync("node.echo", api.echo)


class _ClientApi:
    """Handlers of the ``node.*`` methods (local clients such as the CLI)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def put_block(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        cid, data = validate_cid(body.get("cid")), body.get("data")
        if not isinstance(data, bytes | bytearray):
            raise InputError("node.put_block: field 'data' must be bytes")
        self.node.store.put(cid, data, verify=True, hot=True)  # published here: served from memory
        return {"ok": True}

    async def publish(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        cid, replicas = validate_cid(body.get("cid")), body.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            raise InputError(f"node.publish: replicas must be an integer >= 0, got {replicas!r}")
        holders = await self.node.publish(cid, replicas=replicas)
        return {"cid": cid, "holders": [h.addr for h in holders]}

    async def get(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        manifest, _ = await self.node.fetch_blocks(validate_cid(body.get("cid")))
        return {"manifest": manifest.to_block()}

    async def peers(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"self": node_info(self.node), "peers": await self.node.peers()}

    def echo(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return body

    async def locate(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Provider look-up timed inside the node (hops, peers asked, milliseconds)."""
        from sedma.net.node import dht_key

        started = time.perf_counter()
        records, result = await self.node.dht.get_providers(dht_key(validate_cid(body.get("cid"))))
        ms = (time.perf_counter() - started) * 1e3
        providers = [r.peer.addr for r in records]
        return {"providers": providers, "hops": result.hops, "queried": result.queried, "ms": ms}

    async def put_value(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        name, value = body.get("name"), body.get("value")
        if not (isinstance(name, bytes) and isinstance(value, bytes)):
            raise InputError("node.put_value: fields 'name' and 'value' must be bytes")
        return {"key": await self.node.dht.put_value(name, value)}


def node_info(node: Node) -> dict[str, Any]:
    """Identity, address and counters of a node (for ``peers`` and metrics)."""
    relay, reserved = node.relay_address, node.endpoint.relay
    return {
        "peer_id": peer_id_text(node.identity.peer_id),
        "addr": node.addr,
        "relay": f"{relay[0]}:{relay[1]}" if relay else None,
        "reservation": f"{reserved[1]}:{reserved[2]}" if reserved else None,
        "strategy": node.config.strategy,
        "known_peers": len(node.dht.routing),
        "blocks": len(node.store),
    }


class NodeClient:
    """Talks to one node at ``host:port`` as a non-listening peer."""

    def __init__(self, host: str, port: int, *, timeout: float = 60.0) -> None:
        self.peer = PeerInfo(b"", host, port)
        self.timeout = timeout
        self.endpoint = RpcEndpoint(
            Identity.generate(), TcpTransport(), config=RpcConfig(request_timeout=timeout)
        )

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.endpoint.close()

    async def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.endpoint.request(self.peer, method, body)
        except PeerError as exc:
            if getattr(exc, "code", None) is not None:
                raise  # the node answered: its message says what was wrong
            raise BackendUnavailable(f"node {self.peer.addr}: {exc}") from exc

    async def put(self, arr: np.ndarray[Any, Any], *, replicas: int = 1) -> tuple[str, list[str]]:
        """Upload and publish ``arr``; returns (CID, replica holder addresses)."""
        blocks = chunk_tensor(arr)
        sem = asyncio.Semaphore(PARALLEL)

        async def send(cid: str, data: bytes) -> None:
            async with sem:
                await self.call("node.put_block", {"cid": cid, "data": data})

        await asyncio.gather(*(send(c, d) for c, d in blocks.blocks.items()))
        reply = await self.call("node.publish", {"cid": blocks.manifest_cid, "replicas": replicas})
        return blocks.manifest_cid, [str(h) for h in reply.get("holders", [])]

    async def get(self, cid: str) -> np.ndarray[Any, Any]:
        """Have the node fetch tensor ``cid``, then download and verify its blocks."""
        cid = validate_cid(cid)
        raw = (await self.call("node.get", {"cid": cid})).get("manifest")
        if isinstance(raw, bytearray):
            raw = bytes(raw)  # a manifest over 32 KiB arrives as the raw payload
        if not isinstance(raw, bytes) or compute_cid(raw, DAG_JSON) != cid:
            raise PeerError(f"node {self.peer.addr} sent a manifest that does not match {cid}")
        manifest = Manifest.from_block(raw)
        sem = asyncio.Semaphore(PARALLEL)

        async def block(c: str) -> tuple[str, bytes | bytearray]:
            async with sem:
                data = (await self.call("bs.block", {"cid": c})).get("data")
            if not isinstance(data, bytes | bytearray):
                raise PeerError(f"node {self.peer.addr} does not hold block {c}")
            verify_block(c, data)
            return c, data

        blocks = dict(await asyncio.gather(*(block(c) for c in dict.fromkeys(manifest.blocks))))
        return assemble_tensor(manifest, blocks, verify=False)

    async def peers(self) -> dict[str, Any]:
        return await self.call("node.peers", {})

    async def put_value(self, name: bytes, value: bytes) -> bytes:
        """Have the node publish a signed DHT record; returns its key."""
        key = (await self.call("node.put_value", {"name": name, "value": value})).get("key")
        if not isinstance(key, bytes):
            raise PeerError(f"node {self.peer.addr} answered node.put_value without a key")
        return key

    async def locate(self, cid: str) -> dict[str, Any]:
        """Have the node look up every provider of ``cid``."""
        return await self.call("node.locate", {"cid": cid})
