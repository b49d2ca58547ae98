"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

A checkpoint is the signed statement "the ledger ``origin`` has ``size`` leaves and this Merkle
root" that a court can check offline with the station's verifier key. Byte-level description,
with an example: docs/ledger-crypto.md.

Note format::

    <text, ending in \\n>          the signed bytes
    \\n                            one blank line
    — <key name> <base64(key ID || signature)>\\n     one line per signature (U+2014, space)

Only Ed25519 keys (signature type 0x01) are made and verified here. Signatures by keys the
verifier does not know are kept and ignored, as the spec requires. Every problem is a
:class:`CheckpointError` whose message names what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from storage.errors import EvidockError
from storage.keys import PublicKey, StationKey

ED25519_TYPE = 0x01
"""Signature type byte of plain Ed25519 note signatures (signed-note, "Signature types")."""

MAX_NOTE_SIZE = 1 << 20
"""Largest note accepted, in bytes (100 post-quantum signatures would still fit)."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the spec asks verifiers to accept at least 16)."""

MAX_TREE_SIZE = (1 << 64) - 1
ROOT_SIZE = 32

_SIGNATURE_PREFIX = "— "  # U+2014 EM DASH, U+0020 SPACE
_ED25519_SIGNATURE_SIZE = 64

# Unicode White_Space (what Go's unicode.IsSpace, used by the reference implementation, tests).
_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile("0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile("[0-9a-f]{8}")
_CONTROL_NAMES = {"\r": "a carriage return (CR)", "\t": "a tab", "\x00": "a NUL byte"}

SigningKey = StationKey | Ed25519PrivateKey
"""What can sign: the station key, or a bare Ed25519 private key."""


class CheckpointError(EvidockError, ValueError):
    """A note, checkpoint or verifier key is malformed, or its signatures do not verify."""


def _fail(message: str) -> CheckpointError:
    return CheckpointError(message)


def _b64decode(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 section 4) with padding, and only its canonical form."""
    if not text:
        raise _fail(f"{what} is empty")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise _fail(f"{what} is not standard base64: {text[:40]!r}") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise _fail(f"{what} is not in canonical base64 form (padding or trailing bits): "
                    f"{text[:40]!r}")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"must be text, not {type(name).__name__}"
    if not name:
        return "is empty"
    if "+" in name:
        return "contains a plus sign"
    for ch in name:
        if ch in _WHITE_SPACE:
            return f"contains a space character (U+{ord(ch):04X})"
        if ord(ch) < 0x20:
            return f"contains a control character (U+{ord(ch):04X})"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (lone surrogate)"
    return None


def check_key_name(name: str) -> str:
    """A key name: non-empty, no Unicode white space, no ``+`` (signed-note, "Format")."""
    problem = _name_problem(name)
    if problem is not None:
        raise _fail(f"key name {name!r} {problem}; key names are like example.com/log42")
    return name


def _decode_text(data: object, what: str) -> str:
    """UTF-8 without control characters other than newline (signed-note, "Format")."""
    if not isinstance(data, bytes | bytearray):
        raise _fail(f"{what} must be bytes, not {type(data).__name__}")
    if len(data) > MAX_NOTE_SIZE:
        raise _fail(f"{what} is {len(data)} bytes; at most {MAX_NOTE_SIZE} are accepted")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(f"{what} is not valid UTF-8 (byte {exc.start})") from exc
    bad = _CONTROL.search(text)
    if bad is not None:
        ch = bad.group()
        at = len(text[:bad.start()].encode("utf-8"))
        what_char = _CONTROL_NAMES.get(ch, f"control character U+{ord(ch):04X}")
        hint = "; lines must end with \\n alone" if ch == "\r" else ""
        raise _fail(f"{what} contains {what_char} at byte {at}{hint}")
    return text


def ed25519_key_id(name: str, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || 0x01 || 32-byte public key)``, first 4 bytes, big-endian."""
    check_key_name(name)
    if len(public_key) != 32:
        raise _fail(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE])
                            + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _raw_public(key: PublicKey | Ed25519PublicKey | bytes) -> bytes:
    if isinstance(key, PublicKey):
        key = key.key
    if isinstance(key, Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, bytes | bytearray) and len(key) == 32:
        return bytes(key)
    raise _fail("the public key must be an Ed25519 key (PublicKey, Ed25519PublicKey or "
                "32 raw bytes)")


def _private(key: SigningKey) -> Ed25519PrivateKey:
    if isinstance(key, StationKey):
        return key.private
    if isinstance(key, Ed25519PrivateKey):
        return key
    raise _fail(f"cannot sign with a {type(key).__name__}; give the StationKey or an "
                "Ed25519 private key")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 32-bit key ID and the signature bytes after the ID."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        """The line as it appears in a note, newline included."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIGNATURE_PREFIX}{self.name} {_b64(blob)}\n"


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 key under its name: what a court configures to check notes."""

    name: str
    public_key: bytes  # 32 raw bytes (RFC 8032 encoding)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise _fail("a NoteVerifier needs the 32 raw bytes of an Ed25519 public key")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:
            raise _fail(f"not an Ed25519 public key: {exc}") from exc

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey!r})"

    @classmethod
    def for_key(cls, name: str, key: PublicKey | Ed25519PublicKey | bytes) -> NoteVerifier:
        return cls(name, _raw_public(key))

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<8 hex digits key ID>+<base64(0x01 || 32-byte public key)>``."""
        if not isinstance(vkey, str):
            raise _fail(f"a verifier key is text, not {type(vkey).__name__}")
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise _fail(f"verifier key {vkey[:80]!r} is not <name>+<key ID>+<key>")
        name, id_hex, key_b64 = parts
        check_key_name(name)
        if not _KEY_ID_HEX.fullmatch(id_hex):
            raise _fail(f"verifier key for {name!r}: key ID {id_hex[:20]!r} is not 8 "
                        "lower-case hex digits")
        raw = _b64decode(key_b64, f"verifier key for {name!r}: the key")
        if raw[0] != ED25519_TYPE:
            raise _fail(f"verifier key for {name!r}: signature type 0x{raw[0]:02x} is not "
                        "supported (only 0x01, Ed25519)")
        if len(raw) != 33:
            raise _fail(f"verifier key for {name!r}: an Ed25519 key is 0x01 and 32 bytes, "
                        f"got {len(raw)} bytes")
        verifier = cls(name, raw[1:])
        if verifier.key_id != int(id_hex, 16):
            raise _fail(f"verifier key for {name!r}: key ID {id_hex} does not match the name "
                        f"and key (expected {verifier.key_id:08x}); the key was mistyped")
        return verifier

    @property
    def key_id(self) -> int:
        return ed25519_key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string third parties configure (see :meth:`from_vkey`)."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ED25519_TYPE]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def verifier_key(name: str, key: PublicKey | Ed25519PublicKey | bytes) -> str:
    """The vkey string of an Ed25519 public key under ``name``."""
    return NoteVerifier.for_key(name, key).vkey


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    where = f"signature line {number}"
    if not line.startswith(_SIGNATURE_PREFIX):
        raise _fail(f"{where} does not start with an em dash (U+2014) and a space: "
                    f"{line[:60]!r}")
    rest = line[len(_SIGNATURE_PREFIX):]
    name, sep, blob_b64 = rest.partition(" ")
    if not sep:
        raise _fail(f"{where} has no space between key name and signature: {line[:60]!r}")
    problem = _name_problem(name)
    if problem is not None:
        raise _fail(f"{where}: key name {name[:60]!r} {problem}")
    blob = _b64decode(blob_b64, f"{where} ({name})")
    if len(blob) < 5:
        raise _fail(f"{where} ({name}): a signature is a 4-byte key ID and at least one "
                    f"byte, got {len(blob)} bytes")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def parse_note(note: bytes) -> tuple[bytes, list[NoteSignature]]:
    """Split a signed note into its text (the signed bytes) and its signature lines.

    Checks the syntax only; :func:`verify_note` checks the signatures.
    """
    text = _decode_text(note, "the note")
    split = text.rfind("\n\n")
    if split < 0:
        raise _fail("the note has no blank line before its signatures (a note is text, "
                    "a blank line, then signature lines)")
    body, block = text[:split + 1], text[split + 2:]
    if not block:
        raise _fail("the note has no signature lines after its last blank line")
    if not block.endswith("\n"):
        raise _fail("the note does not end with a newline after its last signature")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _fail(f"the note has {len(lines)} signature lines; at most {MAX_SIGNATURES} "
                    "are accepted")
    signatures = [_parse_signature_line(line, i) for i, line in enumerate(lines, 1)]
    return body.encode("utf-8"), signatures


def _verifier_index(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, int], NoteVerifier]:
    index: dict[tuple[str, int], NoteVerifier] = {}
    for v in verifiers:
        if not isinstance(v, NoteVerifier):
            raise _fail(f"verifiers must be NoteVerifier values, got {type(v).__name__}")
        known = index.setdefault((v.name, v.key_id), v)
        if known.public_key != v.public_key:
            raise _fail(f"two different trusted keys are named {v.name}+{v.key_id:08x}; "
                        "remove the wrong one from the trusted keys")
    return index


def verify_note(note: bytes, verifiers: Iterable[NoteVerifier]) -> list[NoteVerifier]:
    """Check a note's signatures; return the trusted keys that signed it, in note order.

    Following c2sp.org/signed-note: a signature whose key name and ID match no trusted key is
    ignored; one that matches a trusted key must verify, or the whole note is rejected; and at
    least one trusted key must have signed. Every rejection is a :class:`CheckpointError`.
    """
    index = _verifier_index(verifiers)
    body, signatures = parse_note(note)
    verified: list[NoteVerifier] = []
    for sig in signatures:
        verifier = index.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(body, sig.signature):
            raise _fail(f"the signature by {sig.name}+{sig.key_id:08x} does not verify: the "
                        "note was changed after signing, or the signature is damaged")
        if verifier not in verified:
            verified.append(verifier)
    if not verified:
        signed_by = ", ".join(f"{s.name}+{s.key_id:08x}" for s in signatures)
        trusted = ", ".join(f"{k[0]}+{k[1]:08x}" for k in index) or "none"
        raise _fail(f"no trusted key signed this note (signed by {signed_by}; "
                    f"trusted: {trusted})")
    return verified


def _sign_line(body: bytes, key_name: str, key: SigningKey) -> NoteSignature:
    check_key_name(key_name)
    private = _private(key)
    key_id = ed25519_key_id(key_name, _raw_public(private.public_key()))
    return NoteSignature(key_name, key_id, private.sign(body))


def sign_note(text: bytes, key_name: str, key: SigningKey) -> bytes:
    """Sign ``text`` (valid note text ending in a newline) as a note with one signature."""
    body = _decode_text(text, "the note text").encode("utf-8")
    if not body.endswith(b"\n"):
        raise _fail("the note text must end with a newline")
    return body + b"\n" + _sign_line(body, key_name, key).line.encode("utf-8")


def add_signature(note: bytes, key_name: str, key: SigningKey) -> bytes:
    """Cosign: add this key's signature to a signed note, keeping the others.

    Existing lines keep their order; an existing signature by the same key (name and key ID)
    is replaced, and the new line goes last, as the Go reference implementation does. This
    does not check the existing signatures: a witness calls :func:`verify_note` (and checks
    consistency with the last checkpoint it cosigned) before it adds its own.
    """
    body, signatures = parse_note(note)
    new = _sign_line(body, key_name, key)
    kept = [s for s in signatures if (s.name, s.key_id) != (new.name, new.key_id)]
    if len(kept) + 1 > MAX_SIGNATURES:
        raise _fail(f"the note already has {len(kept)} signatures; at most {MAX_SIGNATURES}")
    return body + b"\n" + "".join(s.line for s in [*kept, new]).encode("utf-8")


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint body: origin, tree size, RFC 6962 root, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise _fail("the checkpoint origin must be non-empty text")
        if "\n" in self.origin or _CONTROL.search(self.origin):
            raise _fail(f"the checkpoint origin {self.origin[:60]!r} contains a newline or "
                        "control character")
        if (not isinstance(self.size, int) or isinstance(self.size, bool)
                or not 0 <= self.size <= MAX_TREE_SIZE):
            raise _fail(f"the checkpoint tree size {self.size!r} is not an integer in "
                        "0..2^64-1")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE:
            got = len(self.root) if isinstance(self.root, bytes) else type(self.root).__name__
            raise _fail(f"the checkpoint root must be {ROOT_SIZE} bytes (SHA-256), got {got}")
        if not isinstance(self.extensions, tuple):
            raise _fail("checkpoint extensions must be a tuple of lines")
        for i, ext in enumerate(self.extensions, 1):
            if not isinstance(ext, str) or not ext:
                raise _fail(f"checkpoint extension line {i} is empty or not text")
            if "\n" in ext or _CONTROL.search(ext):
                raise _fail(f"checkpoint extension line {i} contains a newline or control "
                            "character")

    def body(self) -> bytes:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` then each extension line."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")


def parse_checkpoint(body: bytes) -> Checkpoint:
    """Parse a checkpoint note text (what :func:`parse_note` returns as the body)."""
    text = _decode_text(body, "the checkpoint")
    if not text.endswith("\n"):
        raise _fail("the checkpoint does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise _fail(f"the checkpoint has {len(lines)} lines; it needs origin, tree size "
                    "and root hash")
    for number, line in enumerate(lines, 1):
        if not line:
            raise _fail(f"line {number} of the checkpoint is empty")
    origin, size_text, root_b64, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise _fail(f"the checkpoint tree size {size_text[:40]!r} is not a decimal number "
                    "without leading zeros")
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise _fail(f"the checkpoint tree size {size_text[:40]} is larger than 2^64-1")
    root = _b64decode(root_b64, "the checkpoint root hash")
    if len(root) != ROOT_SIZE:
        raise _fail(f"the checkpoint root hash is {len(root)} bytes, not {ROOT_SIZE}")
    return Checkpoint(origin, size, root, tuple(extensions))


def make_checkpoint(origin: str, size: int, root: bytes, key_name: str,
                    private_key: SigningKey, *, extensions: Sequence[str] = ()) -> bytes:
    """A signed checkpoint note. evidock adds no extension lines (the spec advises against
    them, as monitors cannot audit them); the origin must also be a valid key name, and it
    SHOULD be the same as ``key_name``."""
    problem = _name_problem(origin)
    if problem is not None:
        raise _fail(f"origin {origin!r} {problem}; use a schema-less URL like "
                    "example.com/evidock/station-1")
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    return sign_note(checkpoint.body(), key_name, private_key)


def open_checkpoint(note: bytes, verifiers: Iterable[NoteVerifier], *,
                    origin: str | None = None) -> tuple[Checkpoint, list[NoteVerifier]]:
    """Verify a signed checkpoint (see :func:`verify_note`) and parse it; check the origin."""
    verified = verify_note(note, verifiers)
    body, _ = parse_note(note)
    checkpoint = parse_checkpoint(body)
    if origin is not None and checkpoint.origin != origin:
        raise _fail(f"the checkpoint is for {checkpoint.origin[:80]!r}, not {origin!r}")
    return checkpoint, verified
