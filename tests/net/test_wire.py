"""Frame codec: round trips, limits checked before allocation, fuzzed decoder."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sedma.net.types import ProtocolError
from sedma.net.wire import (
    HEADER,
    MAGIC,
    MAX_FRAME,
    PAYLOAD_MIN,
    VERSION,
    FrameDecoder,
    Kind,
    Lease,
    encode,
)


def _bytes(bufs: list[bytes | memoryview]) -> bytes:
    return b"".join(bytes(b) for b in bufs)


def test_small_and_large_frames_round_trip_in_one_stream() -> None:
    big = bytes(range(256)) * (3 * 1024 * 4)  # 3 MiB, travels as the raw payload
    data = _bytes(encode(Kind.REQUEST, 7, {"a": 1, "s": "x", "b": b"\x00\x01"}))
    data += _bytes(encode(Kind.RESPONSE, 8, {"data": big, "n": 2}))
    data += _bytes(encode(Kind.STREAM, 9, {}))
    frames = FrameDecoder().feed(data)
    assert [(f.kind, f.req_id) for f in frames] == [(Kind.REQUEST, 7), (Kind.RESPONSE, 8), (Kind.STREAM, 9)]
    assert frames[0].body == {"a": 1, "s": "x", "b": b"\x00\x01"}
    assert frames[1].body["data"] == big and frames[1].body["n"] == 2


def test_large_value_is_sent_as_payload_not_packed() -> None:
    value = b"z" * PAYLOAD_MIN
    bufs = encode(Kind.REQUEST, 1, {"data": value})
    assert len(bufs) == 2 and bufs[1] is value


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_decoder_reassembles_frames_split_at_any_point(chunk: int) -> None:
    data = _bytes(encode(Kind.REQUEST, 1, {"data": b"q" * 100_000, "k": [1, 2]})) * 2
    dec = FrameDecoder()
    frames = []
    for i in range(0, len(data), chunk):
        frames += dec.feed(data[i : i + chunk])
    assert len(frames) == 2 and frames[1].body["k"] == [1, 2]


def test_large_payload_is_handed_over_as_the_received_buffer_at_any_meta_payload_split() -> None:
    block = bytes(range(256)) * 4096  # 1 MiB: the large-frame path
    data = _bytes(encode(Kind.RESPONSE, 5, {"cid": "b" * 59, "data": block}))
    meta_end = len(data) - len(block)  # header + msgpack map
    for first in (10, meta_end - 1, meta_end, meta_end + 1, meta_end + 4096):
        dec = FrameDecoder()
        frames = dec.feed(data[:first]) + dec.feed(data[first:])
        assert len(frames) == 1 and frames[0].body["cid"] == "b" * 59
        got = frames[0].body["data"]
        # The payload is the buffer the bytes were received into, not a copy of it.
        assert isinstance(got, bytearray) and got == block


def test_oversize_frame_is_refused_from_its_header_alone() -> None:
    head = HEADER.pack(MAGIC, VERSION, Kind.REQUEST, 1, 10, MAX_FRAME)
    with pytest.raises(ProtocolError, match="refused"):
        FrameDecoder().feed(head)  # no body follows: refusal must not wait for or allocate it
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(Kind.REQUEST, 1, {"data": b"x" * (MAX_FRAME + 1)})


def test_bad_magic_version_and_non_map_bodies_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="magic"):
        FrameDecoder().feed(b"XX" + b"\x00" * 14)
    with pytest.raises(ProtocolError, match="version"):
        FrameDecoder().feed(HEADER.pack(MAGIC, 9, 1, 1, 0, 0))
    with pytest.raises(ProtocolError, match="map"):
        FrameDecoder().feed(HEADER.pack(MAGIC, VERSION, 1, 1, 1, 0) + b"\x01")


def test_unknown_kind_is_decoded_so_it_can_be_answered() -> None:
    frames = FrameDecoder().feed(_bytes(encode(200, 5, {})))
    assert frames[0].kind == 200 and frames[0].req_id == 5


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    dec = FrameDecoder(max_frame=64 * 1024)
    with contextlib.suppress(ProtocolError):
        dec.feed(data)
    # A pending large frame never holds more than the frame limit.
    assert dec._big is None or len(dec._big) <= 64 * 1024


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8), st.integers() | st.binary(max_size=64), max_size=5),
    st.integers(min_value=0, max_value=200),
    st.integers(min_value=0, max_value=8),
)
def test_fuzz_truncated_and_mutated_frames(body: dict[str, object], cut: int, flip: int) -> None:
    body = {k: v for k, v in body.items() if k != "_p"}
    try:
        data = bytearray(_bytes(encode(Kind.REQUEST, 3, body)))
    except ProtocolError:
        return  # integers beyond msgpack's range are refused at encode time
    data = data[: max(0, len(data) - cut)]
    if flip and len(data) > HEADER.size + flip:
        data[HEADER.size + flip - 1] ^= 0xFF
    try:
        frames = FrameDecoder().feed(bytes(data))
    except ProtocolError:
        return
    assert all(isinstance(f.body, dict) for f in frames)


def test_header_layout_is_sixteen_bytes_big_endian() -> None:
    raw = _bytes(encode(Kind.RESPONSE, 0x01020304, {}))
    assert raw[:2] == MAGIC and raw[2] == VERSION and raw[3] == Kind.RESPONSE
    assert struct.unpack(">I", raw[4:8])[0] == 0x01020304


def _answer(req_id: int, block: bytes, kind: int = Kind.RESPONSE) -> bytes:
    return _bytes(encode(kind, req_id, {"cid": "b" * 59, "data": block}))


def test_an_expected_answer_is_received_into_the_lent_buffer_and_nothing_else_is() -> None:
    block = bytes(range(256)) * 4096
    for first in (10, 200, 70_000):  # the lease is taken when the payload starts, at any split
        target = bytearray(len(block))
        dec = FrameDecoder()
        lease = Lease(memoryview(target))
        dec.expect(7, lease)
        data = _answer(7, block)
        (frame,) = dec.feed(data[:first]) + dec.feed(data[first:])
        assert frame.body["data"] is lease.view and target == block  # no copy: in place
    dec = FrameDecoder()
    cases = ((8, len(block) - 1, Kind.RESPONSE), (9, len(block), Kind.ERROR), (10, len(block), Kind.RESPONSE))
    for req_id, size, kind in cases:
        target = bytearray(size)
        dec.expect(req_id if req_id != 10 else 11, Lease(memoryview(target)))  # 10: another id's lease
        (frame,) = dec.feed(_answer(req_id, block, kind))
        assert isinstance(frame.body["data"], bytearray) and frame.body["data"] == block
        assert not any(target)  # wrong size, not a RESPONSE, other request: never written


@pytest.mark.parametrize("take_back", ["revoke", "forget"])
def test_a_lease_taken_back_mid_payload_keeps_what_came_and_writes_no_more(take_back: str) -> None:
    block = bytes(range(256)) * 4096
    data = _answer(3, block)
    target = bytearray(len(block))
    lease = Lease(memoryview(target))
    dec = FrameDecoder()
    dec.expect(3, lease)
    cut = len(data) - len(block) // 2
    assert dec.feed(data[:cut]) == []
    if take_back == "revoke":
        lease.revoked = True
    else:
        dec.forget(3)
    (frame,) = dec.feed(data[cut:])
    assert frame.body["data"] is not lease.view and frame.body["data"] == block  # whole, in scratch
    assert not any(target[len(block) // 2 :])  # nothing after the take-back landed in the lent buffer


def test_a_body_that_cannot_be_encoded_is_refused_and_the_next_frame_is_whole() -> None:
    with pytest.raises(ProtocolError, match="not msgpack-encodable"):
        encode(Kind.REQUEST, 1, {"bad": object(), "big": b"x" * 100})
    frames = FrameDecoder().feed(_bytes(encode(Kind.REQUEST, 2, {"ok": 1})))
    assert [(f.kind, f.req_id, f.body) for f in frames] == [(Kind.REQUEST, 2, {"ok": 1})]
