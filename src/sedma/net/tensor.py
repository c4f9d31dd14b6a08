"""Numpy tensors as content-addressed blocks: ~1 MiB raw chunks plus one dag-json manifest.

The manifest keeps dtype (numpy ``dtype.str``, byte order included) and shape, so a tensor comes
back exactly as it was put. Its encoding is canonical dag-json (keys sorted, no whitespace,
links as ``{"/": cid}``), so the same tensor always gets the same manifest CID.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sedma.errors import InputError
from sedma.net.cid import CID, DAG_JSON, RAW, compute_cid, validate_cid, verify_block
from sedma.net.types import IntegrityError

CHUNK_SIZE = 1 << 20
MAX_MANIFEST_BYTES = 4 << 20
FORMAT = "sedma-tensor/1"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a tensor is made of: dtype, shape, byte count, chunk size and block CIDs in order."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    chunk_size: int
    blocks: tuple[str, ...]

    def to_block(self) -> bytes:
        """Canonical dag-json bytes of the manifest."""
        doc = {
            "blocks": [{"/": c} for c in self.blocks],
            "chunk": self.chunk_size,
            "dtype": self.dtype,
            "format": FORMAT,
            "nbytes": self.nbytes,
            "shape": list(self.shape),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @property
    def cid(self) -> str:
        return compute_cid(self.to_block(), DAG_JSON)

    @classmethod
    def from_block(cls, data: bytes | bytearray) -> Manifest:
        """Parse and validate manifest bytes received from anywhere (untrusted)."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise InputError(f"manifest block of {len(data)} bytes exceeds {MAX_MANIFEST_BYTES}")
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"manifest is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InputError(f"manifest: missing or unknown 'format' (want {FORMAT!r})")
        return _manifest_from_doc(doc)


def _manifest_from_doc(doc: dict[str, Any]) -> Manifest:
    dtype = _checked_dtype(doc.get("dtype"))
    shape = doc.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InputError(f"manifest 'shape' must be a list of non-negative ints, got {shape!r:.80}")
    nbytes, chunk = doc.get("nbytes"), doc.get("chunk")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes != expected:
        raise InputError(f"manifest 'nbytes' {nbytes!r} != shape×itemsize {expected}")
    if not isinstance(chunk, int) or chunk <= 0:
        raise InputError(f"manifest 'chunk' must be a positive int, got {chunk!r}")
    links = doc.get("blocks")
    if not isinstance(links, list) or len(links) != -(-expected // chunk):
        raise InputError("manifest 'blocks' must list one link per chunk")
    blocks = tuple(_link(item) for item in links)
    return Manifest(dtype.str, tuple(shape), expected, chunk, blocks)


def _link(item: object) -> str:
    if not isinstance(item, dict) or set(item) != {"/"}:
        raise InputError(f"manifest link must be {{'/': cid}}, got {item!r:.80}")
    cid = validate_cid(item["/"], field="manifest block link")
    if CID.parse(cid).codec != RAW:
        raise InputError(f"manifest block {cid} must use the raw codec")
    return cid


def _checked_dtype(spec: object) -> np.dtype[Any]:
    try:
        dtype: np.dtype[Any] = np.dtype(spec)  # type: ignore[call-overload]
    except TypeError as exc:
        raise InputError(f"manifest 'dtype' {spec!r:.40} is not a numpy dtype: {exc}") from None
    _reject_objects(dtype)
    return dtype


def _reject_objects(dtype: np.dtype[Any]) -> None:
    # Object arrays hold pointers, not values: their bytes mean nothing on another machine.
    if dtype.hasobject:
        raise InputError(f"tensors of dtype {dtype} hold Python objects and cannot be shared")
    # dtype.str cannot carry field names, so structured and void dtypes would not round-trip.
    if dtype.kind == "V":
        raise InputError(f"structured/void dtype {dtype} is not supported; share one array per field")


@dataclass(frozen=True, slots=True)
class TensorBlocks:
    """A chunked tensor: its manifest, the manifest's CID and every block by CID."""

    manifest_cid: str
    manifest: Manifest
    blocks: dict[str, bytes]


def chunk_tensor(array: np.ndarray[Any, Any], *, chunk_size: int = CHUNK_SIZE) -> TensorBlocks:
    """Split a tensor into raw blocks of ``chunk_size`` bytes plus a manifest block."""
    if not isinstance(array, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(array).__name__}")
    if chunk_size <= 0:
        raise InputError(f"chunk_size must be positive, got {chunk_size}")
    _reject_objects(array.dtype)
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8).data
    blocks: dict[str, bytes] = {}
    order: list[str] = []
    for start in range(0, len(data), chunk_size):
        chunk = bytes(data[start : start + chunk_size])
        cid = compute_cid(chunk, RAW)
        blocks[cid] = chunk
        order.append(cid)
    manifest = Manifest(array.dtype.str, tuple(array.shape), len(data), chunk_size, tuple(order))
    body = manifest.to_block()
    mcid = compute_cid(body, DAG_JSON)
    blocks[mcid] = body
    return TensorBlocks(mcid, manifest, blocks)


class TensorAssembly:
    """A tensor's output array, filled block by block as verified blocks arrive.

    ``place`` copies a block into every position the manifest lists it at (a block may repeat)
    and may run in worker threads (numpy copies large slices without the GIL; positions of
    different blocks never overlap), so no final concatenation is needed.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.out = np.empty(manifest.nbytes, dtype=np.uint8)
        self._at: dict[str, list[int]] = {}
        for index, cid in enumerate(manifest.blocks):
            self._at.setdefault(cid, []).append(index)
        self._filled = np.zeros(len(manifest.blocks), dtype=bool)
        self.misfits: list[str] = []

    def place(self, cid: str, data: bytes | bytearray) -> None:
        """Copy a (verified) block to its positions; a block of the wrong size is noted, not placed."""
        chunk, total = self.manifest.chunk_size, self.manifest.nbytes
        view = np.frombuffer(data, dtype=np.uint8)
        for index in self._at.get(cid, ()):
            start = index * chunk
            end = min(start + chunk, total)
            if len(data) != end - start:
                self.misfits.append(cid)
                return
            self.out[start:end] = view
            self._filled[index] = True

    def slot(self, cid: str, size: int) -> int | None:
        """Byte offset where an unchecked block of ``size`` bytes may be staged for its CID check.

        Its first position, when that is still unfilled and of that size; None otherwise. Only
        one thread may stage and commit (the exchange's verifier, one batch at a time).
        """
        at = self._at.get(cid)
        if not at or self._filled[at[0]]:
            return None
        start = at[0] * self.manifest.chunk_size
        return start if min(start + self.manifest.chunk_size, self.manifest.nbytes) - start == size else None

    def commit(self, cid: str) -> None:
        """A block staged at :meth:`slot` passed its check: copy it to its other positions, mark them."""
        chunk, total = self.manifest.chunk_size, self.manifest.nbytes
        first, *repeats = self._at[cid]
        start = first * chunk
        view = self.out[start : min(start + chunk, total)]
        self._filled[first] = True
        for index in repeats:
            if min(index * chunk + chunk, total) - index * chunk != view.size:
                self.misfits.append(cid)
                continue
            self.out[index * chunk : index * chunk + view.size] = view
            self._filled[index] = True

    def result(self) -> np.ndarray[Any, Any]:
        """The assembled tensor; :class:`IntegrityError` if a block misfit or never came."""
        if self.misfits:
            cid = self.misfits[0]
            raise IntegrityError(f"block {cid} does not fit the manifest's chunk layout")
        if not self._filled.all():
            missing = self.manifest.blocks[int(np.argmin(self._filled))]
            raise InputError(f"block {missing} of the tensor is missing")
        return self.out.view(np.dtype(self.manifest.dtype)).reshape(self.manifest.shape)


def assemble_tensor(
    manifest: Manifest, blocks: Mapping[str, bytes | bytearray], *, verify: bool = True
) -> np.ndarray[Any, Any]:
    """Rebuild a tensor from its blocks, checking each against its CID when ``verify``."""
    assembly = TensorAssembly(manifest)
    for cid in dict.fromkeys(manifest.blocks):
        data = blocks.get(cid)
        if data is None:
            raise InputError(f"block {cid} of the tensor is missing")
        if verify:
            verify_block(cid, data)
        assembly.place(cid, data)
    return assembly.result()
