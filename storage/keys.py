"""The station's Ed25519 signing key: made on first use, kept 0400 in the data folder."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from storage.errors import StationKeyError


def key_id_of(public: Ed25519PublicKey) -> str:
    """``ed25519:`` + the first 16 hex digits of SHA-256 over the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return key_id_of(self.key)

    def pem(self) -> str:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def verify(self, signature_b64: str, message: bytes) -> bool:
        try:
            self.key.verify(base64.b64decode(signature_b64, validate=True), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_pem(cls, pem: str) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(pem.encode("ascii"))
        except ValueError as exc:
            raise StationKeyError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise StationKeyError("the public key is not an Ed25519 key")
        return cls(key)


@dataclass(frozen=True)
class StationKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.private.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode("ascii")


def load_or_create(path: Path) -> StationKey:
    """Load the station key, making it (mode 0400, folder 0700) if it does not exist."""
    if not path.exists():
        return _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StationKeyError(
            f"station key {path} is readable by others (mode {mode:o}); run chmod 0400 on it"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise StationKeyError(f"cannot read station key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StationKeyError(f"station key {path} is not an Ed25519 key")
    return StationKey(key)


def _create(path: Path) -> StationKey:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
    except FileExistsError:
        return load_or_create(path)  # another process made it first
    except OSError as exc:
        raise StationKeyError(f"cannot create station key {path}: {exc}") from exc
    return StationKey(private)
