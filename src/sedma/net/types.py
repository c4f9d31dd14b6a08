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


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """How to reach a peer: its id (multihash of its Ed25519 public key) and address.

    ``relay`` names the peer id and address of a relay when the peer sits behind a NAT.
    """

    peer_id: bytes
    host: str
    port: int
    relay: tuple[bytes, str, int] | None = None

    @property
    def dht_key(self) -> bytes:
        """256-bit position in the Kademlia key space (Eq. 2 XOR metric)."""
        return hashlib.sha256(self.peer_id).digest()

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


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
