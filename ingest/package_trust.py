"""Which key a package is checked with, and how far it is trusted (docs/export-format.md).

Without a key from the caller, a package is checked with its own station.pub: that
shows it is whole and consistent, not who made it. With ``--key`` or ``--vkey`` (the
station's key obtained separately) the checkpoint and the records are checked with
that key, and a package made with any other key fails. Records signed before a key
rotation are checked with the keys the station's ledger leaves rotated from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ingest.custody import ROTATION_FORMAT
from ingest.package import MANIFEST, PUBLIC_KEY, VKEY, strict_json
from ingest.package_files import FileChecks, ProblemSink, describe
from storage.checkpoint import CheckpointError, NoteVerifier
from storage.errors import StationKeyError, UsageError
from storage.keys import PublicKey

OWN_KEY = ("checked with the package's own key (station.pub): it shows that the package is "
           "whole and consistent, not who made it; give --key with the station's public key "
           "obtained separately (or --vkey) to check that too")


@dataclass(frozen=True)
class Trust:
    package_key: PublicKey | None  # station.pub, if usable
    trusted: PublicKey | None  # the caller's key, if one was given
    verifier: NoteVerifier | None  # what the checkpoint is checked with
    key_id: str | None  # the key everything is checked against
    text: str  # said to the user

    @property
    def independent(self) -> bool:
        return self.trusted is not None


def _text(manifest: Mapping[str, Any], name: str, problem: ProblemSink) -> str | None:
    value = manifest.get(name)
    if not isinstance(value, str) or not value:
        problem("manifest", f"{MANIFEST}: {name}",
                f"is missing or not a non-empty text (found {describe(value)})")
        return None
    return value


def resolve_keys(manifest: Mapping[str, Any], files: FileChecks, problem: ProblemSink,
                 given_key: PublicKey | None, given_vkey: NoteVerifier | None) -> Trust:
    """The package's key, the caller's trusted key (if any), and the verifier to check
    the checkpoint with (the trusted key's if there is one): step 3 of the check."""
    origin = _text(manifest, "origin", problem)
    key_id = _text(manifest, "key_id", problem)
    package_key: PublicKey | None = None
    if (pem := files.read_small(PUBLIC_KEY)) is not None:
        try:
            package_key = PublicKey.from_pem(pem.decode("ascii"))
        except (StationKeyError, UnicodeDecodeError) as exc:
            problem("public_key", PUBLIC_KEY, f"not an Ed25519 public key in PEM: {exc}")
    if package_key is not None and key_id is not None and package_key.key_id != key_id:
        problem("public_key", f"{MANIFEST}: key_id",
                     f"says {key_id}, but {PUBLIC_KEY} is {package_key.key_id}")
    package_vkey: NoteVerifier | None = None
    if (raw := files.read_small(VKEY)) is not None:
        try:
            package_vkey = NoteVerifier.from_vkey(raw.decode("utf-8").removesuffix("\n"))
        except (CheckpointError, UnicodeDecodeError) as exc:
            problem("public_key", VKEY, f"not a verifier key: {exc}")
    if package_vkey is not None:
        if origin is not None and package_vkey.name != origin:
            problem("public_key", VKEY, f"names {package_vkey.name!r}, but the "
                         f"manifest's origin is {origin!r}")
        if package_key is not None and NoteVerifier.for_key(
                package_vkey.name, package_key.key).public_key != package_vkey.public_key:
            problem("public_key", VKEY, f"holds another key than {PUBLIC_KEY}")
    if package_vkey is None and package_key is not None and origin is not None:
        package_vkey = NoteVerifier.for_key(origin, package_key.key)

    if given_key is None and given_vkey is None:
        return Trust(package_key, None, package_vkey,
                     package_key.key_id if package_key else None, OWN_KEY)

    if given_vkey is not None:
        verifier = given_vkey
        trusted = PublicKey(Ed25519PublicKey.from_public_bytes(verifier.public_key))
        if origin is not None and verifier.name != origin:
            problem("untrusted_key", f"{MANIFEST}: origin",
                         f"the package's ledger is {origin!r}, the trusted verifier key "
                         f"is for {verifier.name!r}")
        how = f"the verifier key given ({verifier.vkey})"
    else:
        assert given_key is not None
        trusted = given_key
        verifier = NoteVerifier.for_key(origin or "unknown", trusted.key)
        how = f"the public key given ({trusted.key_id})"
    if package_key is not None and package_key.key_id != trusted.key_id:
        problem("untrusted_key", PUBLIC_KEY,
                     f"the package's key is {package_key.key_id}, not the trusted key "
                     f"{trusted.key_id}: the package was not made by that station")
    return Trust(package_key, trusted, verifier, trusted.key_id,
                 f"checked with {how}, independently of the package's own key")


def rotated(body: Mapping[str, Any], old: PublicKey, new: PublicKey) -> bool:
    """Whether this leaf is a rotation from ``old`` to ``new`` signed by both keys."""
    payload = body.get("payload")
    if body.get("kind") != "key-rotate" or not isinstance(payload, dict):
        return False
    statement = payload.get("statement")
    if not isinstance(statement, str):
        return False
    try:
        raw = statement.encode("ascii")
        said = strict_json(raw)
    except ValueError:
        return False
    return (isinstance(said, dict) and said.get("format") == ROTATION_FORMAT
            and (said.get("old_key_id"), said.get("new_key_id")) == (old.key_id, new.key_id)
            and old.verify(str(payload.get("old_signature")), raw)
            and new.verify(str(payload.get("new_signature")), raw))


def load_trusted_key(path: Path) -> PublicKey:
    """A station public key (PEM) the court obtained separately; UsageError if unusable."""
    try:
        return PublicKey.from_pem(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--key {path} cannot be read: {exc}") from exc
    except StationKeyError as exc:
        raise UsageError(f"--key {path}: {exc}") from exc


def load_trusted_vkey(text: str) -> NoteVerifier:
    try:
        return NoteVerifier.from_vkey(text.strip())
    except CheckpointError as exc:
        raise UsageError(f"--vkey: {exc}") from exc
