"""``sedma node start | put | get | peers | swarm``: thin commands over the net library."""

from __future__ import annotations

import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np

from sedma._output import emit_json, print_table
from sedma.errors import InputError
from sedma.net.client import NodeClient
from sedma.net.loop import run as run_loop
from sedma.net.node import NodeConfig, parse_addr
from sedma.net.selection import STRATEGIES

T = TypeVar("T")
DEFAULT_NODE = "127.0.0.1:4040"
MAX_SWARM = 128  # peers of one process keep connections to each other: file descriptors add up
NODE_OPTION = click.option(
    "--node",
    "node_addr",
    default=lambda: os.environ.get("SEDMA_NODE", DEFAULT_NODE),
    show_default=f"$SEDMA_NODE or {DEFAULT_NODE}",
    help="HOST:PORT of the node to talk to.",
)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return run_loop(coro)  # uvloop when installed, unless SEDMA_UVLOOP=0


def _client(addr: str) -> NodeClient:
    host, port = parse_addr(addr, field="--node")
    return NodeClient(host, port)


@click.group()
def node() -> None:
    """Run a peer of the tensor network."""


@node.command()
@click.option("--listen", default="127.0.0.1:4040", show_default=True, help="HOST:PORT to listen on.")
@click.option("--bootstrap", multiple=True, help="HOST:PORT of a peer to join through (repeatable).")
@click.option("--relay", is_flag=True, help="Also serve as a circuit relay for peers behind NATs.")
@click.option("--relay-port", type=int, default=0, show_default=True, help="Relay port (0: any free).")
@click.option(
    "--no-autonat",
    is_flag=True,
    help="Do not ask bootstrap peers to dial back (never reserve a relay slot).",
)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="adaptive", show_default=True)
def start(
    listen: str,
    bootstrap: tuple[str, ...],
    relay: bool,
    relay_port: int,
    no_autonat: bool,
    metrics_port: int | None,
    strategy: str,
) -> None:
    """Start a node and serve until SIGTERM/SIGINT; prints its address."""
    from sedma.net.service import run_node, setup_logging

    host, port = parse_addr(listen, field="--listen")
    config = NodeConfig(
        host=host,
        port=port,
        bootstrap=bootstrap,
        relay=relay,
        relay_port=relay_port,
        autonat=not no_autonat,
        strategy=strategy,
    )
    setup_logging()
    _run(run_node(config, metrics_port=metrics_port))


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@NODE_OPTION
@click.option(
    "--replicas", type=click.IntRange(min=0), default=1, show_default=True, help="Copies on other peers."
)
def put(file: Path, node_addr: str, replicas: int) -> None:
    """Publish a .npy tensor to the network; prints its CID."""
    arr = _load_npy(file)

    async def go() -> tuple[str, list[str]]:
        async with _client(node_addr) as client:
            return await client.put(arr, replicas=replicas)

    cid, holders = _run(go())
    click.echo(cid)
    if len(holders) < replicas:
        click.secho(f"warning: placed {len(holders)} of {replicas} replicas", fg="yellow", err=True)


def _load_npy(path: Path) -> np.ndarray[Any, Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: holds an archive, not one array; save one array with np.save")
    return arr


@click.command()
@click.argument("cid")
@NODE_OPTION
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def get(cid: str, node_addr: str, output: Path) -> None:
    """Fetch a tensor by CID into a .npy file."""

    async def go() -> np.ndarray[Any, Any]:
        async with _client(node_addr) as client:
            return await client.get(cid)

    arr = _run(go())
    try:
        with output.open("wb") as fh:
            np.save(fh, arr, allow_pickle=False)
    except OSError as exc:
        raise InputError(f"{output}: cannot write ({exc.strerror})") from None
    click.echo(f"{output}: {arr.dtype} {tuple(arr.shape)}", err=True)


@click.command()
@NODE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def peers(node_addr: str, as_json: bool) -> None:
    """List the peers a node knows, with their Eq. 7 inputs and scores."""

    async def go() -> dict[str, Any]:
        async with _client(node_addr) as client:
            return await client.peers()

    doc = _run(go())
    if as_json:
        emit_json(doc)
        return
    me = doc.get("self", {})
    cols = ["peer_id", "addr", "availability", "rtt_ms", "mem_free_gb", "score", "relay"]
    rows = [
        [str(p.get(c, ""))[:24] if c == "peer_id" else ("" if p.get(c) is None else p[c]) for c in cols]
        for p in doc.get("peers", [])
    ]
    print_table(f"peers of {me.get('addr', node_addr)} ({me.get('strategy', '?')})", cols, rows)


@click.command()
@click.option("--nodes", "count", type=click.IntRange(min=1, max=MAX_SWARM), default=8, show_default=True)
@click.option(
    "--port-base",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="First port (nodes use port-base .. port-base+N-1); 0 picks free ports.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--bootstrap", multiple=True, help="Join an existing swarm through HOST:PORT.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="adaptive", show_default=True)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
def swarm(
    count: int, port_base: int, host: str, bootstrap: tuple[str, ...], strategy: str, metrics_port: int | None
) -> None:
    """Start N local peers; prints their addresses, one per line, then runs until interrupted."""
    from sedma.net.service import run_swarm, setup_logging

    if port_base and port_base + count > 65536:
        raise InputError(f"--port-base {port_base} + --nodes {count} passes port 65535")
    configs = [
        NodeConfig(
            host=host,
            port=port_base + i if port_base else 0,
            bootstrap=bootstrap,
            ephemeral=True,
            strategy=strategy,
        )
        for i in range(count)
    ]
    setup_logging()
    _run(run_swarm(configs, metrics_port=metrics_port))
