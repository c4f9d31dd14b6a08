"""``sedma bench net``: transfer, RTT and DHT look-ups beside a raw asyncio socket floor.

Everything runs between real processes on loopback in one run: raw asyncio streams
(``readexactly``) receiving 16 MiB from another process are the floor (REFERENCES.md's
"asyncio streams (floor)"), a raw ``BufferedProtocol`` is shown beside it; a node in this process
then fetches 16 MiB tensors (DHT provider look-up, verified blocks, assembly) from a peer in a
swarm process; 1 KB request round trips; signed-record gets and provider look-ups on a 64-peer
swarm (4 processes); the same look-ups after killing one process (25% of the peers).
Goals (issue 5): transfer >= 150 MB/s and >= 60% of the floor, RTT p50 <= 0.5 ms, look-ups
p50 <= 3 ms with 100% success, p95 <= 1 s with 25% of the peers dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import numpy as np
from rich.progress import Progress, TaskID

from sedma._output import err_console, print_table
from sedma.bench._figures import default_plot_path, finish, pyplot, save_figure
from sedma.errors import ConfigError, SedmaError
from sedma.net import sha256_lanes
from sedma.net.client import NodeClient
from sedma.net.loop import ENV as LOOP_ENV
from sedma.net.loop import loop_name
from sedma.net.loop import run as run_loop
from sedma.net.node import Node, NodeConfig, dht_key, parse_addr
from sedma.net.service import SWITCH_INTERVAL_S
from sedma.net.types import PeerInfo

GOAL_TRANSFER_MB_S = 150.0
GOAL_FLOOR_SHARE = 0.60
GOAL_RTT_P50_MS = 0.5
GOAL_LOOKUP_P50_MS = 3.0
GOAL_DEAD25_P95_MS = 1000.0
MIB = 1 << 20
WARMUP_KEYS = 10  # look-ups of other keys before the measured ones (see warm_up_lookups)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Sizes of one run (issue 5: 16 MiB, 64 peers, 25% killed)."""

    transfer_mib: int = 16
    repeats: int = 5
    rtt_samples: int = 1000
    peers: int = 64
    procs: int = 4
    lookups: int = 100
    seed: int = 0

    def validate(self) -> BenchConfig:
        for name in ("transfer_mib", "repeats", "rtt_samples", "peers", "procs", "lookups"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"bench net: {name} must be an integer >= 1, got {v!r}")
        if self.procs < 2 or self.peers % self.procs:
            raise ConfigError(
                f"bench net: peers ({self.peers}) must split evenly over procs >= 2 ({self.procs})"
            )
        return self


def pct(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}


# ---- the floor: raw asyncio sockets between two processes -------------------------------------


def floor_server() -> None:
    """Child process: send ``nbytes`` of raw bytes for every 1-byte request (prints its port)."""
    nbytes = int(sys.argv[1])
    payload = os.urandom(nbytes)

    class Sender(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports implement asyncio.Transport without subclassing it
            self.transport = cast(asyncio.Transport, transport)

        def data_received(self, data: bytes) -> None:
            for _ in data:
                self.transport.write(payload)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Sender, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(3600)

    run_loop(main())  # the event loop the bench itself runs on (SEDMA_UVLOOP)


class _Receiver(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.buf = bytearray(256 * 1024)
        self.want = 0
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buf)

    def buffer_updated(self, nbytes: int) -> None:
        self.want -= nbytes
        if self.want <= 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)


# (streams, BufferedProtocol, streams on the standard asyncio loop) MB/s
FloorSample = Callable[[], Awaitable[tuple[float, float, float]]]


def _floor_process(nbytes: int, *, uvloop: bool) -> tuple[subprocess.Popen[str], int]:
    """A floor_server child on the chosen event loop, and its port."""
    code = "from sedma.bench.net import floor_server; floor_server()"
    env = {**os.environ, LOOP_ENV: "1" if uvloop else "0"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(nbytes)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise SedmaError("bench net: the floor process did not start")
    return proc, int(line)


async def _streams_rate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, nbytes: int) -> float:
    """MB/s of one ``readexactly`` of ``nbytes`` (REFERENCES.md's asyncio streams floor)."""
    started = time.perf_counter()
    writer.write(b"g")
    await reader.readexactly(nbytes)
    return nbytes / (time.perf_counter() - started) / 1e6


class _PlainAsyncioFloor:
    """The streams floor on the standard asyncio loop, in a thread of its own.

    When the bench runs on uvloop, its floor is measured on uvloop too (same loop as ours);
    this one is reported beside it, so the choice of loop is visible in the figures.
    """

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.loop = asyncio.SelectorEventLoop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="asyncio-floor", daemon=True)
        self.proc, self.port = _floor_process(nbytes, uvloop=False)
        self.thread.start()

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def connect(self) -> None:
        self.reader, self.writer = await self._on_loop(
            asyncio.open_connection("127.0.0.1", self.port, limit=4 * MIB)
        )

    async def sample(self) -> float:
        return await self._on_loop(_streams_rate(self.reader, self.writer, self.nbytes))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        if not self.thread.is_alive():
            self.loop.close()
        self.proc.kill()
        self.proc.wait()


@contextlib.asynccontextmanager
async def raw_floor(nbytes: int) -> AsyncIterator[FloorSample]:
    """Child processes sending ``nbytes`` raw; yields a sampler of the floors' MB/s.

    Both main floors run on the bench's own event loop (sender and receiver), so a faster loop
    raises the floor exactly as it raises our figures.
    """
    on_uvloop = loop_name() == "uvloop"
    proc, port = _floor_process(nbytes, uvloop=on_uvloop)
    plain = _PlainAsyncioFloor(nbytes) if on_uvloop else None
    try:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 * MIB)
        transport, recv = await loop.create_connection(_Receiver, "127.0.0.1", port)
        if plain is not None:
            await plain.connect()

        async def sample() -> tuple[float, float, float]:
            streams = await _streams_rate(reader, writer, nbytes)
            recv.want, recv.done = nbytes, loop.create_future()
            started = time.perf_counter()
            transport.write(b"g")
            await recv.done
            buffered = nbytes / (time.perf_counter() - started) / 1e6
            return streams, buffered, streams if plain is None else await plain.sample()

        await sample()  # warm every connection up
        yield sample
        writer.close()
        transport.close()
    finally:
        proc.kill()
        proc.wait()
        if plain is not None:
            plain.close()


# ---- the swarm ------------------------------------------------------------------------------


@contextlib.contextmanager
def swarm_processes(
    procs: int, per_proc: int, home: Path
) -> Iterator[tuple[list[subprocess.Popen[str]], list[list[str]]]]:
    """``procs`` processes running ``sedma swarm --nodes per_proc``; yields (processes, addresses)."""
    cli = [sys.executable, "-m", "sedma.cli", "swarm", "--nodes", str(per_proc)]
    env = {**os.environ, "SEDMA_HOME": str(home)}
    started: list[subprocess.Popen[str]] = []

    def spawn(extra: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            cli + extra, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        started.append(proc)
        return proc

    try:
        addrs = [_addresses(spawn([]), per_proc)]
        rest = [spawn(["--bootstrap", addrs[0][i % per_proc]]) for i in range(procs - 1)]
        addrs += [_addresses(p, per_proc) for p in rest]
        yield started, addrs
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def _addresses(proc: subprocess.Popen[str], n: int) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    while len(lines) < n:
        line = proc.stdout.readline()
        if not line:
            raise SedmaError(f"a swarm process exited after printing {len(lines)} of {n} addresses")
        lines.append(line.strip())
    return lines


def _peer(addr: str) -> PeerInfo:
    host, port = parse_addr(addr)
    return PeerInfo(b"", host, port)


# ---- measurements on the swarm ------------------------------------------------------------


async def measure_transfer(
    node: Node, provider: str, cfg: BenchConfig, floor: FloorSample
) -> dict[str, list[float]]:
    """MB/s of ``get_tensor`` of fresh 16 MiB tensors held by a peer in another process.

    Each round samples the raw floors right before the transfer, so load drifting during the
    run hits both sides of the ratio alike. The fetched blocks reach the node's store after
    ``get_tensor`` returns; that write is awaited (untimed) before the next round, so it never
    overlaps a floor sample.
    """
    # A running node has its multi-buffer SHA-256 kernel loaded (numba disk cache, ≈ 1 s).
    await asyncio.to_thread(sha256_lanes.warm_up)
    rng = np.random.default_rng(cfg.seed)
    out: dict[str, list[float]] = {"transfer": [], "streams": [], "buffered": [], "asyncio": []}
    host, port = parse_addr(provider)
    async with NodeClient(host, port) as client:
        for i in range(cfg.repeats + 1):  # round 0 warms connections and thread pools up
            arr = rng.standard_normal(cfg.transfer_mib * MIB // 4).astype(np.float32)
            cid, _ = await client.put(arr, replicas=0)
            streams, buffered, plain = await floor()
            started = time.perf_counter()
            got = await node.get_tensor(cid)
            rate = arr.nbytes / (time.perf_counter() - started) / 1e6
            await node.exchange.flush()
            if not np.array_equal(got, arr):
                raise SedmaError(f"bench net: tensor {cid} came back different")
            if i:
                rates = {"transfer": rate, "streams": streams, "buffered": buffered, "asyncio": plain}
                for key, value in rates.items():
                    out[key].append(value)
    return out


async def measure_rtt(node: Node, addr: str, samples: int) -> list[float]:
    """Milliseconds per 1 KB request/response to a peer in another process."""
    peer, body = _peer(addr), {"pad": os.urandom(1024)}
    for _ in range(20):  # connection set-up and warm-up are not round trips
        await node.endpoint.request(peer, "node.echo", body)
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        await node.endpoint.request(peer, "node.echo", body)
        out.append((time.perf_counter() - started) * 1e3)
    return out


async def publish_keys(addrs: list[str], n: int, seed: int) -> list[tuple[str, bytes, str]]:
    """n (publisher, record key, tensor CID) published by random swarm peers through their API."""
    rnd = random.Random(seed)
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> tuple[str, bytes, str]:
        addr = rnd.choice(addrs)
        host, port = parse_addr(addr)
        async with sem, NodeClient(host, port) as client:
            key = await client.put_value(b"bench/%d" % i, b"value-%d" % i)
            cid, _ = await client.put(np.full(8, i, dtype=np.int64), replicas=0)
        return addr, key, cid

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def measure_lookups(node: Node, keys: list[tuple[str, bytes, str]], alive: set[str]) -> dict[str, Any]:
    """Record gets and provider look-ups from ``node``: latency and success."""
    gets, provs, ok_get, ok_prov, n_prov = [], [], 0, 0, 0
    for i, (publisher, key, cid) in enumerate(keys):
        started = time.perf_counter()
        value = await node.dht.get_value(key)
        gets.append((time.perf_counter() - started) * 1e3)
        ok_get += value == b"value-%d" % i
        started = time.perf_counter()
        records, _ = await node.dht.get_providers(dht_key(cid))
        provs.append((time.perf_counter() - started) * 1e3)
        if publisher in alive:
            n_prov += 1
            ok_prov += publisher in {r.peer.addr for r in records}
    return {
        "dht_get_ms": pct(gets),
        "provider_ms": pct(provs),
        "dht_get_success": ok_get / len(keys),
        "provider_success": ok_prov / max(n_prov, 1),
    }


async def warm_up_lookups(node: Node, keys: list[tuple[str, bytes, str]]) -> None:
    """Unmeasured look-ups of other keys first, as the transfer and RTT figures warm up too.

    A node's first look-ups pay one-off costs (dialling the peers the join did not reach,
    the interpreter specialising the hot code, peer-entry memos) that a running node no longer
    pays. The measured keys are not among these, so their records' signatures are still checked
    on first sight in the measurement.
    """
    for _, key, cid in keys:
        await node.dht.get_value(key)
        await node.dht.get_providers(dht_key(cid))


async def run_bench(cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """One run of every measurement; figures are all measured here."""
    task = progress.add_task(f"swarm: {cfg.peers} peers in {cfg.procs} processes", total=5)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sedma-bench-net-")))
        procs, addrs = stack.enter_context(swarm_processes(cfg.procs, cfg.peers // cfg.procs, tmp))
        node = Node(NodeConfig(ephemeral=True, home=tmp, bootstrap=(addrs[0][0],)))
        await node.start()
        try:
            async with raw_floor(cfg.transfer_mib * MIB) as floor:
                results = await _on_swarm(node, procs, addrs, cfg, floor, progress, task)
        finally:
            await node.stop()
    results["config"] = asdict(cfg)
    results["goals"] = goals(results)
    return results


def _step(progress: Progress, task: TaskID, what: str) -> None:
    progress.update(task, advance=1, description=what)


async def _on_swarm(
    node: Node,
    procs: list[subprocess.Popen[str]],
    addrs: list[list[str]],
    cfg: BenchConfig,
    floor: FloorSample,
    progress: Progress,
    task: TaskID,
) -> dict[str, Any]:
    _step(progress, task, f"transfer: {cfg.repeats} x {cfg.transfer_mib} MiB beside the raw floors")
    transfer = await measure_transfer(node, addrs[1][0], cfg, floor)
    _step(progress, task, f"rtt: {cfg.rtt_samples} x 1 KB")
    rtt = await measure_rtt(node, addrs[1][1], cfg.rtt_samples)
    _step(progress, task, f"look-ups: {cfg.lookups} keys on {cfg.peers} peers")
    everyone = [a for group in addrs for a in group]
    published = await publish_keys(everyone, cfg.lookups + WARMUP_KEYS, cfg.seed)
    keys = published[: cfg.lookups]
    await warm_up_lookups(node, published[cfg.lookups :])
    live = await measure_lookups(node, keys, set(everyone))
    _step(progress, task, "look-ups with 25% of the peers killed")
    victim = procs[-1]
    victim.kill()
    victim.wait()
    alive = {a for group in addrs[:-1] for a in group}
    dead = await measure_lookups(node, keys, alive)
    progress.update(task, advance=1)
    return _summary(cfg, transfer, rtt, live, dead)


def _summary(
    cfg: BenchConfig,
    transfer: dict[str, list[float]],
    rtt: list[float],
    live: dict[str, Any],
    dead: dict[str, Any],
) -> dict[str, Any]:
    """The JSON keys of issue 5 (and a few more) from the raw measurements."""
    mb_s = {k: float(np.median(v)) for k, v in transfer.items()}
    return {
        "transfer_mb_s_samples": transfer["transfer"],
        "transfer_mb_s": mb_s["transfer"],
        "floor_mb_s_samples": transfer["streams"],
        "floor_mb_s": mb_s["streams"],
        "floor_buffered_mb_s_samples": transfer["buffered"],
        "floor_buffered_mb_s": mb_s["buffered"],
        "transfer_share_of_floor": mb_s["transfer"] / mb_s["streams"],
        "transfer_share_of_buffered_floor": mb_s["transfer"] / mb_s["buffered"],
        "floor_asyncio_mb_s_samples": transfer["asyncio"],
        "floor_asyncio_mb_s": mb_s["asyncio"],
        "transfer_share_of_asyncio_floor": mb_s["transfer"] / mb_s["asyncio"],
        "event_loop": loop_name(),  # the loop of this process, the swarm's and the floor's
        "sha256_lanes": sha256_lanes.available(),  # blocks checked by the multi-buffer kernel
        "rtt_ms_p50": pct(rtt)["p50"],
        "rtt_ms_p95": pct(rtt)["p95"],
        "lookup_ms_p50": live["provider_ms"]["p50"],
        "lookup_ms_p95": live["provider_ms"]["p95"],
        "dht_get_ms_p50": live["dht_get_ms"]["p50"],
        "dht_get_ms_p95": live["dht_get_ms"]["p95"],
        "lookup_success": min(live["dht_get_success"], live["provider_success"]),
        "provider_success": live["provider_success"],
        "dht_get_success": live["dht_get_success"],
        "dead25_lookup_ms_p50": dead["provider_ms"]["p50"],
        "dead25_lookup_ms_p95": dead["provider_ms"]["p95"],
        "dead25_dht_get_ms_p95": dead["dht_get_ms"]["p95"],
        "dead25_provider_success": dead["provider_success"],
        "dead25_dht_get_success": dead["dht_get_success"],
        "peers": cfg.peers,
        "killed": cfg.peers // cfg.procs,
        "lookup_warmup_keys": WARMUP_KEYS,
    }


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 5's goals checked against this run's figures."""
    checks = [
        ("transfer >= 150 MB/s", r["transfer_mb_s"], r["transfer_mb_s"] >= GOAL_TRANSFER_MB_S),
        (
            "transfer >= 60% of floor",
            r["transfer_share_of_floor"],
            r["transfer_share_of_floor"] >= GOAL_FLOOR_SHARE,
        ),
        ("1 KB RTT p50 <= 0.5 ms", r["rtt_ms_p50"], r["rtt_ms_p50"] <= GOAL_RTT_P50_MS),
        ("provider look-up p50 <= 3 ms", r["lookup_ms_p50"], r["lookup_ms_p50"] <= GOAL_LOOKUP_P50_MS),
        ("DHT get p50 <= 3 ms", r["dht_get_ms_p50"], r["dht_get_ms_p50"] <= GOAL_LOOKUP_P50_MS),
        ("look-up success 100%", r["lookup_success"], r["lookup_success"] >= 1.0),
        (
            "25% dead: look-up p95 <= 1 s",
            r["dead25_lookup_ms_p95"],
            r["dead25_lookup_ms_p95"] <= GOAL_DEAD25_P95_MS,
        ),
    ]
    return [{"goal": g, "value": v, "pass": bool(ok)} for g, v, ok in checks]


def _print_transfer(r: dict[str, Any]) -> None:
    """The transfer beside the floors (all on the run's event loop, plain asyncio's beside)."""
    loop, floor = r["event_loop"], r["floor_mb_s"]
    rows: list[tuple[str, float, str]] = [
        (f"raw asyncio streams, readexactly, on {loop} (floor)", floor, "100%"),
        (
            f"raw asyncio BufferedProtocol on {loop}",
            r["floor_buffered_mb_s"],
            f"{r['floor_buffered_mb_s'] / floor:.0%}",
        ),
    ]
    if loop != "asyncio":
        rows.append(
            (
                "raw streams on the standard asyncio loop",
                r["floor_asyncio_mb_s"],
                f"{r['floor_asyncio_mb_s'] / floor:.0%}",
            )
        )
    rows.append(
        (
            "sedma get_tensor (DHT + verified blocks)",
            r["transfer_mb_s"],
            f"{r['transfer_share_of_floor']:.0%}",
        )
    )
    cfg = r["config"]
    print_table(
        f"transfer of {cfg['transfer_mib']} MiB between processes (median of {cfg['repeats']})",
        ["path", "MB/s", "share of floor"],
        rows,
    )


def print_report(r: dict[str, Any]) -> None:
    """Tables: throughput beside the floors, latencies, goals."""
    _print_transfer(r)
    print_table(
        f"latency on {r['peers']} peers (ms)",
        ["operation", "p50", "p95", "success"],
        [
            ("1 KB request RTT", r["rtt_ms_p50"], r["rtt_ms_p95"], "-"),
            (
                "DHT get (signed record)",
                r["dht_get_ms_p50"],
                r["dht_get_ms_p95"],
                f"{r['dht_get_success']:.0%}",
            ),
            ("provider look-up", r["lookup_ms_p50"], r["lookup_ms_p95"], f"{r['provider_success']:.0%}"),
            (
                f"provider look-up, {r['killed']} peers killed",
                r["dead25_lookup_ms_p50"],
                r["dead25_lookup_ms_p95"],
                f"{r['dead25_provider_success']:.0%}",
            ),
        ],
    )
    rows = [
        (g["goal"], g["value"], "[green]pass[/green]" if g["pass"] else "[red]FAIL[/red]") for g in r["goals"]
    ]
    print_table("goals", ["goal", "measured", "result"], rows)


def plot(r: dict[str, Any], path: Path) -> Path:
    """Throughput beside the floor, and latency percentiles with the goals."""
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    loop = r["event_loop"]
    ax1.bar(
        [
            f"streams on {loop}\n(floor)",
            f"BufferedProtocol\non {loop}",
            "streams on\nasyncio",
            "sedma\nget_tensor",
        ],
        [r["floor_mb_s"], r["floor_buffered_mb_s"], r["floor_asyncio_mb_s"], r["transfer_mb_s"]],
        color=["grey", "silver", "gainsboro", "C0"],
    )
    ax1.tick_params(axis="x", labelsize=8)  # four two-line labels
    ax1.axhline(GOAL_TRANSFER_MB_S, color="red", ls="--", lw=1, label="goal 150 MB/s")
    ax1.set_ylabel("MB/s")
    ax1.set_title(f"{r['config']['transfer_mib']} MiB between processes")
    ax1.legend(fontsize=8)
    names = ["RTT 1 KB", "DHT get", "providers", "providers\n25% dead"]
    keys = ["rtt_ms", "dht_get_ms", "lookup_ms", "dead25_lookup_ms"]
    x = np.arange(len(names))
    ax2.bar(x - 0.2, [r[f"{k}_p50"] for k in keys], 0.4, label="p50")
    ax2.bar(x + 0.2, [r[f"{k}_p95"] for k in keys], 0.4, label="p95")
    ax2.axhline(GOAL_LOOKUP_P50_MS, color="red", ls="--", lw=1, label="goal look-up p50 3 ms")
    ax2.set_xticks(x, names, fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("ms")
    ax2.set_title(f"latency on {r['peers']} peers")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


@click.command(name="net")
@click.option("--quick", is_flag=True, help="Fewer repeats and samples (same sizes and 64 peers).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to save the plot [default: $SEDMA_HOME/bench/net.png].")  # fmt: skip
@click.option("--no-plot", is_flag=True, help="Do not draw the plot.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
def net(quick: bool, plot_path: Path | None, no_plot: bool, as_json: bool) -> None:
    """Transfer MB/s beside a raw socket floor, 1 KB RTT, DHT look-ups on 64 peers, 25% killed."""
    cfg = BenchConfig(repeats=3, rtt_samples=300, lookups=40) if quick else BenchConfig()
    cfg.validate()
    # Same process setting as a node service (sedma.net.service): block I/O runs in threads.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    with Progress(console=err_console, transient=True) as progress:
        results = run_loop(run_bench(cfg, progress))
    results["plot"] = None if no_plot else str(plot(results, plot_path or default_plot_path("net")))
    finish(results, as_json=as_json, report=print_report)
