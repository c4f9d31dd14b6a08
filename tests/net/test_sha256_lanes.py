"""Multi-buffer SHA-256 against hashlib: every length class, offsets, fallbacks, batch checks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sedma.errors import InputError
from sedma.net import sha256_lanes
from sedma.net.cid import compute_cid
from sedma.net.sha256_lanes import LANES, MIN_BATCH, digest_many, digests
from sedma.net.tensor import TensorAssembly, chunk_tensor
from sedma.net.verify import check_batch


@pytest.fixture(scope="module", autouse=True)
def kernel() -> None:
    # numba is a base dependency: the SIMD path must really be what these tests check.
    assert sha256_lanes.warm_up(), "the multi-buffer kernel did not load"


def _reference(buf: np.ndarray, offsets: list[int], length: int) -> list[bytes]:
    return [hashlib.sha256(buf[o : o + length].tobytes()).digest() for o in offsets]


def test_constants_are_fips_180_4() -> None:
    assert sha256_lanes.K[0] == 0x428A2F98 and sha256_lanes.K[63] == 0xC67178F2
    assert list(sha256_lanes.H0[[0, 7]]) == [0x6A09E667, 0x5BE0CD19]


@pytest.mark.parametrize("length", [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 4096])
def test_every_padding_class_matches_hashlib(length: int) -> None:
    # 0-55 tail bytes pad into one block, 56-63 into two; exact multiples of 64 add a whole block.
    rng = np.random.default_rng(length)
    buf = rng.integers(0, 256, LANES * length + 64, dtype=np.uint8)
    offsets = [i * length for i in range(LANES)]
    assert digests(buf, offsets, length) == _reference(buf, offsets, length)


def test_sixteen_one_mib_blocks_and_a_second_partial_pass() -> None:
    n, length = LANES + MIN_BATCH + 1, 1 << 20
    buf = np.frombuffer(os.urandom(n * length), dtype=np.uint8)
    offsets = [i * length for i in range(n)]
    assert digests(buf, offsets, length) == _reference(buf, offsets, length)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(0, 300),
    count=st.integers(0, 2 * LANES + 3),
    gap=st.integers(0, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_batches_match_hashlib_aligned_or_not(length: int, count: int, gap: int, seed: int) -> None:
    # Odd gaps make unaligned offsets: those groups must fall back to hashlib, still correct.
    rng = np.random.default_rng(seed)
    buf = rng.integers(0, 256, count * (length + gap) + 1, dtype=np.uint8)
    offsets = [i * (length + gap) for i in range(count)]
    assert digests(buf, offsets, length) == _reference(buf, offsets, length)


def test_digest_many_groups_mixed_lengths_in_order() -> None:
    rng = np.random.default_rng(7)
    blocks = [rng.bytes(4096) for _ in range(9)] + [rng.bytes(100), bytearray(rng.bytes(4096)), b""]
    blocks.insert(3, rng.bytes(33))
    assert digest_many(blocks) == [hashlib.sha256(b).digest() for b in blocks]


def test_check_batch_flags_exactly_the_forged_blocks() -> None:
    rng = np.random.default_rng(3)
    blocks = [rng.bytes(8192) for _ in range(LANES)]
    pairs = [(compute_cid(b), b) for b in blocks]
    pairs[5] = (pairs[5][0], b"\0" + blocks[5][1:])
    pairs[11] = (pairs[11][0], blocks[11][:-1])
    verdicts, in_place = check_batch(pairs)
    assert verdicts == [i not in (5, 11) for i in range(LANES)] and not any(in_place)


def test_checks_in_place_commit_only_genuine_blocks_into_the_tensor() -> None:
    # 12 blocks of 4 KiB; block 3 repeats at position 9; the batch holds a forged copy of
    # block 2 (same length) before its genuine one, and the last, shorter block.
    rng = np.random.default_rng(4)
    arr = rng.integers(0, 256, 12 * 4096 - 100, dtype=np.uint8)
    arr[9 * 4096 : 10 * 4096] = arr[3 * 4096 : 4 * 4096]
    tb = chunk_tensor(arr, chunk_size=4096)
    assembly = TensorAssembly(tb.manifest)
    order = list(dict.fromkeys(tb.manifest.blocks))
    forged = (order[2], rng.bytes(4096))
    pairs = [forged] + [(c, tb.blocks[c]) for c in order]
    verdicts, in_place = check_batch(pairs, assembly)
    assert verdicts == [False] + [True] * len(order)
    assert in_place[0] and not in_place[3]  # the forged copy took the slot, the genuine one did not
    for (cid, _), ok, placed in zip(pairs, verdicts, in_place, strict=True):
        if ok and placed:
            assembly.commit(cid)
        elif ok:
            assembly.place(cid, dict(pairs[1:])[cid])
    np.testing.assert_array_equal(assembly.result(), arr)


def test_bad_buffers_and_ranges_are_typed_errors() -> None:
    with pytest.raises(InputError, match="uint8"):
        digests(np.zeros(64, dtype=np.uint32), [0], 64)
    with pytest.raises(InputError, match="contiguous"):
        digests(np.zeros(256, dtype=np.uint8)[::2], [0], 64)
    with pytest.raises(InputError, match="pass its"):
        digests(np.zeros(128, dtype=np.uint8), [0, 100], 64)


def test_env_switch_keeps_hashlib_and_the_same_digests() -> None:
    code = (
        "import numpy as np, hashlib\n"
        "from sedma.net import sha256_lanes as s\n"
        "buf = np.arange(16 * 256, dtype=np.uint32).view(np.uint8)\n"
        "offs = [i * 1024 for i in range(16)]\n"
        "assert not s.warm_up() and not s.available()\n"
        "assert s.digests(buf, offs, 1024) == [hashlib.sha256(buf[o:o + 1024]).digest() for o in offs]\n"
        "print('hashlib ok')\n"
    )
    env = {**os.environ, sha256_lanes.ENV: "hashlib"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "hashlib ok" in out.stdout
