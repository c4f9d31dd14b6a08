"""Content identifiers: CIDv1 with a sha2-256 multihash, byte for byte what IPFS produces.

Binary form: ``varint(1) varint(codec) 0x12 0x20 <32-byte sha-256 digest>``; text form: the
multibase prefix ``b`` followed by RFC 4648 base32, lower case, no padding. Data blocks use the
``raw`` codec (0x55, text form ``bafkrei…``); tensor manifests use ``dag-json`` (0x0129,
``baguqeera…``) because a manifest is canonical JSON whose links are ``{"/": "<cid>"}``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass

from sedma.errors import InputError
from sedma.net.types import IntegrityError

RAW = 0x55
DAG_JSON = 0x0129
SHA2_256 = 0x12
DIGEST_LEN = 32
_CODECS = {RAW: "raw", DAG_JSON: "dag-json"}
_MAX_TEXT_LEN = 100


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128 varint, as multiformats uses for versions and codes."""
    if value < 0:
        raise InputError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Read one varint at ``offset``; returns (value, next offset)."""
    value = shift = 0
    for pos in range(offset, min(len(data), offset + 9)):
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + 1
        shift += 7
    raise InputError(f"truncated or overlong varint at byte {offset}")


@dataclass(frozen=True, slots=True)
class CID:
    """A CIDv1 whose multihash is sha2-256."""

    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != DIGEST_LEN:
            raise InputError(f"CID digest must be {DIGEST_LEN} bytes, got {len(self.digest)}")
        if self.codec not in _CODECS:
            raise InputError(f"unsupported CID codec 0x{self.codec:x} (want raw 0x55 or dag-json 0x129)")

    def to_bytes(self) -> bytes:
        """Binary CID: version, codec, multihash code, digest length, digest."""
        head = encode_varint(1) + encode_varint(self.codec) + bytes((SHA2_256, DIGEST_LEN))
        return head + self.digest

    def __str__(self) -> str:
        text = base64.b32encode(self.to_bytes()).decode("ascii").rstrip("=").lower()
        return "b" + text

    @property
    def codec_name(self) -> str:
        return _CODECS[self.codec]

    @classmethod
    def from_bytes(cls, data: bytes) -> CID:
        """Parse a binary CIDv1; raises InputError on anything else."""
        version, pos = decode_varint(data)
        if version != 1:
            raise InputError(f"only CIDv1 is supported, got version {version}")
        codec, pos = decode_varint(data, pos)
        if data[pos : pos + 2] != bytes((SHA2_256, DIGEST_LEN)):
            raise InputError("CID multihash must be sha2-256 with a 32-byte digest")
        digest = data[pos + 2 :]
        return cls(codec, bytes(digest))

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse the base32 ``b…`` text form (memoised: a fetch meets each CID several times)."""
        if not isinstance(text, str) or not text.startswith("b") or len(text) > _MAX_TEXT_LEN:
            raise InputError(f"not a base32 CIDv1 text (must start with 'b'): {text!r:.80}")
        return _parse_text(text)


@functools.lru_cache(maxsize=16384)
def _parse_text(text: str) -> CID:
    # CIDs are immutable values, so a cached parse is the parse; errors are not cached.
    body = text[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise InputError(f"bad base32 in CID {text!r:.80}: {exc}") from None
    return CID.from_bytes(raw)


def cid_of(data: bytes | memoryview, codec: int = RAW) -> CID:
    """The CID of a block's bytes."""
    return CID(codec, hashlib.sha256(data).digest())


def compute_cid(data: bytes | memoryview, codec: int = RAW) -> str:
    """Text CID of a block's bytes (what every API of the layer passes around)."""
    return str(cid_of(data, codec))


def matches(cid: str, data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` hashes to ``cid`` (any codec: the codec does not enter the hash)."""
    return CID.parse(cid).digest == hashlib.sha256(data).digest()


def verify_block(cid: str, data: bytes | bytearray | memoryview) -> None:
    """Raise IntegrityError when a block's bytes do not match its CID."""
    if not matches(cid, data):
        raise IntegrityError(f"block does not match its CID {cid}")


def validate_cid(text: object, *, field: str = "cid") -> str:
    """Check that untrusted input is a supported CID text; returns it unchanged."""
    if not isinstance(text, str):
        raise InputError(f"{field}: expected a CID string, got {type(text).__name__}")
    CID.parse(text)
    return text
