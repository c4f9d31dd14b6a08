"""Multi-buffer SHA-256: 16 equal-length messages hashed at once, one SIMD lane per message.

A tensor's blocks are independent messages of the same length (1 MiB) and SHA-256 is serial
within a message, so the parallelism is across messages: :mod:`sedma.net._sha256_kernel` runs
the compression of FIPS 180-4 §6.2.2 with the 16 messages as the innermost loop, vectorised by
LLVM through numba. On this VM (no SHA-NI) one pass over 16 × 1 MiB takes ≈ 13 ms of CPU
against ≈ 42 ms for 16 ``hashlib.sha256`` calls. Digests are byte-identical to hashlib's (the
tests pin every length class), so CIDs do not change.

A pass costs the same however many lanes carry a message, so groups of fewer than
:data:`MIN_BATCH` messages and unaligned buffers take hashlib. The kernel is loaded on demand
(:func:`load_in_background`; numba's import plus its disk cache take ≈ 1 s, a first compile
≈ 10 s) and hashlib serves until it is ready. ``SEDMA_NET_SHA256=hashlib`` (or numba missing)
keeps hashlib throughout.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from sedma.errors import InputError

ENV = "SEDMA_NET_SHA256"
LANES = 16
MIN_BATCH = 6  # one 16-lane pass costs about as much as 5.7 hashlib calls of the same length
U32 = npt.NDArray[np.uint32]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


def _primes(n: int) -> list[int]:
    found: list[int] = []
    candidate = 2
    while len(found) < n:
        if all(candidate % p for p in found if p * p <= candidate):
            found.append(candidate)
        candidate += 1
    return found


def _icbrt(n: int) -> int:
    x: int = round(float(n) ** (1 / 3))
    while x**3 > n:
        x -= 1
    while (x + 1) ** 3 <= n:
        x += 1
    return x


# FIPS 180-4 §4.2.2 and §5.3.3: first 32 fractional bits of the cube and square roots of the
# first primes, computed exactly in integers (no table to mistype).
K = np.array([_icbrt(p << 96) & 0xFFFFFFFF for p in _primes(64)], dtype=np.uint32)
H0 = np.array([math.isqrt(p << 64) & 0xFFFFFFFF for p in _primes(8)], dtype=np.uint32)


class _Kernel:
    """The compiled compression function, loaded once, in the background or on request."""

    def __init__(self) -> None:
        self.enabled = os.environ.get(ENV, "numba").lower() != "hashlib"
        self.compress: Callable[..., None] | None = None
        self.failed: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        with self._lock:
            if self.compress is not None or self.failed is not None or not self.enabled:
                return
            try:
                from sedma.net import _sha256_kernel as kernel
            except ImportError as exc:  # numba missing: hashlib it is
                self.failed = str(exc)
                return
            compress: Callable[..., None] = kernel.compress
            state = np.repeat(H0[:, None], LANES, axis=1)
            compress(np.zeros(LANES * 16, np.uint32), np.arange(LANES) * 16, 1, state, K)  # compile now
            self.compress = compress

    def load_in_background(self) -> None:
        with self._lock:
            if self._thread is not None or not self.enabled:
                return
            self._thread = threading.Thread(target=self.load, name="sha256-lanes-load", daemon=True)
        self._thread.start()


_kernel = _Kernel()


def available() -> bool:
    """Whether multi-buffer passes are used now (kernel loaded, not switched off)."""
    return _kernel.compress is not None


def load_in_background() -> None:
    """Start loading the kernel in a daemon thread (idempotent); hashlib serves meanwhile."""
    _kernel.load_in_background()


def warm_up() -> bool:
    """Load the kernel now (blocking); returns :func:`available`."""
    _kernel.load()
    return available()


def _tail(buf: U8, offs: I64, length: int) -> tuple[U32, int]:
    """Every lane's last partial block plus §5.1.1 padding: (words of LANES × n blocks, n)."""
    full = length - length % 64
    rem = length - full
    nblocks = 1 if rem < 56 else 2
    tail = np.zeros((LANES, nblocks * 64), dtype=np.uint8)
    if rem:
        tail[:, :rem] = buf[offs[:, None] + full + np.arange(rem)]
    tail[:, rem] = 0x80
    tail[:, -8:] = np.frombuffer((length * 8).to_bytes(8, "big"), dtype=np.uint8)
    return tail.reshape(-1).view(np.uint32), nblocks


def _pass(compress: Callable[..., None], buf: U8, offs: I64, length: int) -> list[bytes]:
    """Digests of LANES messages of ``length`` bytes at byte offsets ``offs`` (§6.2.2)."""
    state = np.repeat(H0[:, None], LANES, axis=1)
    if length >= 64:
        words = buf[: buf.size - buf.size % 4].view(np.uint32)
        compress(words, offs // 4, length // 64, state, K)
    tail, nblocks = _tail(buf, offs, length)
    compress(tail, np.arange(LANES, dtype=np.int64) * (nblocks * 16), nblocks, state, K)
    raw = state.T.astype(">u4").tobytes()
    return [raw[32 * i : 32 * i + 32] for i in range(LANES)]


def digests(buf: U8, offsets: Sequence[int], length: int) -> list[bytes]:
    """SHA-256 digests of ``buf[o : o + length]`` for every offset, 16 messages per SIMD pass."""
    if buf.ndim != 1 or buf.dtype != np.uint8 or not buf.flags.c_contiguous:
        raise InputError(f"digests: buffer must be contiguous 1-D uint8, got {buf.dtype} {buf.shape}")
    if length < 0 or any(o < 0 or o + length > buf.size for o in offsets):
        raise InputError(f"digests: {length} B messages at {list(offsets)[:4]}… pass its {buf.size} B")
    compress = _kernel.compress
    out: list[bytes] = []
    for start in range(0, len(offsets), LANES):
        group = list(offsets[start : start + LANES])
        if compress is None or len(group) < MIN_BATCH or not _aligned(buf, group):
            out.extend(hashlib.sha256(buf[o : o + length].data).digest() for o in group)
            continue
        lanes = np.array(group + [group[-1]] * (LANES - len(group)), dtype=np.int64)
        out.extend(_pass(compress, buf, lanes, length)[: len(group)])
    return out


def _aligned(buf: U8, offsets: Sequence[int]) -> bool:
    # The kernel loads 32-bit words: every message must start on a 4-byte boundary.
    return bool(buf.ctypes.data % 4 == 0) and all(o % 4 == 0 for o in offsets)


def digest_many(blocks: Sequence[Any]) -> list[bytes]:
    """SHA-256 of byte blocks of any lengths (equal-length groups of >= MIN_BATCH share passes)."""
    out: list[bytes | None] = [None] * len(blocks)
    by_len: dict[int, list[int]] = {}
    for i, block in enumerate(blocks):
        by_len.setdefault(len(block), []).append(i)
    for length, idx in by_len.items():
        if _kernel.compress is None or len(idx) < MIN_BATCH or length % 4:
            for i in idx:
                out[i] = hashlib.sha256(blocks[i]).digest()
            continue
        staging = np.empty(len(idx) * length, dtype=np.uint8)
        for j, i in enumerate(idx):
            staging[j * length : (j + 1) * length] = np.frombuffer(blocks[i], dtype=np.uint8)
        for i, d in zip(idx, digests(staging, [j * length for j in range(len(idx))], length), strict=True):
            out[i] = d
    return [d for d in out if d is not None]
