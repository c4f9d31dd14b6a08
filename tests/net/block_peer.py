"""A real :class:`~sedma.net.node.Node` process for the exchange and shaped-selection tests.

Run as ``python tests/net/block_peer.py --store DIR``: the node puts a seeded tensor (no
replicas), ``--lie`` then overwrites every block on its disk with other bytes (a corrupt or
malicious peer), and it prints ``READY {json}`` with its peer id, address, manifest CID and the
tensor's sha256, then serves until killed.
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

from sedma.net.identity import Identity
from sedma.net.node import Node, NodeConfig


def seeded_identity(seed: int) -> Identity:
    """A deterministic identity, so peer ids (and XOR order) are the same in every run."""
    key = hashlib.sha256(b"sedma-test-peer-%d" % seed).digest()
    return Identity.from_private(Ed25519PrivateKey.from_private_bytes(key))


def tensor(seed: int, nbytes: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(nbytes // 8)


async def run(args: argparse.Namespace) -> None:
    ident = seeded_identity(args.id_seed) if args.id_seed is not None else Identity.generate()
    config = NodeConfig(home=Path(args.store), ephemeral=True, bootstrap=tuple(args.bootstrap))
    node = await Node(config, identity=ident).start()
    array = tensor(args.seed, args.nbytes)
    if args.chunk:
        from sedma.net.tensor import chunk_tensor

        tb = chunk_tensor(array, chunk_size=args.chunk)
        node.store.put_many(tb.blocks, pin=True)
        cid = tb.manifest_cid
        await node.publish(cid, replicas=0)
    else:
        cid = await node.put_tensor(array, replicas=0)
    manifest = node._local_manifest(cid)
    if args.lie:
        for block in [cid, *manifest.blocks]:
            node.store._path(block).write_bytes(b"forged:" + block.encode())
    doc = {
        "peer_id": ident.peer_id.hex(),
        "host": node.info.host,
        "port": node.info.port,
        "manifest": cid,
        "blocks": list(manifest.blocks),
        "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
    }
    print("READY", json.dumps(doc), flush=True)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nbytes", type=int, default=4 << 20)
    parser.add_argument("--chunk", type=int, default=0, help="block size (default: the node's 1 MiB)")
    parser.add_argument("--id-seed", type=int)
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--lie", action="store_true")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
