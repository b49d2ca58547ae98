"""The station's Ed25519 signing key: made atomically on first use, kept 0400 in home."""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from storage.durable import fsync_dir
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


class KeyMissing(StationKeyError):
    """The station key file does not exist (yet)."""


_WHAT_TO_DO = ("restore the key from the station's backup; if no recording was ever signed "
               "with it, move the file aside and evidock makes a new key on next use")


def load(path: Path) -> StationKey:
    """Load the station key; never create it. Every problem is a StationKeyError naming the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO never blocks
    except FileNotFoundError as exc:
        raise KeyMissing(f"station key {path} does not exist") from exc
    except PermissionError as exc:
        raise StationKeyError(f"cannot read station key {path}: permission denied; run evidock "
                              "as the user that owns the data folder") from exc
    except OSError as exc:
        raise StationKeyError(f"cannot read station key {path}: "
                              f"{exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StationKeyError(f"station key {path} is not a regular file (a folder or "
                                  f"device); {_WHAT_TO_DO}")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise StationKeyError(
                f"station key {path} is readable by others (mode {mode:o}); run chmod 0400 on it"
            )
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError as exc:
        raise StationKeyError(f"cannot read station key {path}: "
                              f"{exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if not data.strip():
        raise StationKeyError(f"station key {path} is empty (a key creation was interrupted, "
                              f"or the file was truncated); {_WHAT_TO_DO}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise StationKeyError(f"station key {path} is damaged (not a PEM private key); "
                              f"{_WHAT_TO_DO}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StationKeyError(f"station key {path} is not an Ed25519 key; {_WHAT_TO_DO}")
    return StationKey(key)


def load_or_create(path: Path) -> StationKey:
    """Load the station key, making it (mode 0400, folder 0700) if it does not exist."""
    try:
        return load(path)
    except KeyMissing:
        return _create(path)


def _create(path: Path) -> StationKey:
    """Make the key atomically: a crash leaves no key file or a whole one, never a part.

    The PEM goes to a temporary file in the same folder, which is fsynced, made 0400 and
    hard-linked to its name (link, unlike rename, fails if another process made the key
    meanwhile, so a key somebody already signed with is never replaced); then the folder
    is fsynced so the name survives a power cut.
    """
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    folder = path.parent
    tmp: Path | None = None
    try:
        new_folder = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if new_folder:
            fsync_dir(folder.parent)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        tmp = Path(name)
        try:
            view = memoryview(pem)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o400)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return load(path)  # another process made it first; use that one
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if path.exists():  # a file system without hard links
                return load(path)
            tmp.replace(path)
            tmp = None
        fsync_dir(folder)
    except OSError as exc:
        raise StationKeyError(f"cannot create station key {path}: "
                              f"{exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return StationKey(private)
