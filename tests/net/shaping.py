"""A user-space latency and bandwidth shaping TCP proxy (the kernel here has no netem).

Each accepted connection is spliced to the upstream address through two pumps, one per
direction. A chunk read at time t leaves the pump's bandwidth budget at
``release = max(t, previous release) + len / bandwidth`` and is written at ``release + latency``,
so a transfer of S bytes takes about latency + S / bandwidth, as on a real link. Order is kept
because release times only grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Shape:
    """One-way added latency (ms) and bandwidth cap (MB/s) of a shaped link."""

    latency_ms: float
    bandwidth_mb_s: float

    def transfer_s(self, nbytes: int) -> float:
        """Ground-truth time to move ``nbytes`` one way plus a request the other way."""
        return 2 * self.latency_ms / 1000 + nbytes / (self.bandwidth_mb_s * 1e6)


class ShapingProxy:
    """Listens on 127.0.0.1 and forwards to ``upstream`` with the given Shape."""

    def __init__(self, upstream: tuple[str, int], shape: Shape) -> None:
        self.upstream = upstream
        self.shape = shape
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = self._server.sockets[0].getsockname()[:2]
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        writer = asyncio.create_task(self._deliver(queue, dst))
        bytes_per_s = self.shape.bandwidth_mb_s * 1e6
        release = 0.0
        try:
            while data := await src.read(_CHUNK):
                release = max(time.monotonic(), release) + len(data) / bytes_per_s
                queue.put_nowait((release + self.shape.latency_ms / 1000, data))
                # Back-pressure: do not read far ahead of what the link could have sent.
                await asyncio.sleep(max(0.0, release - time.monotonic() - 0.05))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            queue.put_nowait((0.0, b""))
            with contextlib.suppress(Exception):
                await writer

    @staticmethod
    async def _deliver(queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()
