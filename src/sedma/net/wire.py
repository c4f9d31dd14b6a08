"""Frame codec: a fixed 16-byte versioned header, a msgpack body and an optional raw payload.

Header (big-endian): magic ``SD`` | version u8 | kind u8 | request id u32 | meta length u32 |
payload length u32. The body is a msgpack map (never pickle). One large ``bytes`` value of the
body travels as the raw payload after it, so a 1 MiB block is read by the kernel straight into
its own buffer instead of through msgpack. Sizes are checked against the limits *before* any
buffer for the frame is allocated, so a hostile length cannot make us allocate.

A requester may name where the payload of one answer goes (:data:`RECEIVE_INTO`, a context
variable read by the RPC layer, which registers it with the connection's decoder): the kernel
then receives a 1 MiB block straight into, e.g., its slot of a tensor's output array. Only the
RESPONSE to that request id, with exactly that payload size, is written there; once the
request is settled, or the lender revokes the :class:`Lease`, the bytes received so far move
to a scratch buffer and the rest arrive there.
"""

from __future__ import annotations

import struct
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack

from sedma.net.types import ProtocolError

MAGIC = b"SD"
VERSION = 2  # 2: DHT answers name peers as compact entries (dht/protocol.py)
HEADER = struct.Struct(">2sBBIII")
HEADER_SIZE = HEADER.size
MAX_FRAME = 8 * 1024 * 1024  # a 1 MiB block plus headroom; anything larger is refused
MAX_META = 1024 * 1024
PAYLOAD_MIN = 32 * 1024  # bytes values at least this large travel as the raw payload
PAYLOAD_KEY = "_p"  # reserved body key naming where the raw payload goes back
_RECV_BUFFER = 64 * 1024  # per connection; larger frames get a buffer of their own


@dataclass(slots=True, eq=False)
class Lease:
    """A buffer lent for one answer's payload; ``revoked`` (set on the loop) takes it back."""

    view: memoryview
    revoked: bool = False


# Set around one request: its answer's payload is received straight into this lease's buffer.
RECEIVE_INTO: ContextVar[Lease | None] = ContextVar("sedma_receive_into", default=None)


class Kind(IntEnum):
    """Frame kinds; an unknown kind is decoded and answered with an ERROR frame."""

    HELLO = 1
    REQUEST = 2
    RESPONSE = 3
    ERROR = 4
    STREAM = 5  # one item of a streamed response
    STREAM_END = 6
    CREDIT = 7  # receiver grants the sender more stream items (flow control)
    CANCEL = 8


@dataclass(slots=True)
class Frame:
    """One decoded frame; ``kind`` stays an int so unknown kinds can be answered."""

    kind: int
    req_id: int
    body: dict[str, Any] = field(default_factory=dict)


def encode(kind: int, req_id: int, body: dict[str, Any] | None = None) -> list[bytes | memoryview]:
    """Frame buffers ready for ``writelines``; the large payload is not copied."""
    body = body or {}
    payload: bytes | memoryview = b""
    big = _payload_key(body)
    if big is not None:
        payload = body[big]
        body = {**body, big: None, PAYLOAD_KEY: big}
    try:
        meta = _packer().pack(body)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"frame body is not msgpack-encodable: {exc}") from exc
    size = len(meta) + len(payload)
    if len(meta) > MAX_META or size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes exceeds the maximum {MAX_FRAME}")
    head = HEADER.pack(MAGIC, VERSION, kind, req_id & 0xFFFFFFFF, len(meta), len(payload))
    return [head + meta, payload] if payload else [head + meta]


_LOCAL = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's reusable packer: ``msgpack.packb`` builds a new one per frame."""
    try:
        return _LOCAL.packer  # type: ignore[no-any-return]
    except AttributeError:
        _LOCAL.packer = msgpack.Packer(use_bin_type=True)  # resets itself after a failed pack
        return _LOCAL.packer  # type: ignore[no-any-return]


_BUFFERS = (bytes, bytearray, memoryview)  # a tuple: a `bytes | …` union is rebuilt per call


def _payload_key(body: dict[str, Any]) -> str | None:
    best, best_len = None, PAYLOAD_MIN - 1
    for key, value in body.items():
        if isinstance(value, _BUFFERS) and len(value) > best_len:
            best, best_len = key, len(value)
    return best


def _decode_meta(
    meta: bytes | bytearray | memoryview, payload: bytes | bytearray | memoryview | None
) -> dict[str, Any]:
    try:
        body = msgpack.unpackb(meta, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"frame body is not valid msgpack: {exc}") from exc
    if not isinstance(body, dict):
        raise ProtocolError(f"frame body must be a map, got {type(body).__name__}")
    slot = body.pop(PAYLOAD_KEY, None)
    if payload is not None:
        if not isinstance(slot, str) or slot not in body:
            raise ProtocolError("frame has a raw payload but no body key for it")
        body[slot] = payload
    return body


class FrameDecoder:
    """Incremental decoder fit for ``asyncio.BufferedProtocol`` (get_buffer / buffer_updated).

    Small frames are parsed out of one reusable receive buffer; a frame larger than that gets
    a buffer of exactly its size (after the limit check) that the kernel fills directly.
    """

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray(_RECV_BUFFER)
        self._view = memoryview(self._buf)  # never resized: slices of one view, no copies
        self._start = 0  # first unparsed byte in _buf
        self._end = 0  # end of received bytes in _buf
        # A large frame is received into two dedicated buffers, meta then payload, so the
        # payload bytearray is handed over as is (no 1 MiB copy per block).
        self._big: bytearray | None = None  # the large frame's meta
        self._big_pay: bytearray | memoryview = bytearray()
        self._big_lease: Lease | None = None  # whose buffer _big_pay is
        self._into: dict[int, Lease] = {}  # request id -> where its answer's payload goes
        self._big_fill = 0
        self._big_head: tuple[int, int, int, int] = (0, 0, 0, 0)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next received bytes should be written."""
        if self._big_lease is not None and self._big_lease.revoked:
            self._unlease()
        if self._big is not None:
            meta_len = len(self._big)
            if self._big_fill < meta_len:
                return memoryview(self._big)[self._big_fill :]
            return memoryview(self._big_pay)[self._big_fill - meta_len :]
        if self._end == len(self._buf):
            self._compact()
        return self._view[self._end :]

    def expect(self, req_id: int, into: Lease) -> None:
        """Receive the payload of the RESPONSE to ``req_id`` into ``into`` if its size matches."""
        self._into[req_id] = into

    def forget(self, req_id: int) -> None:
        """Release ``expect``; if that payload is arriving now, it moves to scratch."""
        self._into.pop(req_id, None)
        if self._big_lease is not None and self._big_head[1] == req_id:
            self._unlease()

    def _unlease(self) -> None:
        # The lender wants its buffer back mid-payload: keep what came so far, in scratch.
        assert self._big is not None
        scratch = bytearray(len(self._big_pay))
        done = max(0, self._big_fill - len(self._big))
        scratch[:done] = self._big_pay[:done]
        self._big_pay, self._big_lease = scratch, None

    def buffer_updated(self, nbytes: int) -> list[Frame]:
        """Account for ``nbytes`` written into the last buffer; return completed frames."""
        if self._big is not None:
            self._big_fill += nbytes
            if self._big_fill < len(self._big) + len(self._big_pay):
                return []
            frame = self._finish_big()
            return [frame, *self._parse()]
        self._end += nbytes
        return self._parse()

    def feed(self, data: bytes) -> list[Frame]:
        """Decode from plain bytes (tests, fuzzing, non-buffered transports)."""
        frames: list[Frame] = []
        view = memoryview(data)
        while view:
            buf = self.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            view = view[n:]
            frames.extend(self.buffer_updated(n))
        return frames

    def _compact(self) -> None:
        pending = self._end - self._start
        self._buf[:pending] = self._buf[self._start : self._end]
        self._start, self._end = 0, pending

    def _parse(self) -> list[Frame]:
        frames: list[Frame] = []
        while self._end - self._start >= HEADER_SIZE and self._big is None:
            kind, req_id, meta_len, pay_len = self._header()
            total = HEADER_SIZE + meta_len + pay_len
            if self._end - self._start < total and total > len(self._buf):
                self._start_big(kind, req_id, meta_len, pay_len)
                break
            if self._end - self._start < total:
                break
            body_at = self._start + HEADER_SIZE
            meta = self._view[body_at : body_at + meta_len]  # unpacked before the buffer moves on
            payload = bytes(self._buf[body_at + meta_len : self._start + total]) if pay_len else None
            self._start += total
            frames.append(Frame(kind, req_id, _decode_meta(meta, payload)))
        if self._start == self._end:
            self._start = self._end = 0
        return frames

    def _header(self) -> tuple[int, int, int, int]:
        magic, version, kind, req_id, meta_len, pay_len = HEADER.unpack_from(self._buf, self._start)
        if magic != MAGIC:
            raise ProtocolError(f"bad frame magic {bytes(magic)!r}")
        if version != VERSION:
            raise ProtocolError(f"unsupported protocol version {version} (this peer speaks {VERSION})")
        if meta_len > MAX_META or meta_len + pay_len > self.max_frame:
            raise ProtocolError(f"frame of {meta_len + pay_len} bytes refused (maximum {self.max_frame})")
        return kind, req_id, meta_len, pay_len

    def _start_big(self, kind: int, req_id: int, meta_len: int, pay_len: int) -> None:
        have = self._end - self._start - HEADER_SIZE
        body_at = self._start + HEADER_SIZE
        in_meta = min(have, meta_len)
        self._big = bytearray(meta_len)
        self._big[:in_meta] = self._buf[body_at : body_at + in_meta]
        lease = self._into.pop(req_id, None) if kind == Kind.RESPONSE else None
        if lease is not None and not lease.revoked and len(lease.view) == pay_len:
            self._big_pay, self._big_lease = lease.view, lease
        else:
            self._big_pay, self._big_lease = bytearray(pay_len), None
        self._big_pay[: have - in_meta] = self._buf[body_at + in_meta : self._end]
        self._big_fill = have
        self._big_head = (kind, req_id, meta_len, pay_len)
        self._start = self._end = 0

    def _finish_big(self) -> Frame:
        kind, req_id, _, pay_len = self._big_head
        meta, payload = self._big, self._big_pay
        assert meta is not None
        self._big, self._big_pay, self._big_lease = None, bytearray(), None
        return Frame(kind, req_id, _decode_meta(meta, payload if pay_len else None))
