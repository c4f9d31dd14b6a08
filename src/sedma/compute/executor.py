"""Executors for programmed tiles: a local thread pool (default) or Ray actors holding the tiles.

Both run the same :class:`~sedma.compute.tiles.Shard` objects, each with its own random stream
seeded at programming time, and add their partial sums in shard order, so the same seed gives
the same numbers on either. With Ray each shard lives in one actor (tiles resident, programmed
once); a read ships only the input batch (one ``ray.put``) and gets partial output rows back.
Ray is used when ``SEDMA_RAY_ADDRESS`` is set or the caller asks for it; if that address is
unreachable (a ``host:port`` or ``ray://host:port`` that accepts no TCP connection within
:data:`CONNECT_TIMEOUT_S`), :class:`~sedma.errors.BackendUnavailable` names it and the reason.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sedma.compute.tiles import Shard, ShardOut
from sedma.errors import BackendUnavailable, ConfigError, InputError

EXECUTORS = ("local", "ray")
# Below this many cells per read a thread hand-off costs more than it saves.
_PARALLEL_CELLS = 1 << 18
# How long a TCP connection to SEDMA_RAY_ADDRESS may take before the cluster counts as unreachable
# (ray.init itself retries the GCS for minutes).
CONNECT_TIMEOUT_S = 5.0


class Executor(Protocol):
    name: str

    def run(self, xs: npt.NDArray[np.float32], *, exact: bool, faithful: bool) -> ShardOut: ...

    def close(self) -> None: ...


def _total(outs: list[ShardOut]) -> ShardOut:
    total = outs[0]
    for o in outs[1:]:
        total = total.add(o)
    return total


class LocalExecutor:
    """Shards in this process; large reads run them on a thread pool (BLAS releases the GIL)."""

    name = "local"

    def __init__(self, shards: list[Shard], *, threads: int = 2):
        self.shards = shards
        self.cells = sum(g.blocks * g.tile * g.tile for s in shards for g in s.groups)
        workers = min(threads, len(shards))
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def run(self, xs: npt.NDArray[np.float32], *, exact: bool, faithful: bool) -> ShardOut:
        if self._pool is None or self.cells * xs.shape[1] < _PARALLEL_CELLS:
            return _total([s.read(xs, exact, faithful) for s in self.shards])
        return _total(list(self._pool.map(lambda s: s.read(xs, exact, faithful), self.shards)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def ray_address() -> str | None:
    """The Ray cluster the user pointed SEDMA at (``SEDMA_RAY_ADDRESS``), if any."""
    return os.environ.get("SEDMA_RAY_ADDRESS") or None


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port`` or ``ray://host:port`` (IPv6 in brackets); None otherwise."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.removeprefix("[").removesuffix("]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """:class:`BackendUnavailable` naming ``address`` unless a TCP connection to it opens in time.

    Addresses Ray resolves itself (``auto``, ``local``) are left to Ray.
    """
    target = _host_port(address)
    if target is None:
        return
    if not 0 < target[1] < 1 << 16:
        raise ConfigError(f"SEDMA_RAY_ADDRESS {address!r}: port {target[1]} is not in 1..65535")
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except TimeoutError as exc:
        raise BackendUnavailable(f"cannot reach Ray at {address}: no answer within {timeout:g} s") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise BackendUnavailable(f"cannot reach Ray at {address}: {reason}") from exc


def _ensure_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailable("the ray executor needs the 'ray' extra: pip install 'sedma[ray]'") from exc
    if not ray.is_initialized():
        address = ray_address()
        if address:
            check_reachable(address)
        try:
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                # A private local instance: loopback only, no dashboard.
                ray.init(
                    num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1"
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BackendUnavailable(f"cannot reach Ray at {address or 'a local instance'}: {exc}") from exc
    return ray


class _ShardActor:
    """The body of a Ray actor: one shard's tiles, resident for the matrix's lifetime."""

    def __init__(self, shard: Shard):
        self.shard = shard

    def read(self, xs: npt.NDArray[np.float32], exact: bool, faithful: bool) -> ShardOut:
        return self.shard.read(xs, exact, faithful)


class RayExecutor:
    """One Ray actor per shard; reads send the input batch once and sum the partial rows."""

    name = "ray"

    def __init__(self, shards: list[Shard]):
        self.ray = _ensure_ray()
        actor_cls = self.ray.remote(num_cpus=0)(_ShardActor)
        self.actors = [actor_cls.remote(s) for s in shards]

    def run(self, xs: npt.NDArray[np.float32], *, exact: bool, faithful: bool) -> ShardOut:
        ref = self.ray.put(xs)
        outs = self.ray.get([a.read.remote(ref, exact, faithful) for a in self.actors])
        return _total(list(outs))

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []


def make_executor(kind: str | Executor, shards: list[Shard], *, threads: int = 2) -> Executor:
    """``local`` (default), ``ray``, or an executor object; SEDMA_RAY_ADDRESS selects Ray."""
    if not isinstance(kind, str):
        return kind
    if kind not in EXECUTORS:
        raise InputError(f"executor must be one of {EXECUTORS}, got {kind!r}")
    if kind == "ray":
        return RayExecutor(shards)
    return LocalExecutor(shards, threads=threads)
