"""A peer process for the NAT tests: ``relay``, ``target`` (behind a NAT) or ``dial``.

Run as ``python tests/net/nat_peer.py ROLE ...`` (inside a namespace or on loopback). Lines
on stdout: ``READY {json}`` once serving, ``RESULT {json}`` when a dial finishes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sedma.net.holepunch import NatTransport, PunchConfig, attach_behind_nat, register_nat_api
from sedma.net.identity import Identity
from sedma.net.node import Node, NodeConfig
from sedma.net.relay import RelayReservation, RelayServer
from sedma.net.relay_limits import RelayLimits
from sedma.net.rpc import Caller, RpcConfig, RpcEndpoint
from sedma.net.tensor import Manifest, assemble_tensor, chunk_tensor
from sedma.net.transport import TcpTransport
from sedma.net.types import PeerError, PeerInfo


def _say(tag: str, doc: dict[str, Any]) -> None:
    print(tag, json.dumps(doc), flush=True)


def _addr(text: str) -> tuple[bytes, str, int]:
    pid, host, port = text.split(":")
    return bytes.fromhex(pid), host, int(port)


async def run_relay(args: argparse.Namespace) -> None:
    ident = Identity.generate()
    limits = RelayLimits(max_reservations=args.max_reservations, circuit_bytes=args.circuit_bytes)
    server = RelayServer(ident, limits=limits)
    host, port = await server.start(args.host, 0)
    # The relay node's RPC side answers AutoNAT dial-backs and says where its relay listens.
    endpoint = RpcEndpoint(ident, TcpTransport())
    register_nat_api(endpoint, relay=server)
    _, rpc_port = await endpoint.listen(args.host, 0)
    _say("READY", {"peer_id": ident.peer_id.hex(), "host": host, "port": port, "rpc_port": rpc_port})
    await asyncio.Event().wait()


async def _reserve(
    args: argparse.Namespace, endpoint: RpcEndpoint, transport: NatTransport
) -> RelayReservation:
    """The explicit ``--relay``, or (``--bootstrap``) dial-back first and a discovered relay."""
    if args.relay:
        return await transport.reserve(_addr(args.relay), identity=endpoint.identity)
    bid, bhost, bport = _addr(args.bootstrap)
    reservation = await attach_behind_nat(endpoint, transport, [PeerInfo(bid, bhost, bport)])
    if reservation is None:
        raise SystemExit("reachable without a relay: nothing to test")
    return reservation


def _tensor(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal((3, 200_000)).astype(np.float32)  # 2.3 MiB


async def _node(args: argparse.Namespace, transport: NatTransport) -> Node:
    """A full network node (DHT, block store, BitSwap-like exchange) on ``transport``."""
    home = Path(tempfile.mkdtemp(prefix="sedma-nat-"))
    config = NodeConfig(host=args.host, ephemeral=True, use_memory=False, home=home)
    return await Node(config, transport=transport).start()


async def run_node_target(args: argparse.Namespace) -> None:
    transport = NatTransport(punch=PunchConfig(enabled=not args.no_punch))
    node = await _node(args, transport)
    arr = _tensor(args.seed)
    cid = await node.put_tensor(arr, replicas=0)

    async def echo(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"x": body.get("x"), "you": caller.peer_id.hex()}

    async def block(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"data": node.store.get(str(body["cid"]))}

    async def paths(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"inbound": list(transport.inbound_paths)}

    for name, fn in (("nat.echo", echo), ("nat.block", block), ("nat.paths", paths)):
        node.endpoint.register(name, fn)
    reservation = await _reserve(args, node.endpoint, transport)
    info = node.info
    _say(
        "READY",
        {
            "peer_id": node.identity.peer_id.hex(),
            "host": info.host,
            "port": info.port,
            "observed": reservation.observed,
            "manifest": cid,
            "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
        },
    )
    await reservation.closed.wait()


async def run_node_dial(args: argparse.Namespace) -> None:
    transport = NatTransport(punch=PunchConfig(enabled=not args.no_punch))
    node = await _node(args, transport)
    tid, thost, tport = _addr(args.target)
    peer = PeerInfo(tid, thost, tport, relay=_addr(args.relay))
    transport.add_route(peer)
    try:
        manifest = Manifest.from_block((await node.exchange.fetch([args.manifest], [peer]))[args.manifest])
        blocks = await node.exchange.fetch(list(manifest.blocks), [peer])  # verified against CIDs
        arr = assemble_tensor(manifest, blocks, verify=True)
        inbound = (await node.endpoint.request(peer, "nat.paths", {}))["inbound"]
        rpc = await node.endpoint.connection(peer)
    except PeerError as exc:
        _say("RESULT", {"ok": False, "error": str(exc)})
        return
    assert rpc.caller is not None
    _say(
        "RESULT",
        {
            "ok": True,
            "proven_peer_id": rpc.caller.peer_id.hex(),
            "path": transport.paths.get(tid, "direct"),
            "target_paths": inbound,
            "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
            "bytes_in": node.stats.bytes_in,
        },
    )
    await node.stop()


async def run_target(args: argparse.Namespace) -> None:
    if args.node:
        return await run_node_target(args)
    ident = Identity.generate()
    transport = NatTransport(ident, punch=PunchConfig(enabled=not args.no_punch))
    endpoint = RpcEndpoint(ident, transport)
    tensor = chunk_tensor(_tensor(args.seed))

    async def echo(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"x": body.get("x"), "you": caller.peer_id.hex()}

    async def block(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"data": tensor.blocks[str(body["cid"])]}

    async def paths(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"inbound": list(transport.inbound_paths)}

    endpoint.register("nat.echo", echo)
    endpoint.register("nat.block", block)
    endpoint.register("nat.paths", paths)
    host, port = await endpoint.listen(args.host, 0)
    reservation = await _reserve(args, endpoint, transport)
    digest = hashlib.sha256(_tensor(args.seed).tobytes()).hexdigest()
    _say(
        "READY",
        {
            "peer_id": ident.peer_id.hex(),
            "host": host,
            "port": port,
            "observed": reservation.observed,
            "manifest": tensor.manifest_cid,
            "sha256": digest,
        },
    )
    await reservation.closed.wait()


async def _fetch_tensor(endpoint: RpcEndpoint, peer: PeerInfo, manifest_cid: str) -> str:
    manifest = Manifest.from_block((await endpoint.request(peer, "nat.block", {"cid": manifest_cid}))["data"])
    blocks = {c: (await endpoint.request(peer, "nat.block", {"cid": c}))["data"] for c in manifest.blocks}
    return hashlib.sha256(assemble_tensor(manifest, blocks, verify=True).tobytes()).hexdigest()


async def run_dial(args: argparse.Namespace) -> None:
    if args.node:
        return await run_node_dial(args)
    ident = Identity.generate()
    transport = NatTransport(ident, punch=PunchConfig(enabled=not args.no_punch))
    endpoint = RpcEndpoint(
        ident, TcpTransport() if args.direct_only else transport, config=RpcConfig(connect_timeout=3.0)
    )
    tid, thost, tport = _addr(args.target)
    peer = PeerInfo(tid, thost, tport, relay=None if args.direct_only else _addr(args.relay))
    transport.add_route(peer)
    try:
        rpc = await endpoint.connection(peer)
        echo = await endpoint.request(peer, "nat.echo", {"x": b"ping"})
        digest = await _fetch_tensor(endpoint, peer, args.manifest) if args.manifest else None
        inbound = (await endpoint.request(peer, "nat.paths", {}))["inbound"]
    except PeerError as exc:
        _say("RESULT", {"ok": False, "error": str(exc)})
        return
    assert rpc.caller is not None
    _say(
        "RESULT",
        {
            "ok": True,
            "proven_peer_id": rpc.caller.peer_id.hex(),
            "echo": echo["x"].decode(),
            "seen_as": echo["you"],
            "path": transport.paths.get(tid, "direct"),
            "direct_error": transport.direct_errors.get(tid),
            "target_paths": inbound,
            "sha256": digest,
        },
    )
    await endpoint.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["relay", "target", "dial"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--relay", help="PEERID_HEX:HOST:PORT")
    parser.add_argument("--target", help="PEERID_HEX:HOST:PORT")
    parser.add_argument("--bootstrap", help="PEERID_HEX:HOST:RPCPORT of a relay node (AutoNAT path)")
    parser.add_argument("--manifest")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-punch", action="store_true")
    parser.add_argument("--direct-only", action="store_true")
    parser.add_argument("--node", action="store_true", help="run a full sedma.net.node.Node")
    parser.add_argument("--max-reservations", type=int, default=128)
    parser.add_argument("--circuit-bytes", type=int, default=256 << 20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    role = {"relay": run_relay, "target": run_target, "dial": run_dial}[args.role]
    asyncio.run(role(args))


if __name__ == "__main__":
    main(sys.argv[1:])
