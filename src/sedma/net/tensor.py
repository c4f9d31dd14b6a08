"""Numpy tensors as content-addressed blocks: ~1 MiB raw chunks plus one dag-json manifest.

The manifest keeps dtype (numpy ``dtype.str``, byte order included) and shape, so a tensor comes
back exactly as it was put. Its encoding is canonical dag-json (keys sorted, no whitespace,
links as ``{"/": cid}``), so the same tensor always gets the same manifest CID.
"""

from __future__ import annotations

import json
import threading
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
    def from_block(cls, data: bytes | bytearray | memoryview) -> Manifest:
        """Parse and validate manifest bytes received from anywhere (untrusted)."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise InputError(f"manifest block of {len(data)} bytes exceeds {MAX_MANIFEST_BYTES}")
        try:
            doc = json.loads(bytes(data) if isinstance(data, memoryview) else data)
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

    ``place`` copies a verified block into every position the manifest lists it at (a block may
    repeat). A block may also be checked in place at its first position (its slot): the network
    receives into a slot it holds by :meth:`lease`, or the verifier copies it there
    (:meth:`slot`); after the check, :meth:`commit` or :meth:`release`. One owner per slot at a
    time (a lock guards the hand-overs), and a filled slot never reopens, so unchecked bytes can
    never overwrite checked ones. ``place``/``slot``/``commit`` run in one worker thread.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.out = np.empty(manifest.nbytes, dtype=np.uint8)
        self._at: dict[str, list[int]] = {}
        for index, cid in enumerate(manifest.blocks):
            self._at.setdefault(cid, []).append(index)
        self._filled = np.zeros(len(manifest.blocks), dtype=bool)
        self._busy: dict[str, str] = {}  # cid -> "net" (leased) | "check" (being verified there)
        self._lock = threading.Lock()
        self.misfits: list[str] = []

    def _span(self, index: int) -> tuple[int, int]:
        start = index * self.manifest.chunk_size
        return start, min(start + self.manifest.chunk_size, self.manifest.nbytes)

    def place(self, cid: str, data: bytes | bytearray | memoryview) -> None:
        """Copy a (verified) block to its positions; a block of the wrong size is noted, not placed."""
        with self._lock:
            if self._busy.get(cid) == "net":  # cannot happen (leases are revoked first): fail safe
                self.misfits.append(cid)
                return
        view = np.frombuffer(data, dtype=np.uint8)
        for index in self._at.get(cid, ()):
            start, end = self._span(index)
            if len(data) != end - start:
                self.misfits.append(cid)
                return
            self.out[start:end] = view
            self._filled[index] = True

    def _open(self, cid: str, size: int | None, owner: str) -> int | None:
        at = self._at.get(cid)
        with self._lock:
            if not at or self._filled[at[0]] or cid in self._busy:
                return None
            start, end = self._span(at[0])
            if size is not None and end - start != size:
                return None
            self._busy[cid] = owner
            return start

    def lease(self, cid: str) -> memoryview | None:
        """The block's open slot for the network to receive into (held until commit/release)."""
        start = self._open(cid, None, "net")
        if start is None:
            return None
        return self.out[start : self._span(self._at[cid][0])[1]].data

    def claim(self, cid: str) -> int | None:
        """A leased slot whose bytes arrived goes to the check; its byte offset (None: not leased)."""
        with self._lock:
            if self._busy.get(cid) != "net":
                return None
            self._busy[cid] = "check"
            return self._span(self._at[cid][0])[0]

    def slot(self, cid: str, size: int) -> int | None:
        """Byte offset of the block's open slot, taken for an in-place check of ``size`` bytes."""
        return self._open(cid, size, "check")

    def release(self, cid: str) -> None:
        """Give a leased or claimed slot back unfilled (the bytes there failed or never came)."""
        with self._lock:
            self._busy.pop(cid, None)

    def commit(self, cid: str) -> None:
        """The block in its slot passed its check: copy it to its other positions, mark them."""
        first, *repeats = self._at[cid]
        start, end = self._span(first)
        view = self.out[start:end]
        with self._lock:
            self._busy.pop(cid, None)
            self._filled[first] = True
        for index in repeats:
            lo, hi = self._span(index)
            if hi - lo != view.size:
                self.misfits.append(cid)
                continue
            self.out[lo:hi] = view
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
