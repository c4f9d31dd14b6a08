"""This peer's load (Eq. 7 inputs): idle-core fraction and free memory, measured with psutil.

Sampling is cached for ``ttl_s`` (1 s) so answering many load queries costs nothing. The idle
fraction is the share of CPU time idle since the previous sample (``psutil.cpu_times``
deltas); the very first sample, having no previous one, uses the 1-minute load average.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any, Protocol

import psutil

from sedma.net.types import PeerInfo, PeerLoad, PeerStats, ProtocolError

_GB = 1e9


class _Observer(Protocol):
    def observe(self, stream: str, value: float) -> Any: ...


class LoadProbe:
    """Measures and caches this machine's PeerLoad."""

    def __init__(self, *, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._last: PeerLoad | None = None
        self._times: tuple[float, float] | None = None  # (idle, total) CPU seconds

    def sample(self) -> PeerLoad:
        """The cached load, re-measured when older than ``ttl_s``."""
        with self._lock:
            now = time.time()
            if self._last is None or now - self._last.measured_at >= self.ttl_s:
                self._last = PeerLoad(self._idle_fraction(), _mem_free_gb(), now)
            return self._last

    def _idle_fraction(self) -> float:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(times)
        previous, self._times = self._times, (idle, total)
        if previous is None or total - previous[1] <= 0:
            load1 = os.getloadavg()[0]
            return _clip(1.0 - load1 / (psutil.cpu_count() or 1))
        return _clip((idle - previous[0]) / (total - previous[1]))


def _mem_free_gb() -> float:
    return float(psutil.virtual_memory().available) / _GB


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def load_streams(peer_id: bytes) -> tuple[str, str]:
    """STM stream names holding a peer's idle fraction and free memory."""
    return f"net/load/idle/{peer_id.hex()}", f"net/load/mem/{peer_id.hex()}"


def record_load(memory: _Observer | None, peer_id: bytes, load: PeerLoad) -> None:
    """Append a peer's advertised load to short-term memory (current loads live in STM)."""
    if memory is None:
        return
    idle_stream, mem_stream = load_streams(peer_id)
    memory.observe(idle_stream, load.idle_fraction)
    memory.observe(mem_stream, load.mem_free_gb)


def load_to_body(load: PeerLoad) -> dict[str, float]:
    """Wire form of a load advertisement (msgpack-able)."""
    return {"idle": load.idle_fraction, "mem_gb": load.mem_free_gb, "at": load.measured_at}


def load_from_body(body: dict[str, Any]) -> PeerLoad:
    """Parse an untrusted load advertisement, clipping values into their ranges."""
    values = [body.get(k) for k in ("idle", "mem_gb", "at")]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != 3 or not all(map(math.isfinite, numbers)):
        raise ProtocolError(f"load advertisement needs finite idle/mem_gb/at, got {body!r:.120}")
    return PeerLoad(_clip(numbers[0]), max(0.0, numbers[1]), numbers[2])


# -- peer profiles (long-term) and loads (short-term) -> Eq. 7 inputs ------------------------------
class _Memory(_Observer, Protocol):
    def recall(self, layer: str, kind: str, key: str) -> Any: ...
    def remember(
        self, layer: str, kind: str, key: str, value: Any, *, score: float = ..., force: bool = ...
    ) -> Any: ...
    def recent(self, stream: str) -> Any: ...


def rtt_stream(peer_id: bytes) -> str:
    return f"net/rtt/{peer_id.hex()}"


def record_rtt(memory: _Observer | None, peer_id: bytes, rtt_ms: float) -> None:
    """Append one measured round-trip time to short-term memory."""
    if memory is not None:
        memory.observe(rtt_stream(peer_id), rtt_ms)


def update_profile(
    memory: _Memory | None,
    peer_id: bytes,
    *,
    completed: bool,
    seconds: float,
    nbytes: int,
    alpha: float = 0.2,
) -> dict[str, float]:
    """Fold one transfer outcome into the peer's LTM profile ("net", "peer", id hex); returns it."""
    old = memory.recall("net", "peer", peer_id.hex()) if memory is not None else None
    prof = dict(old) if isinstance(old, dict) else {"attempts": 0.0, "completed": 0.0, "mb_s": 0.0}
    prof["attempts"] = float(prof.get("attempts", 0.0)) + 1.0
    prof["completed"] = float(prof.get("completed", 0.0)) + float(completed)
    if completed and seconds > 0:
        rate = nbytes / seconds / 1e6
        prev = float(prof.get("mb_s", 0.0))
        prof["mb_s"] = rate if prev <= 0 else (1 - alpha) * prev + alpha * rate
    success = prof["completed"] / prof["attempts"]  # Eq. 9 for this peer
    prof["success_rate"] = success
    if memory is not None:
        memory.remember("net", "peer", peer_id.hex(), prof, score=success, force=True)
    return prof


def stats_from_memory(
    memory: _Memory | None, peer: PeerInfo, *, xor_distance: int = 0, fallback: PeerStats | None = None
) -> PeerStats:
    """Eq. 7 inputs of a peer: current load and RTT from STM, long-term profile from LTM."""
    base = fallback or PeerStats(peer)
    stats = PeerStats(peer, base.availability, base.rtt_ms, base.mem_free_gb, xor_distance, dict(base.extra))
    if memory is None:
        return stats
    idle_stream, mem_stream = load_streams(peer.peer_id)
    idle, mem, rtt = (memory.recent(s) for s in (idle_stream, mem_stream, rtt_stream(peer.peer_id)))
    # Current load: the newest sample; latency: the EWMA, since single RTTs are noisy.
    stats.availability = _stat(idle, "last", stats.availability)
    stats.mem_free_gb = _stat(mem, "last", stats.mem_free_gb)
    stats.rtt_ms = _stat(rtt, "ewma", stats.rtt_ms)
    profile = memory.recall("net", "peer", peer.peer_id.hex())
    if isinstance(profile, dict):
        stats.extra["profile"] = profile
    return stats


def _stat(stream_stats: Any, name: str, default: float) -> float:
    value = getattr(stream_stats, name, None)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else default
