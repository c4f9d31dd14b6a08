"""Peer identity: persisted Ed25519 key, multihash peer id."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sedma.errors import StorageError
from sedma.net.identity import (
    KEY_FILE,
    Identity,
    peer_id_from_public,
    peer_id_from_text,
    peer_id_text,
    verify,
)


def test_identity_is_persisted_with_mode_0600_and_reloads_the_same(tmp_path: Path) -> None:
    first = Identity.load_or_create(tmp_path / "net")
    mode = stat.S_IMODE((tmp_path / "net" / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    again = Identity.load_or_create(tmp_path / "net")
    assert again.peer_id == first.peer_id
    assert first.peer_id[:2] == b"\x12\x20" and len(first.peer_id) == 34


def test_peer_id_text_round_trips_and_signatures_verify() -> None:
    ident = Identity.generate()
    assert peer_id_from_text(ident.text) == ident.peer_id
    assert peer_id_text(ident.peer_id).startswith("b")
    sig = ident.sign(b"hello")
    assert verify(ident.public, sig, b"hello")
    assert not verify(ident.public, sig, b"hellp")
    assert not verify(Identity.generate().public, sig, b"hello")
    assert peer_id_from_public(ident.public) == ident.peer_id


def test_corrupt_key_file_is_a_storage_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(StorageError, match=KEY_FILE):
        Identity.load_or_create(tmp_path)
