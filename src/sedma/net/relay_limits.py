"""Relay bookkeeping: the limits one relay enforces, its reservations and circuits.

Plain data with the clock passed in and no I/O, so the DoS bounds of circuit relay v2
(reservations, circuits in total and per peer, bytes and seconds per circuit) are unit-tested
without sockets; :mod:`sedma.net.relay` consults them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sedma.errors import ConfigError, require_positive
from sedma.net.identity import peer_id_text
from sedma.net.types import PeerError


class RelayRefused(PeerError):
    """The relay declined a reservation or a circuit; ``code`` says why."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RelayLimits:
    """What one relay is willing to carry (the DoS bounds of circuit relay v2)."""

    max_reservations: int = 128
    max_connections: int = 1024  # open client connections of any kind, handshakes included
    max_circuits: int = 256
    max_circuits_per_peer: int = 16
    circuit_bytes: int = 256 * 1024 * 1024  # both directions together
    circuit_seconds: float = 300.0
    reservation_ttl: float = 3600.0
    accept_timeout: float = 5.0  # how long a reserved peer has to accept a circuit

    def validate(self) -> RelayLimits:
        counts = (
            "max_reservations",
            "max_connections",
            "max_circuits",
            "max_circuits_per_peer",
            "circuit_bytes",
        )
        for name in counts:
            if getattr(self, name) < 1:
                raise ConfigError(f"RelayLimits.{name} must be >= 1, got {getattr(self, name)}")
        require_positive(self, ("circuit_seconds", "reservation_ttl", "accept_timeout"))
        return self


@dataclass(frozen=True, slots=True)
class Reservation:
    expires_at: float
    owner: int  # id of the control connection holding it; a newer one replaces it


@dataclass(frozen=True, slots=True)
class Circuit:
    target: bytes
    opened_at: float


@dataclass
class RelayBook:
    """Reservations and circuits of one relay; every method takes the time, none does I/O."""

    limits: RelayLimits = field(default_factory=RelayLimits)
    reservations: dict[bytes, Reservation] = field(default_factory=dict)
    circuits: dict[bytes, Circuit] = field(default_factory=dict)

    def reserve(self, peer_id: bytes, owner: int, now: float) -> float:
        """Grant (or renew) ``peer_id``'s slot; return its expiry time."""
        self.expire(now)
        if peer_id not in self.reservations and len(self.reservations) >= self.limits.max_reservations:
            raise RelayRefused(
                f"relay holds {len(self.reservations)} reservations (maximum)", code="reservations_full"
            )
        expires = now + self.limits.reservation_ttl
        self.reservations[peer_id] = Reservation(expires, owner)
        return expires

    def release(self, peer_id: bytes, owner: int) -> bool:
        """Drop the slot if ``owner`` still holds it (a re-reservation may have replaced it)."""
        held = self.reservations.get(peer_id)
        if held is None or held.owner != owner:
            return False
        del self.reservations[peer_id]
        return True

    def expire(self, now: float) -> list[bytes]:
        """Remove reservations past their expiry; return whose."""
        gone = [pid for pid, r in self.reservations.items() if r.expires_at <= now]
        for pid in gone:
            del self.reservations[pid]
        return gone

    def open_circuit(self, target: bytes, token: bytes, now: float) -> Circuit:
        """Admit a circuit to ``target`` under ``token`` or refuse it with a reason code."""
        self.expire(now)
        if target not in self.reservations:
            raise RelayRefused(f"no reservation for {peer_id_text(target)[:16]}", code="no_reservation")
        if len(self.circuits) >= self.limits.max_circuits:
            raise RelayRefused(f"relay carries {len(self.circuits)} circuits (maximum)", code="circuits_full")
        per_peer = sum(1 for c in self.circuits.values() if c.target == target)
        if per_peer >= self.limits.max_circuits_per_peer:
            raise RelayRefused(f"peer has {per_peer} circuits (maximum)", code="peer_circuits_full")
        circuit = Circuit(target, now)
        self.circuits[token] = circuit
        return circuit

    def close_circuit(self, token: bytes) -> None:
        self.circuits.pop(token, None)


def circuit_verdict(limits: RelayLimits, *, carried: int, opened_at: float, now: float) -> str | None:
    """Why a circuit must be cut now (bytes or time cap reached), or None while within limits."""
    if carried > limits.circuit_bytes:
        return f"byte cap {limits.circuit_bytes} reached"
    if now - opened_at >= limits.circuit_seconds:
        return f"time cap {limits.circuit_seconds:g} s reached"
    return None
