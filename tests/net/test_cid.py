"""CIDv1 text and binary forms match the vectors IPFS (kubo) produces."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sedma.errors import InputError
from sedma.net.cid import (
    CID,
    DAG_JSON,
    RAW,
    compute_cid,
    decode_varint,
    encode_varint,
    matches,
    verify_block,
)
from sedma.net.types import IntegrityError

# `ipfs add --cid-version 1 --raw-leaves`: raw-codec CIDs of small files (one raw leaf each).
KUBO_VECTORS = {
    b"": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    b"hello": "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
    b"hello world": "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
}


@pytest.mark.parametrize(("data", "expected"), list(KUBO_VECTORS.items()))
def test_raw_cid_text_matches_kubo(data: bytes, expected: str) -> None:
    assert compute_cid(data) == expected


def test_binary_form_is_version_codec_multihash() -> None:
    cid = CID.parse(KUBO_VECTORS[b"hello"])
    assert cid.to_bytes().hex() == "01551220" + hashlib.sha256(b"hello").hexdigest()


def test_dag_json_cid_matches_ipld_codec_fixture() -> None:
    # ipld/codec-fixtures "array-2": the dag-json block `[2]`.
    text = compute_cid(b"[2]", DAG_JSON)
    assert text == "baguqeeraaoewnxu7nonjagzawtdmvczkiyaj73v6amn2xscc2q3jbqf4eivq"
    cid = CID.parse(text)
    assert cid.codec_name == "dag-json" and cid.to_bytes()[:3] == bytes((0x01, 0xA9, 0x02))


@given(st.integers(min_value=0, max_value=2**62))
def test_varint_roundtrip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded) == (value, len(encoded))


@given(st.binary(max_size=64), st.sampled_from([RAW, DAG_JSON]))
def test_parse_inverts_str(data: bytes, codec: int) -> None:
    text = compute_cid(data, codec)
    assert str(CID.parse(text)) == text
    assert matches(text, data)


@pytest.mark.parametrize(
    "bad",
    ["", "Qmabc", "b!!!!", "bafkrei", "b" + "a" * 200, "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuz"],
)
def test_bad_text_raises_input_error(bad: str) -> None:
    with pytest.raises(InputError):
        CID.parse(bad)


def test_verify_block_rejects_wrong_bytes() -> None:
    with pytest.raises(IntegrityError, match="does not match"):
        verify_block(KUBO_VECTORS[b"hello"], b"hellO")
