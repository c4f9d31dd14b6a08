"""Plain data and errors shared by every part of the network layer.

The DHT, the block exchange, peer selection and the node all speak in these types, so
each can be tested on its own with an in-memory transport.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sedma.errors import SedmaError

RelayAddr = tuple[bytes, str, int]  # (relay peer id, host, relay port)
# A block's bytes: a large frame payload arrives as the bytearray the kernel filled (no copy).
Blob = bytes | bytearray | memoryview  # memoryview: received in place (a slot of an output array)

_POSITIONS: dict[bytes, tuple[bytes, int]] = {}
_POSITIONS_MAX = 1 << 16


def key_position(peer_id: bytes) -> tuple[bytes, int]:
    """sha256(peer id) as bytes and as an int (Eq. 2), memoised: look-ups meet the same peers often."""
    pos = _POSITIONS.get(peer_id)
    if pos is None:
        if len(_POSITIONS) >= _POSITIONS_MAX:
            _POSITIONS.clear()  # bounded: peer ids come from the network
        digest = hashlib.sha256(peer_id).digest()
        pos = _POSITIONS[peer_id] = (digest, int.from_bytes(digest, "big"))
    return pos


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """How to reach a peer: its id (multihash of its Ed25519 public key) and address.

    ``relay`` names the peer id and address of a relay when the peer sits behind a NAT.
    """

    peer_id: bytes
    host: str
    port: int
    relay: RelayAddr | None = None

    @property
    def dht_key(self) -> bytes:
        """256-bit position in the Kademlia key space (Eq. 2 XOR metric)."""
        return key_position(self.peer_id)[0]

    @property
    def dht_int(self) -> int:
        """``dht_key`` as an integer, ready for the XOR of Eq. 2."""
        return key_position(self.peer_id)[1]

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


def relay_to_wire(relay: RelayAddr | None) -> list[Any] | None:
    """A peer's relay as it travels in handshakes, DHT answers and provider records."""
    return None if relay is None else [relay[0], relay[1], relay[2]]


def relay_from_wire(raw: Any) -> RelayAddr | None:
    """A relay named on the wire, or None when absent or malformed (never trusted further)."""
    if not (isinstance(raw, list | tuple) and len(raw) == 3):
        return None
    peer_id, host, port = raw
    if not (isinstance(peer_id, bytes) and isinstance(host, str) and isinstance(port, int)):
        return None
    if len(peer_id) != 34 or not host or len(host) > 255 or not 0 < port < 65536:
        return None
    return (peer_id, host, port)


@dataclass(frozen=True, slots=True)
class PeerLoad:
    """What a peer advertises about itself (Eq. 7 inputs it measures with psutil)."""

    idle_fraction: float  # availability: share of idle CPU cores in [0, 1]
    mem_free_gb: float
    measured_at: float  # unix seconds


@dataclass(slots=True)
class PeerStats:
    """Everything peer selection knows of a candidate at decision time."""

    peer: PeerInfo
    availability: float = 0.5
    rtt_ms: float = 1.0
    mem_free_gb: float = 1.0
    xor_distance: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# One request/response over the wire: (peer, method, body) -> body. Raises PeerError.
RequestFn = Callable[[PeerInfo, str, dict[str, Any]], Awaitable[dict[str, Any]]]


class NetError(SedmaError):
    """Base of the network layer's errors."""


class PeerError(NetError):
    """A peer could not be reached, timed out, or answered with an error."""


class ProtocolError(NetError):
    """Bytes on the wire that break the protocol (bad frame, bad type, oversize)."""


class IntegrityError(NetError):
    """Content that does not match its CID or signature."""
