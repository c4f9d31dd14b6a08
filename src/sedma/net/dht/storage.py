"""What a DHT peer stores for others: signed small records and signed provider records.

Both kinds carry their signer's Ed25519 public key and an absolute expiry, so any peer can
forward (republish) them without being trusted. A record's key is bound to its publisher and
name (sha256 of both), so nobody else can overwrite it; a newer ``seq`` replaces an older one.
Everything is bounded (value size, keys, providers per key) so a peer cannot be filled up.
Time is passed in: the module is pure apart from the clock its caller reads.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgpack

from sedma.errors import ConfigError
from sedma.net.identity import Identity, peer_id_from_public, verify
from sedma.net.types import IntegrityError, PeerInfo, ProtocolError, RelayAddr, relay_from_wire, relay_to_wire

MAX_VALUE = 16 * 1024
MAX_TTL = 48 * 3600.0


def record_key(public: bytes, name: bytes) -> bytes:
    """DHT key of the record ``name`` published by ``public``."""
    return hashlib.sha256(b"sedma/record/" + public + name).digest()


def _signed(tag: bytes, *fields: Any) -> bytes:
    return msgpack.packb([tag, *fields], use_bin_type=True)


_VERIFIED: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
_VERIFIED_MAX = 8192


def _verify_once(public: bytes, sig: bytes, message: bytes) -> bool:
    """Ed25519 check, remembered: the k closest peers all return the same signed record."""
    key = (public, sig, message)
    if key in _VERIFIED:
        return True
    if not verify(public, sig, message):
        return False
    _VERIFIED[key] = None
    if len(_VERIFIED) > _VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return True


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A small value under ``record_key(publisher, name)`` with a sequence number and expiry."""

    name: bytes
    value: bytes
    publisher: bytes
    seq: int
    expires: float
    sig: bytes

    @property
    def key(self) -> bytes:
        return record_key(self.publisher, self.name)

    @classmethod
    def create(cls, ident: Identity, name: bytes, value: bytes, *, seq: int, expires: float) -> SignedRecord:
        if len(value) > MAX_VALUE:
            raise ProtocolError(f"record value of {len(value)} bytes exceeds {MAX_VALUE}")
        sig = ident.sign(_signed(b"rec1", name, value, seq, expires))
        return cls(name, value, ident.public, seq, expires, sig)

    def to_wire(self) -> list[Any]:
        return [self.name, self.value, self.publisher, self.seq, self.expires, self.sig]

    @classmethod
    def from_wire(cls, raw: Any) -> SignedRecord:
        """Parse and verify; :class:`IntegrityError` if malformed, oversize or forged."""
        if not (isinstance(raw, list) and len(raw) == 6):
            raise IntegrityError("record must be a 6-item list")
        name, value, publisher, seq, expires, sig = raw
        if not (isinstance(name, bytes) and isinstance(value, bytes) and isinstance(sig, bytes)):
            raise IntegrityError("record name, value and sig must be bytes")
        if not (isinstance(seq, int) and isinstance(expires, int | float) and len(value) <= MAX_VALUE):
            raise IntegrityError("record seq/expires malformed or value too large")
        if not (isinstance(publisher, bytes) and len(publisher) == 32):
            raise IntegrityError("record publisher must be a 32-byte key")
        if not _verify_once(publisher, sig, _signed(b"rec1", name, value, seq, expires)):
            raise IntegrityError("record signature does not match its publisher")
        return cls(name, value, publisher, seq, float(expires), sig)


def _provider_message(key: bytes, host: str, port: int, expires: float, relay: RelayAddr | None) -> bytes:
    """What a provider signs; the relay, when there is one, is signed too (``prov2``)."""
    if relay is None:
        return _signed(b"prov1", key, host, port, expires)
    return _signed(b"prov2", key, host, port, expires, relay_to_wire(relay))


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    """``public``'s signed claim that it serves ``key`` at ``host:port`` (or through ``relay``)
    until ``expires``."""

    key: bytes
    public: bytes
    host: str
    port: int
    expires: float
    sig: bytes
    relay: RelayAddr | None = None

    @property
    def peer(self) -> PeerInfo:
        return PeerInfo(peer_id_from_public(self.public), self.host, self.port, self.relay)

    @classmethod
    def create(
        cls,
        ident: Identity,
        key: bytes,
        host: str,
        port: int,
        *,
        expires: float,
        relay: RelayAddr | None = None,
    ) -> ProviderRecord:
        sig = ident.sign(_provider_message(key, host, port, expires, relay))
        return cls(key, ident.public, host, port, expires, sig, relay)

    def to_wire(self) -> list[Any]:
        wire = [self.key, self.public, self.host, self.port, self.expires, self.sig]
        return wire if self.relay is None else [*wire, relay_to_wire(self.relay)]

    @classmethod
    def from_wire(cls, raw: Any) -> ProviderRecord:
        """Parse and verify; :class:`IntegrityError` if malformed or forged."""
        if not (isinstance(raw, list) and len(raw) in (6, 7)):
            raise IntegrityError("provider record must be a 6- or 7-item list")
        key, public, host, port, expires, sig = raw[:6]
        ok = isinstance(key, bytes) and len(key) == 32 and isinstance(public, bytes)
        ok = ok and len(public) == 32 and isinstance(host, str) and isinstance(port, int)
        ok = ok and isinstance(expires, int | float) and isinstance(sig, bytes)
        relay = relay_from_wire(raw[6]) if len(raw) == 7 else None
        if not ok or not 0 < port < 65536 or (len(raw) == 7 and relay is None):
            raise IntegrityError("provider record fields malformed")
        if not _verify_once(public, sig, _provider_message(key, host, port, expires, relay)):
            raise IntegrityError("provider record signature does not match its key")
        return cls(key, public, host, port, float(expires), sig, relay)


@dataclass(frozen=True)
class StorageLimits:
    """Bounds on what a peer keeps for others."""

    max_records: int = 100_000
    max_provider_keys: int = 100_000
    max_providers_per_key: int = 64

    def validate(self) -> StorageLimits:
        if min(self.max_records, self.max_provider_keys, self.max_providers_per_key) < 1:
            raise ConfigError("StorageLimits values must be >= 1")
        return self


class DhtStorage:
    """Records and provider sets with expiry; oldest keys evicted first when full."""

    def __init__(self, limits: StorageLimits | None = None) -> None:
        self.limits = (limits or StorageLimits()).validate()
        self.records: OrderedDict[bytes, SignedRecord] = OrderedDict()
        self.providers: OrderedDict[bytes, dict[bytes, ProviderRecord]] = OrderedDict()

    def put_record(self, rec: SignedRecord, now: float) -> bool:
        """Keep ``rec`` unless expired, too far in the future, or older than what we hold."""
        if not now < rec.expires <= now + MAX_TTL:
            return False
        held = self.records.get(rec.key)
        if held is not None and held.seq > rec.seq and held.expires > now:
            return False
        self.records[rec.key] = rec
        self.records.move_to_end(rec.key)
        while len(self.records) > self.limits.max_records:
            self.records.popitem(last=False)
        return True

    def get_record(self, key: bytes, now: float) -> SignedRecord | None:
        rec = self.records.get(key)
        if rec is not None and rec.expires <= now:
            del self.records[key]
            return None
        return rec

    def add_provider(self, rec: ProviderRecord, now: float) -> bool:
        """Add or renew a provider of ``rec.key`` (bounded per key and in keys)."""
        if not now < rec.expires <= now + MAX_TTL:
            return False
        group = self.providers.setdefault(rec.key, {})
        self.providers.move_to_end(rec.key)
        if rec.public not in group and len(group) >= self.limits.max_providers_per_key:
            soonest = min(group.values(), key=lambda p: p.expires)
            del group[soonest.public]
        group[rec.public] = rec
        while len(self.providers) > self.limits.max_provider_keys:
            self.providers.popitem(last=False)
        return True

    def get_providers(self, key: bytes, now: float) -> list[ProviderRecord]:
        group = self.providers.get(key)
        if not group:
            return []
        for public in [p for p, r in group.items() if r.expires <= now]:
            del group[public]
        return list(group.values())

    def expire(self, now: float) -> int:
        """Drop everything expired; returns how many entries went."""
        gone = [k for k, r in self.records.items() if r.expires <= now]
        for key in gone:
            del self.records[key]
        count = len(gone)
        for key in list(self.providers):
            before = len(self.providers[key])
            live = self.get_providers(key, now)
            count += before - len(live)
            if not live:
                del self.providers[key]
        return count
