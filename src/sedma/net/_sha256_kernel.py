"""The compiled part of :mod:`sedma.net.sha256_lanes` (imported on demand: it imports numba).

FIPS 180-4 §6.2.2 with the 16 messages as the innermost fixed-size loop of every step, so LLVM
vectorises across messages; numba widens ``uint32`` arithmetic to 64 bits, hence a cast after
every operation (it keeps each lane 32 bits wide and lets rotates become single instructions).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

LANES = 16
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]


def _rotr(x: Any, n: int) -> Any:  # pragma: no cover - compiled by numba
    return np.uint32((x >> np.uint32(n)) | (x << np.uint32(32 - n)))


_rotr = numba.njit(cache=True)(_rotr)


def _round(  # pragma: no cover - compiled by numba
    a: Any, b: Any, c: Any, d: Any, e: Any, f: Any, g: Any, h: Any, w: Any, k: Any
) -> Any:
    """One round of §6.2.2 step 3; returns the new e (d + T1) and the new a (T1 + T2)."""
    u32 = np.uint32
    t1 = u32(h + u32(_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + u32((e & f) ^ (~e & g)) + k + w)
    t2 = u32(u32(_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + u32((a & b) ^ (a & c) ^ (b & c)))
    return u32(d + t1), u32(t1 + t2)


_round = numba.njit(cache=True)(_round)


def _schedule(words: U32, offs: I64, blk: int, w: U32) -> None:  # pragma: no cover
    """§6.2.2 step 1 for every lane: big-endian words of block ``blk``, then W16..W63."""
    u32 = np.uint32
    # Lane by lane: each lane's 16 words are contiguous, so these loads vectorise (the
    # transposed order gathered one word per lane: 20% slower over the whole compression).
    for lane in range(LANES):
        base = offs[lane] + blk * 16
        for t in range(16):
            x = words[base + t]  # little-endian load, byte-swapped below
            w[t, lane] = u32(
                (x >> u32(24))
                | ((x >> u32(8)) & u32(0xFF00))
                | ((x << u32(8)) & u32(0xFF0000))
                | (x << u32(24))
            )
    for t in range(16, 64):
        for lane in range(LANES):
            w15, w2 = w[t - 15, lane], w[t - 2, lane]
            s0 = u32(_rotr(w15, 7) ^ _rotr(w15, 18) ^ (w15 >> u32(3)))
            s1 = u32(_rotr(w2, 17) ^ _rotr(w2, 19) ^ (w2 >> u32(10)))
            w[t, lane] = u32(w[t - 16, lane] + s0 + w[t - 7, lane] + s1)


_schedule = numba.njit(nogil=True, boundscheck=False, cache=True)(_schedule)


def _compress(words: U32, offs: I64, nblocks: int, state: U32, k: U32) -> None:  # pragma: no cover
    """Fold ``nblocks`` 64-byte blocks of each lane's message (word offset offs[lane]) into state[:, lane]."""
    w = np.empty((64, LANES), dtype=np.uint32)
    s = np.empty((8, LANES), dtype=np.uint32)
    for blk in range(nblocks):
        _schedule(words, offs, blk, w)
        s[:, :] = state
        # Eight rounds per pass over the lanes, the variables renamed instead of shifted, so a
        # lane's working variables stay in registers for eight rounds, not one.
        for t in range(0, 64, 8):
            for i in range(LANES):
                a, b, c, d = s[0, i], s[1, i], s[2, i], s[3, i]
                e, f, g, h = s[4, i], s[5, i], s[6, i], s[7, i]
                d, h = _round(a, b, c, d, e, f, g, h, w[t, i], k[t])
                c, g = _round(h, a, b, c, d, e, f, g, w[t + 1, i], k[t + 1])
                b, f = _round(g, h, a, b, c, d, e, f, w[t + 2, i], k[t + 2])
                a, e = _round(f, g, h, a, b, c, d, e, w[t + 3, i], k[t + 3])
                h, d = _round(e, f, g, h, a, b, c, d, w[t + 4, i], k[t + 4])
                g, c = _round(d, e, f, g, h, a, b, c, w[t + 5, i], k[t + 5])
                f, b = _round(c, d, e, f, g, h, a, b, w[t + 6, i], k[t + 6])
                e, a = _round(b, c, d, e, f, g, h, a, w[t + 7, i], k[t + 7])
                s[0, i], s[1, i], s[2, i], s[3, i] = a, b, c, d
                s[4, i], s[5, i], s[6, i], s[7, i] = e, f, g, h
        for r in range(8):
            for i in range(LANES):
                state[r, i] = np.uint32(state[r, i] + s[r, i])


compress = numba.njit(nogil=True, boundscheck=False, cache=True)(_compress)
