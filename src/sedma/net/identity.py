"""Peer identity: an Ed25519 key pair whose public key names the peer.

The peer id is a multihash (sha2-256, code 0x12, length 0x20) of the raw 32-byte public key,
so anyone holding the key can check a claimed id; the DHT position is sha256(peer id).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sedma.errors import StorageError
from sedma.net.types import IntegrityError

_MULTIHASH_SHA256 = b"\x12\x20"
KEY_FILE = "identity.ed25519"


def peer_id_from_public(public: bytes) -> bytes:
    """Multihash sha2-256 of the raw Ed25519 public key."""
    if len(public) != 32:
        raise IntegrityError(f"Ed25519 public key must be 32 bytes, got {len(public)}")
    return _MULTIHASH_SHA256 + hashlib.sha256(public).digest()


def peer_id_text(peer_id: bytes) -> str:
    """Printable peer id: multibase base32 (lowercase, no padding, 'b' prefix)."""
    return "b" + base64.b32encode(peer_id).decode().lower().rstrip("=")


def peer_id_from_text(text: str) -> bytes:
    """Inverse of :func:`peer_id_text`."""
    if not text.startswith("b"):
        raise IntegrityError(f"peer id {text!r} is not multibase base32 ('b' prefix)")
    body = text[1:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is ``public``'s Ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A peer's private key with its derived public key and peer id."""

    private: Ed25519PrivateKey
    public: bytes
    peer_id: bytes

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey) -> Identity:
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(private=private, public=public, peer_id=peer_id_from_public(public))

    @classmethod
    def generate(cls) -> Identity:
        """A fresh ephemeral identity (CLI clients, swarm peers)."""
        return cls.from_private(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, directory: Path) -> Identity:
        """The identity kept in ``directory`` (mode 0600), created on first use."""
        path = directory / KEY_FILE
        if path.exists():
            return cls._load(path)
        directory.mkdir(parents=True, exist_ok=True)
        ident = cls.generate()
        raw = ident.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        # Create with 0600 atomically so the key is never readable by others, even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        return ident

    @classmethod
    def _load(cls, path: Path) -> Identity:
        raw = path.read_bytes()
        if len(raw) != 32:
            raise StorageError(f"{path}: Ed25519 key must be 32 raw bytes, found {len(raw)}")
        return cls.from_private(Ed25519PrivateKey.from_private_bytes(raw))

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message``."""
        return self.private.sign(message)

    @property
    def text(self) -> str:
        return peer_id_text(self.peer_id)
