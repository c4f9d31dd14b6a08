"""Tensors survive chunking and assembly with dtype, shape and byte order kept."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sedma.errors import InputError
from sedma.net.cid import CID, DAG_JSON, compute_cid
from sedma.net.tensor import Manifest, TensorAssembly, assemble_tensor, chunk_tensor
from sedma.net.types import IntegrityError


@pytest.mark.parametrize(
    "array",
    [
        np.arange(1000, dtype=np.float32).reshape(10, 100),
        np.arange(24, dtype=">i8").reshape(2, 3, 4),
        np.zeros((0, 5), dtype=np.float64),
        np.array(3.5),
        np.array([1 + 2j, 3 - 1j], dtype=np.complex128),
        np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
    ],
)
def test_roundtrip_keeps_dtype_shape_and_values(array: np.ndarray) -> None:
    tb = chunk_tensor(array, chunk_size=64)
    out = assemble_tensor(Manifest.from_block(tb.blocks[tb.manifest_cid]), tb.blocks)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_one_mib_chunks_and_a_dag_json_manifest() -> None:
    array = np.random.default_rng(0).standard_normal(700_000)  # 5.6 MB -> 6 blocks
    tb = chunk_tensor(array)
    assert len(tb.manifest.blocks) == 6
    assert all(len(tb.blocks[c]) == 1 << 20 for c in tb.manifest.blocks[:-1])
    assert CID.parse(tb.manifest_cid).codec == DAG_JSON
    assert tb.manifest_cid == compute_cid(tb.blocks[tb.manifest_cid], DAG_JSON)
    assert chunk_tensor(array.copy()).manifest_cid == tb.manifest_cid  # deterministic


def test_repeated_chunks_share_one_block() -> None:
    tb = chunk_tensor(np.zeros(1024, dtype=np.uint8), chunk_size=256)
    assert len(tb.manifest.blocks) == 4 and len(tb.blocks) == 2  # one data block + manifest


def test_object_dtype_is_rejected() -> None:
    with pytest.raises(InputError, match="object"):
        chunk_tensor(np.array([{"a": 1}], dtype=object))


def test_structured_dtype_is_rejected() -> None:
    with pytest.raises(InputError, match="structured"):
        chunk_tensor(np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]))


def test_assembly_detects_a_tampered_block() -> None:
    tb = chunk_tensor(np.arange(100, dtype=np.int32), chunk_size=128)
    blocks = dict(tb.blocks)
    first = tb.manifest.blocks[0]
    blocks[first] = b"\x01" + blocks[first][1:]
    with pytest.raises(IntegrityError):
        assemble_tensor(tb.manifest, blocks)


def test_assembly_reports_a_missing_block() -> None:
    tb = chunk_tensor(np.arange(100, dtype=np.int32), chunk_size=128)
    with pytest.raises(InputError, match="missing"):
        assemble_tensor(tb.manifest, {})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dtype", "O", "object"),
        ("dtype", "not-a-dtype", "dtype"),
        ("shape", [-1], "shape"),
        ("nbytes", 7, "nbytes"),
        ("chunk", 0, "chunk"),
        ("blocks", [], "one link per chunk"),
        ("format", "other", "format"),
    ],
)
def test_bad_manifest_fields_are_named(field: str, value: object, message: str) -> None:
    tb = chunk_tensor(np.arange(10, dtype=np.float32))
    doc = json.loads(tb.blocks[tb.manifest_cid])
    doc[field] = value
    with pytest.raises(InputError, match=message):
        Manifest.from_block(json.dumps(doc).encode())


def test_manifest_that_is_not_json_is_rejected() -> None:
    with pytest.raises(InputError, match="not JSON"):
        Manifest.from_block(b"\xff\x00garbage")


def test_assembly_fills_repeated_blocks_in_any_order_and_rejects_misfits() -> None:
    array = np.concatenate(
        [np.zeros(64, np.float32), np.arange(40, dtype=np.float32), np.zeros(32, np.float32)]
    )
    tb = chunk_tensor(array, chunk_size=128)  # blocks: zeros, ramp, zeros+ramp tail, ... (repeats)
    assert len(set(tb.manifest.blocks)) < len(tb.manifest.blocks)
    assembly = TensorAssembly(tb.manifest)
    for cid in reversed(dict.fromkeys(tb.manifest.blocks)):  # each distinct block once, any order
        assembly.place(cid, bytearray(tb.blocks[cid]))
    np.testing.assert_array_equal(assembly.result(), array)

    partial = TensorAssembly(tb.manifest)
    partial.place(tb.manifest.blocks[0], tb.blocks[tb.manifest.blocks[0]])
    with pytest.raises(InputError, match="missing"):
        partial.result()
    misfit = TensorAssembly(tb.manifest)
    for cid in tb.manifest.blocks:
        misfit.place(cid, tb.blocks[cid] + b"x")
    with pytest.raises(IntegrityError, match="chunk layout"):
        misfit.result()


def test_assembly_slots_open_once_per_unfilled_block_of_the_right_size() -> None:
    arr = np.zeros(3 * 1024 + 10, dtype=np.uint8)  # blocks 0-2 identical, block 3 of 10 bytes
    arr[-10:] = 7
    tb = chunk_tensor(arr, chunk_size=1024)
    zero, last = tb.manifest.blocks[0], tb.manifest.blocks[3]
    assembly = TensorAssembly(tb.manifest)
    assert assembly.slot(zero, 1024) == 0 and assembly.slot(last, 10) == 3 * 1024
    assert assembly.slot(zero, 10) is None and assembly.slot(compute_cid(b"other"), 1024) is None
    assembly.out[:1024] = 0  # staged there by a verifier, then judged genuine
    assembly.commit(zero)
    assert assembly.slot(zero, 1024) is None  # filled: a late duplicate cannot overwrite it
    assembly.place(last, tb.blocks[last])
    np.testing.assert_array_equal(assembly.result(), arr)
