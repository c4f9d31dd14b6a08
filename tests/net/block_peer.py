"""A block-serving peer process for the exchange and shaped-selection tests.

Real identity, TCP transport, authenticated RPC, on-disk store and the block exchange's
handlers — the parts of a node that serve blocks. Run as ``python tests/net/block_peer.py``
with ``--store DIR``; it chunks a seeded tensor into its store (``--lie`` then overwrites every
block on disk with other bytes, as a corrupt or malicious peer would serve), and prints
``READY {json}`` with its peer id, address, manifest CID and the tensor's sha256.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sedma.net.exchange import BlockExchange
from sedma.net.identity import Identity
from sedma.net.load import LoadProbe
from sedma.net.rpc import Caller, RpcEndpoint
from sedma.net.store import BlockStore
from sedma.net.tensor import chunk_tensor
from sedma.net.transport import TcpTransport


def seeded_identity(seed: int) -> Identity:
    """A deterministic identity, so peer ids (and XOR order) are the same in every run."""
    key = hashlib.sha256(b"sedma-test-peer-%d" % seed).digest()
    return Identity.from_private(Ed25519PrivateKey.from_private_bytes(key))


def tensor(seed: int, nbytes: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(nbytes // 8)


def register_exchange(endpoint: RpcEndpoint, exchange: BlockExchange) -> None:
    """Serve the exchange's methods on an RPC endpoint (handlers get the proven peer id)."""
    for method, handler in exchange.handlers().items():

        async def serve(caller: Caller, body: dict[str, Any], h: Any = handler) -> dict[str, Any]:
            result: dict[str, Any] = await h(caller.peer_id, body)
            return result

        endpoint.register(method, serve)


async def run(args: argparse.Namespace) -> None:
    ident = seeded_identity(args.id_seed) if args.id_seed is not None else Identity.generate()
    probe = LoadProbe()
    endpoint = RpcEndpoint(ident, TcpTransport(), load_fn=probe.sample)
    store = BlockStore(Path(args.store))
    exchange = BlockExchange(store, request=endpoint.request)
    register_exchange(endpoint, exchange)
    array = tensor(args.seed, args.nbytes)
    tb = chunk_tensor(array, chunk_size=args.chunk)
    store.put_many(tb.blocks, pin=True)
    if args.lie:
        for cid in tb.blocks:
            store._path(cid).write_bytes(b"forged:" + cid.encode())
    host, port = await endpoint.listen("127.0.0.1", 0)
    doc = {
        "peer_id": ident.peer_id.hex(),
        "host": host,
        "port": port,
        "manifest": tb.manifest_cid,
        "blocks": list(tb.manifest.blocks),
        "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
    }
    print("READY", json.dumps(doc), flush=True)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nbytes", type=int, default=4 << 20)
    parser.add_argument("--chunk", type=int, default=1 << 20)
    parser.add_argument("--id-seed", type=int)
    parser.add_argument("--lie", action="store_true")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
