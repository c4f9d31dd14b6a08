"""Signed records and provider records: verification, ordering, expiry, bounds."""

from __future__ import annotations

import os

import pytest

from sedma.net.dht.storage import DhtStorage, ProviderRecord, SignedRecord, StorageLimits
from sedma.net.identity import Identity
from sedma.net.types import IntegrityError, ProtocolError


def test_records_verify_and_newer_seq_wins_until_expiry() -> None:
    ident = Identity.generate()
    store = DhtStorage()
    old = SignedRecord.create(ident, b"n", b"v1", seq=1, expires=100.0)
    new = SignedRecord.create(ident, b"n", b"v2", seq=2, expires=100.0)
    assert SignedRecord.from_wire(new.to_wire()) == new
    assert store.put_record(new, 0.0) and not store.put_record(old, 0.0)
    assert store.get_record(new.key, 50.0) == new
    assert store.get_record(new.key, 100.0) is None  # expired


def test_forged_or_oversize_records_are_refused() -> None:
    ident = Identity.generate()
    rec = SignedRecord.create(ident, b"n", b"v", seq=1, expires=10.0)
    raw = rec.to_wire()
    raw[1] = b"tampered"
    with pytest.raises(IntegrityError, match="signature"):
        SignedRecord.from_wire(raw)
    with pytest.raises(IntegrityError):
        SignedRecord.from_wire(["not", "enough"])
    with pytest.raises(ProtocolError, match="exceeds"):
        SignedRecord.create(ident, b"n", b"x" * 20000, seq=1, expires=10.0)


def test_provider_records_carry_addresses_and_are_bounded_per_key() -> None:
    store = DhtStorage(StorageLimits(max_providers_per_key=3))
    key = os.urandom(32)
    idents = [Identity.generate() for _ in range(5)]
    for i, ident in enumerate(idents):
        rec = ProviderRecord.create(ident, key, "127.0.0.1", 4000 + i, expires=10.0 + i)
        assert ProviderRecord.from_wire(rec.to_wire()) == rec
        store.add_provider(rec, 0.0)
    held = store.get_providers(key, 0.0)
    assert len(held) == 3 and {p.peer.port for p in held} == {4002, 4003, 4004}
    assert held[0].peer.peer_id in {i.peer_id for i in idents}
    assert store.expire(13.5) == 2 and len(store.get_providers(key, 13.5)) == 1


def test_provider_record_for_other_address_fails_verification() -> None:
    rec = ProviderRecord.create(Identity.generate(), os.urandom(32), "127.0.0.1", 1, expires=5.0)
    raw = rec.to_wire()
    raw[3] = 2
    with pytest.raises(IntegrityError, match="signature"):
        ProviderRecord.from_wire(raw)


def test_provider_record_signs_the_relay_it_names_and_a_swapped_relay_is_refused() -> None:
    ident, relay_id = Identity.generate(), b"\x12\x20" + b"r" * 32
    key = os.urandom(32)
    rec = ProviderRecord.create(
        ident, key, "10.0.0.5", 4001, expires=50.0, relay=(relay_id, "203.0.113.7", 4002)
    )
    wire = rec.to_wire()
    assert len(wire) == 7 and ProviderRecord.from_wire(wire) == rec
    assert rec.peer.relay == (relay_id, "203.0.113.7", 4002)
    swapped = [*wire[:6], [relay_id, "198.51.100.66", 4002]]  # a forwarder aims dialers elsewhere
    with pytest.raises(IntegrityError, match="signature"):
        ProviderRecord.from_wire(swapped)
    with pytest.raises(IntegrityError, match="signature"):
        ProviderRecord.from_wire(wire[:6])  # dropping the relay breaks the signature too
    with pytest.raises(IntegrityError, match="malformed"):
        ProviderRecord.from_wire([*wire[:6], [b"short", "h", 1]])
    plain = ProviderRecord.create(ident, key, "10.0.0.5", 4001, expires=50.0)
    assert len(plain.to_wire()) == 6 and ProviderRecord.from_wire(plain.to_wire()).relay is None
