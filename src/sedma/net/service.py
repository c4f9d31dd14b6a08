"""Run nodes as a process: structured logs, clean shutdown on SIGTERM, Prometheus metrics.

``run_node`` serves one :class:`~sedma.net.node.Node` until SIGTERM/SIGINT; ``run_swarm``
runs N nodes in one event loop (the first is everyone's bootstrap unless one is given), prints
their addresses one per line and serves until interrupted. Metrics are the Prometheus text
format on ``GET /metrics`` of a loopback HTTP listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TextIO

from sedma.net.loop import loop_name
from sedma.net.node import Node, NodeConfig

log = logging.getLogger("sedma.net.service")
SWITCH_INTERVAL_S = 0.0005


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: ts, level, logger, msg (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Structured (JSON lines) logs on stderr for the whole ``sedma`` logger tree."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("sedma")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def metrics_text(nodes: list[Node]) -> str:
    """Prometheus exposition of every node's counters and gauges, labelled by address."""
    lines: list[str] = []
    series: list[tuple[str, str, Callable[[Node], float]]] = [
        ("sedma_net_known_peers", "gauge", lambda n: len(n.dht.routing)),
        ("sedma_net_connections", "gauge", lambda n: len(n.endpoint.connected())),
        ("sedma_net_blocks", "gauge", lambda n: len(n.store)),
        ("sedma_net_store_bytes", "gauge", lambda n: n.store.used_bytes),
        ("sedma_net_puts_total", "counter", lambda n: n.stats.puts),
        ("sedma_net_gets_total", "counter", lambda n: n.stats.gets),
        ("sedma_net_get_failures_total", "counter", lambda n: n.stats.get_failures),
        ("sedma_net_bytes_in_total", "counter", lambda n: n.stats.bytes_in),
        ("sedma_net_penalties_total", "counter", lambda n: n.stats.penalties),
        ("sedma_net_cache_hits_total", "counter", lambda n: n.stats.cache_hits),
        ("sedma_net_dht_records", "gauge", lambda n: len(n.dht.storage.records)),
        ("sedma_net_dht_provider_keys", "gauge", lambda n: len(n.dht.storage.providers)),
        ("sedma_net_relay_bytes_total", "counter", lambda n: getattr(n._relay, "carried", 0)),
    ]
    for name, kind, get in series:
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f'{name}{{node="{n.addr}"}} {float(get(n))}' for n in nodes)
    lines.extend(_transport_metrics(nodes))
    return "\n".join(lines) + "\n"


def _transport_metrics(nodes: list[Node]) -> list[str]:
    """The NAT transport's counters: paths of outbound (last per peer) and inbound connections,
    live relay reservations."""
    stats = [(n, n.transport.stats()) for n in nodes]
    keys = sorted({k for _, s in stats for k in s})
    lines: list[str] = []
    for key in keys:
        name = f"sedma_net_nat_{key}_total" if key.startswith("in_") else f"sedma_net_nat_{key}"
        lines.append(f"# TYPE {name} {'counter' if key.startswith('in_') else 'gauge'}")
        lines.extend(f'{name}{{node="{n.addr}"}} {float(s.get(key, 0))}' for n, s in stats)
    return lines


async def serve_metrics(nodes: list[Node], host: str, port: int) -> asyncio.Server:
    """A minimal HTTP/1.0 endpoint answering ``GET /metrics``; anything else is 404."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            ok = path == b"/metrics"
            body = metrics_text(nodes).encode() if ok else b"not found\n"
            status = b"200 OK" if ok else b"404 Not Found"
            writer.write(
                b"HTTP/1.0 " + status + b"\r\nContent-Type: text/plain; version=0.0.4\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def run_node(config: NodeConfig, *, metrics_port: int | None = None, out: TextIO | None = None) -> None:
    """Serve one node until SIGTERM/SIGINT, then leave cleanly."""
    await run_swarm([config], metrics_port=metrics_port, out=out)


async def run_swarm(
    configs: list[NodeConfig], *, metrics_port: int | None = None, out: TextIO | None = None
) -> None:
    """Start every node (later ones bootstrap from the first), print addresses, serve."""
    # Block reads run in worker threads; a short GIL switch interval hands the result back to
    # the event loop in well under the default 5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    _raise_fd_limit()
    stop = _stop_event()
    log.info("event loop: %s", loop_name())
    nodes: list[Node] = []
    metrics: asyncio.Server | None = None
    memory = _open_memory(configs[0])
    try:
        for i, cfg in enumerate(configs):
            if i > 0 and not cfg.bootstrap:
                cfg = replace(cfg, bootstrap=(nodes[0].addr,))
            nodes.append(await Node(cfg, memory=memory).start())
            log.info("node %s listening on %s", nodes[-1].identity.text, nodes[-1].addr)
        if metrics_port is not None:
            metrics = await serve_metrics(nodes, configs[0].host, metrics_port)
            log.info("metrics on http://%s:%d/metrics", configs[0].host, metrics_port)
        stream = out or sys.stdout
        for node in nodes:
            stream.write(node.addr + "\n")
        stream.flush()
        await stop.wait()
        log.info("shutting down %d node(s)", len(nodes))
    finally:
        if metrics is not None:
            metrics.close()
        await _stop_all(nodes)
        if memory is not None:
            memory.close()


def _raise_fd_limit() -> None:
    """Peers keep one pooled connection per peer they talk to: allow as many as the system does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _open_memory(config: NodeConfig) -> Any:
    """One dual memory shared by every node of this process (None when switched off)."""
    if not config.use_memory:
        return None
    from sedma.memory import DualMemory

    return DualMemory.open(home=config.home)


async def _stop_all(nodes: list[Node]) -> None:
    started = time.perf_counter()
    for node in reversed(nodes):
        with contextlib.suppress(Exception):
            await node.stop()
    log.info("stopped in %.3f s", time.perf_counter() - started)
