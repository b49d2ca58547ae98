"""Check an evidence export package with nothing but the package (docs/export-format.md).

No catalog, no settings, no network: every file's size and digest, each ingest
record's signature, the checkpoint's signature (with the package's own key, or
with a key the court obtained separately), every ledger leaf's hash and inclusion
proof against the checkpoint root, that the leaves record the same values the
manifest states, that the export leaf commits to this manifest, and that no file
is missing or added. Nothing in the package is ever written.

Each problem names the file and the field; the kinds are listed in
docs/export-format.md ("What each failure means").
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ingest.custody import ROTATION_FORMAT
from ingest.package import (
    CATALOG_COLUMNS,
    CHECKPOINT,
    DOCUMENTS,
    EXPORT_PAYLOAD_FIELDS,
    FIXED_FILES,
    MANIFEST,
    PACKAGE_FORMAT,
    PROOFS,
    PROOFS_FORMAT,
    PUBLIC_KEY,
    RECORD_FIELDS,
    SIGNED_COLUMNS,
    VKEY,
    concerns,
    export_payload,
    name_problem,
    records_row,
    station_row,
    strict_json,
)
from ingest.record import RECORD_FORMAT
from storage.canonical import canonical_json
from storage.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
)
from storage.errors import StationKeyError, UsageError
from storage.hashing import hash_stream
from storage.keys import PublicKey
from storage.ledger import LEAF_FORMAT
from storage.merkle import HASH_SIZE, leaf_hash, verify_inclusion

_MAX_SMALL_FILE = 64 << 20  # manifest, proofs, keys, checkpoint: read whole, at most this


class NotAPackage(UsageError):
    """The folder is not an evidence package at all (exit 2): nothing to check."""


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str  # the file, and the field inside it
    detail: str


@dataclass
class PackageReport:
    folder: str
    package_id: str | None = None
    recordings: int = 0
    files: int = 0
    leaves: int = 0
    checkpoint: dict[str, Any] | None = None
    key_id: str | None = None  # the key the signatures were checked with
    trusted: bool = False  # that key was given by the caller, not taken from the package
    trust: str = ""
    problems: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """What `evidock verify-export` prints."""
        point = self.checkpoint
        head = (f"package {self.package_id or '(no id)'} in {self.folder}: {self.recordings} "
                f"recordings, {self.files} files, {self.leaves} ledger leaves"
                + (f", checkpoint of {point['size']} leaves ({point['origin']})" if point
                   else ""))
        out = [head, f"key: {self.key_id or 'none usable'}, {self.trust}"]
        out += [f"  {p.kind}: {p.subject}: {p.detail}" for p in self.problems]
        out.append("result: all intact" if self.ok
                   else f"result: {len(self.problems)} problem(s)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "folder": self.folder, "package_id": self.package_id,
                "recordings": self.recordings, "files": self.files, "leaves": self.leaves,
                "checkpoint": self.checkpoint, "key_id": self.key_id,
                "key_independently_trusted": self.trusted, "trust": self.trust,
                "problems": [p.__dict__ for p in self.problems]}


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:119] + "…"


def _hex_hash(value: object) -> bytes | None:
    if not isinstance(value, str) or len(value) != 2 * HASH_SIZE or value != value.lower():
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class _Proven:
    leaf_hash: object  # as found in proofs.json: checked before use
    proof: object


class _Checker:
    def __init__(self, folder: Path, manifest: dict[str, Any], manifest_bytes: bytes,
                 key: PublicKey | None, vkey: NoteVerifier | None,
                 on_file: Callable[[str], None] | None):
        self.folder = folder
        self.m = manifest
        self.manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
        self.given_key = key
        self.given_vkey = vkey
        self.on_file = on_file
        self.report = PackageReport(str(folder))
        self.expected: set[str] = set(FIXED_FILES)
        self.digests: dict[str, tuple[str, int] | None] = {}
        self.checked_leaves: dict[int, bool] = {}
        self.point: Checkpoint | None = None
        self.proven: dict[int, _Proven] = {}
        self.proofs_read = False
        self.export_item: object = None

    def problem(self, kind: str, subject: str, detail: str) -> None:
        self.report.problems.append(Finding(kind, subject, detail))

    def run(self) -> PackageReport:
        self.report.package_id = self._text(self.m, "package_id", MANIFEST)
        package_key, trusted, note_key = self._keys()
        self._checkpoint(note_key)
        self._proofs()
        signing = self._signing_keys(package_key, trusted)
        recordings = self.m.get("recordings")
        if not isinstance(recordings, list):
            self.problem("manifest", f"{MANIFEST}: recordings", "is not a list")
            recordings = []
        self.report.recordings = len(recordings)
        collection = self.m.get("collection")
        ids = [r.get("id") if isinstance(r, dict) else None for r in recordings]
        if not isinstance(collection, dict) or collection.get("recording_ids") != ids:
            self.problem("manifest", f"{MANIFEST}: collection.recording_ids",
                         f"does not list the recordings' ids {ids}")
        for index, entry in enumerate(recordings):
            self._recording(index, entry, signing)
        self._documents()
        self._export_leaf()
        self._extra_files()
        self.report.files = len(self.digests)
        self.report.leaves = len(self.checked_leaves)
        return self.report

    # Small helpers ----------------------------------------------------------------

    def _text(self, obj: Mapping[str, Any], name: str, where: str) -> str | None:
        value = obj.get(name)
        if not isinstance(value, str) or not value:
            self.problem("manifest", f"{where}: {name}",
                         f"is missing or not a non-empty text (found {_describe(value)})")
            return None
        return value

    def _read_small(self, name: str) -> bytes | None:
        """A fixed file of the package, or None (with the problem named) if unusable."""
        path = self.folder / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            self.problem("file_missing", name, "the package has no such file")
            return None
        except OSError as exc:
            self.problem("file_unreadable", name, exc.strerror or str(exc))
            return None
        if not stat.S_ISREG(info.st_mode):
            self.problem("not_a_file", name, "is not a regular file (a link, folder or device)")
            return None
        if info.st_size > _MAX_SMALL_FILE:
            self.problem("file_unreadable", name, f"is {info.st_size} bytes; too large")
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            self.problem("file_unreadable", name, exc.strerror or str(exc))
            return None

    # Keys and trust ---------------------------------------------------------------

    def _keys(self) -> tuple[PublicKey | None, PublicKey | None, NoteVerifier | None]:
        """The package's key, the caller's trusted key (if any), and the verifier to check
        the checkpoint with (the trusted key's if there is one)."""
        origin = self._text(self.m, "origin", MANIFEST)
        key_id = self._text(self.m, "key_id", MANIFEST)
        package_key: PublicKey | None = None
        if (pem := self._read_small(PUBLIC_KEY)) is not None:
            try:
                package_key = PublicKey.from_pem(pem.decode("ascii"))
            except (StationKeyError, UnicodeDecodeError) as exc:
                self.problem("public_key", PUBLIC_KEY, f"not an Ed25519 public key in PEM: {exc}")
        if package_key is not None and key_id is not None and package_key.key_id != key_id:
            self.problem("public_key", f"{MANIFEST}: key_id",
                         f"says {key_id}, but {PUBLIC_KEY} is {package_key.key_id}")
        package_vkey: NoteVerifier | None = None
        if (raw := self._read_small(VKEY)) is not None:
            try:
                package_vkey = NoteVerifier.from_vkey(raw.decode("utf-8").removesuffix("\n"))
            except (CheckpointError, UnicodeDecodeError) as exc:
                self.problem("public_key", VKEY, f"not a verifier key: {exc}")
        if package_vkey is not None:
            if origin is not None and package_vkey.name != origin:
                self.problem("public_key", VKEY, f"names {package_vkey.name!r}, but the "
                             f"manifest's origin is {origin!r}")
            if package_key is not None and NoteVerifier.for_key(
                    package_vkey.name, package_key.key).public_key != package_vkey.public_key:
                self.problem("public_key", VKEY, f"holds another key than {PUBLIC_KEY}")
        if package_vkey is None and package_key is not None and origin is not None:
            package_vkey = NoteVerifier.for_key(origin, package_key.key)

        if self.given_key is None and self.given_vkey is None:
            self.report.key_id = package_key.key_id if package_key else None
            self.report.trust = (
                "checked with the package's own key (station.pub): it shows that the package "
                "is whole and consistent, not who made it; give --key with the station's "
                "public key obtained separately (or --vkey) to check that too")
            return package_key, None, package_vkey

        if self.given_vkey is not None:
            verifier = self.given_vkey
            trusted = PublicKey(Ed25519PublicKey.from_public_bytes(verifier.public_key))
            if origin is not None and verifier.name != origin:
                self.problem("untrusted_key", f"{MANIFEST}: origin",
                             f"the package's ledger is {origin!r}, the trusted verifier key "
                             f"is for {verifier.name!r}")
            how = f"the verifier key given ({verifier.vkey})"
        else:
            assert self.given_key is not None
            trusted = self.given_key
            verifier = NoteVerifier.for_key(origin or "unknown", trusted.key)
            how = f"the public key given ({trusted.key_id})"
        self.report.key_id, self.report.trusted = trusted.key_id, True
        self.report.trust = f"checked with {how}, independently of the package's own key"
        if package_key is not None and package_key.key_id != trusted.key_id:
            self.problem("untrusted_key", PUBLIC_KEY,
                         f"the package's key is {package_key.key_id}, not the trusted key "
                         f"{trusted.key_id}: the package was not made by that station")
        return package_key, trusted, verifier

    def _signing_keys(self, package_key: PublicKey | None, trusted: PublicKey | None
                      ) -> dict[str, PublicKey]:
        """The keys records may be signed with: the station's key at the export (the
        trusted one, or the package's), and the keys it was rotated from, as the station's
        ledger leaves (proven in the checkpoint) show; {} if there is no usable key."""
        anchor = trusted or package_key
        chain, final = self._key_chain(package_key)
        if anchor is None:
            return {}
        if final is not None and final.key_id == anchor.key_id:
            return chain
        return {anchor.key_id: anchor}

    def _key_chain(self, package_key: PublicKey | None
                   ) -> tuple[dict[str, PublicKey], PublicKey | None]:
        """Follow the station's key through its leaves: first pinned, then each rotation
        signed by the old and the new key (as `evidock verify` does)."""
        where = f"{MANIFEST}: station_keys"
        items, station = self.m.get("station_keys"), self.m.get("station")
        if not isinstance(items, list) or not items:
            self.problem("manifest", where, "lists no ledger leaf with the station's key")
            return {}, None
        chain: dict[str, PublicKey] = {}
        pinned: PublicKey | None = None
        previous = -1
        for number, item in enumerate(items):
            at = f"{where}[{number}]"
            body = self._leaf(item, at)
            row = station_row(body, str(station)) if body is not None else None
            if body is None:
                continue
            if body["seq"] <= previous:
                self.problem("manifest", at, f"leaf {body['seq']} is not after leaf {previous}")
            previous = body["seq"]
            if row is None:
                self.problem("leaf_unrelated", at, f"leaf {body['seq']} does not write "
                             f"station {_describe(station)}'s row")
                continue
            try:
                key = PublicKey.from_pem(str(row.get("public_key_pem")))
            except StationKeyError as exc:
                self.problem("key_chain", at, f"leaf {body['seq']}: {exc}")
                continue
            if row.get("key_id") != key.key_id:
                self.problem("key_chain", at, f"leaf {body['seq']} names key "
                             f"{_describe(row.get('key_id'))} for the public key {key.key_id}")
            elif pinned is None or pinned.key_id == key.key_id or _rotated(body, pinned, key):
                pinned = key
                chain[key.key_id] = key
            else:
                self.problem("key_chain", at,
                             f"leaf {body['seq']} changes the station key from "
                             f"{pinned.key_id} to {key.key_id} without a rotation signed by "
                             "both keys")
        if pinned is not None and package_key is not None \
                and pinned.key_id != package_key.key_id:
            self.problem("key_chain", where, f"the station's key in the ledger is "
                         f"{pinned.key_id}, but {PUBLIC_KEY} is {package_key.key_id}")
        return chain, pinned

    # Checkpoint and proofs --------------------------------------------------------

    def _checkpoint(self, verifier: NoteVerifier | None) -> None:
        note = self._read_small(CHECKPOINT)
        if note is None:
            return
        origin = self.m.get("origin") if isinstance(self.m.get("origin"), str) else None
        if verifier is not None:
            try:
                self.point, _ = open_checkpoint(note, [verifier], origin=origin)
            except CheckpointError as exc:
                self.problem("checkpoint", CHECKPOINT, f"does not verify: {exc}")
        else:
            self.problem("checkpoint", CHECKPOINT, "cannot be checked: no usable key")
        if self.point is None:  # still read it, to name what else is wrong
            try:
                self.point = parse_checkpoint(parse_note(note)[0])
            except CheckpointError as exc:
                self.problem("checkpoint", CHECKPOINT, f"cannot be read: {exc}")
                return
        self.report.checkpoint = {"origin": self.point.origin, "size": self.point.size,
                                  "root": self.point.root.hex()}

    def _proofs(self) -> None:
        raw = self._read_small(PROOFS)
        if raw is None:
            return
        try:
            proofs = strict_json(raw)
        except ValueError as exc:
            self.problem("proofs", PROOFS, f"is not valid JSON: {exc}")
            return
        if not isinstance(proofs, dict) or proofs.get("format") != PROOFS_FORMAT:
            self.problem("proofs", f"{PROOFS}: format", f"is not {PROOFS_FORMAT}")
            return
        if proofs.get("package_id") != self.report.package_id:
            self.problem("proofs", f"{PROOFS}: package_id",
                         f"{_describe(proofs.get('package_id'))} is not the manifest's "
                         f"{_describe(self.report.package_id)}")
        copy = proofs.get("checkpoint")
        if self.point is not None and copy != self.report.checkpoint:
            self.problem("proofs", f"{PROOFS}: checkpoint",
                         f"{_describe(copy)} differs from {CHECKPOINT} "
                         f"({_describe(self.report.checkpoint)})")
        items = proofs.get("leaves")
        if not isinstance(items, list):
            self.problem("proofs", f"{PROOFS}: leaves", "is not a list")
            items = []
        for number, item in enumerate(items):
            seq = item.get("seq") if isinstance(item, dict) else None
            if not isinstance(seq, int) or isinstance(seq, bool) or seq in self.proven:
                self.problem("proofs", f"{PROOFS}: leaves[{number}]",
                             "has no seq, or repeats one")
                continue
            self.proven[seq] = _Proven(item.get("leaf_hash"), item.get("proof"))
        self.proofs_read = True
        self.export_item = proofs.get("export_leaf")

    def _leaf_proof(self, seq: int, digest: bytes, proven: _Proven, where: str) -> None:
        """The leaf's hash and inclusion proof against the checkpoint root."""
        if proven.leaf_hash != digest.hex():
            self.problem("leaf_body", where,
                         f"the leaf body hashes to {digest.hex()}, but {PROOFS} proves leaf "
                         f"hash {_describe(proven.leaf_hash)}: the body was edited")
            return
        elements = proven.proof if isinstance(proven.proof, list) else None
        hashes = [_hex_hash(h) for h in elements] if elements is not None else None
        if hashes is None or any(h is None for h in hashes):
            self.problem("proof", f"{PROOFS}: leaf {seq} proof",
                         "is not a list of 64-digit lower-case hex hashes")
            return
        if self.point is None:
            self.problem("proof", f"{PROOFS}: leaf {seq} proof",
                         "not checked: there is no readable checkpoint")
            return
        if not verify_inclusion(digest, seq, self.point.size, hashes,  # type: ignore[arg-type]
                                self.point.root):
            self.problem("proof", f"{PROOFS}: leaf {seq} proof",
                         f"does not lead from leaf {seq}'s hash to the root of the checkpoint "
                         f"({self.point.size} leaves): the proof or the leaf was changed, or "
                         "the leaf is not in this ledger")

    def _leaf(self, item: object, where: str, proven: _Proven | None = None
              ) -> dict[str, Any] | None:
        """One leaf: canonical form, seq, hash and proof; its parsed body, or None."""
        if not isinstance(item, dict) or not isinstance(item.get("seq"), int) \
                or not isinstance(item.get("body"), str):
            self.problem("leaf_body", where, "is not an object with seq and body")
            return None
        seq, text = item["seq"], item["body"]
        try:
            raw = text.encode("ascii")
            body = strict_json(raw)
            canonical = isinstance(body, dict) and canonical_json(body) == raw
        except (ValueError, TypeError):
            body, canonical = None, False
        if not isinstance(body, dict) or not canonical:
            self.problem("leaf_body", where, "is not a leaf in canonical form (docs/formats.md)")
            return None
        for name, expected in (("format", LEAF_FORMAT), ("seq", seq)):
            if body.get(name) != expected:
                self.problem("leaf_body", f"{where}.{name}",
                             f"is {_describe(body.get(name))}, expected {_describe(expected)}")
        if "kind" in item and body.get("kind") != item["kind"]:
            self.problem("manifest", f"{where}.kind",
                         f"says {_describe(item['kind'])}, the leaf is {_describe(body['kind'])}")
        if seq not in self.checked_leaves:
            self.checked_leaves[seq] = True
            proven = proven or self.proven.get(seq)
            if proven is None:
                self.problem("proof_missing", f"{PROOFS}: leaf {seq}",
                             f"{PROOFS} has no inclusion proof for leaf {seq}")
            else:
                self._leaf_proof(seq, leaf_hash(raw), proven, where)
        return body

    # One recording ----------------------------------------------------------------

    def _recording(self, index: int, entry: object, keys: Mapping[str, PublicKey]) -> None:
        if not isinstance(entry, dict):
            self.problem("manifest", f"{MANIFEST}: recordings[{index}]", "is not an object")
            return
        rec_id = entry.get("id")
        where = f"{MANIFEST}: recording {_describe(rec_id)}"
        if not isinstance(rec_id, int) or isinstance(rec_id, bool):
            self.problem("manifest", f"{MANIFEST}: recordings[{index}].id", "is not a number")
            return
        record = entry.get("record")
        if not isinstance(record, dict):
            self.problem("manifest", f"{where}: record", "is not an object")
            return
        if sorted(record) != sorted(RECORD_FIELDS) or record.get("format") != RECORD_FORMAT:
            self.problem("manifest", f"{where}: record",
                         f"does not have exactly the fields of {RECORD_FORMAT}")
        self._signature(entry, record, keys, where)
        for field_name in ("size", "sha256"):
            if entry.get(field_name) != record.get(field_name):
                self.problem("manifest", f"{where}: {field_name}",
                             f"is {_describe(entry.get(field_name))}, the signed record says "
                             f"{_describe(record.get(field_name))}")
        name = entry.get("file")
        if name != record.get("vault_path"):
            self.problem("manifest", f"{where}: file",
                         f"is {_describe(name)}, the signed record's vault_path is "
                         f"{_describe(record.get('vault_path'))}")
        self._file(name, record.get("sha256"), record.get("size"), f"{where}: file")
        self._leaves_of(rec_id, entry, record, where)

    def _signature(self, entry: Mapping[str, Any], record: dict[str, Any],
                   keys: Mapping[str, PublicKey], where: str) -> None:
        signature, key_id = entry.get("signature"), entry.get("key_id")
        if not keys:
            self.problem("record_signature", f"{where}: signature",
                         "not checked: the package has no usable public key")
            return
        key = keys.get(key_id) if isinstance(key_id, str) else None
        if key is None:
            self.problem("record_signature", f"{where}: key_id",
                         f"signed by {_describe(key_id)}, which is not "
                         + ("the trusted key or a key it rotated from"
                            if self.report.trusted else "a key of this station in the "
                            "package's ledger leaves") + f" ({', '.join(keys)})")
            return
        try:
            message = canonical_json(record)
        except (TypeError, ValueError):
            message = b""
        if not isinstance(signature, str) or not key.verify(signature, message):
            self.problem("record_signature", f"{where}: signature",
                         f"the signed ingest record does not match its signature (checked with "
                         f"{key.key_id}): a field of the record was changed")

    def _leaves_of(self, rec_id: int, entry: Mapping[str, Any], record: Mapping[str, Any],
                   where: str) -> None:
        items = entry.get("leaves")
        if not isinstance(items, list) or not items:
            self.problem("manifest", f"{where}: leaves", "lists no ledger leaf")
            return
        last_image: tuple[int, dict[str, Any]] | None = None
        previous = -1
        for number, item in enumerate(items):
            at = f"{where}: leaves[{number}]"
            body = self._leaf(item, at)
            if body is None:
                continue
            seq = body["seq"]
            if seq <= previous:
                self.problem("manifest", at, f"leaf {seq} is not after leaf {previous}")
            previous = seq
            if not concerns(body, rec_id):
                self.problem("leaf_unrelated", at,
                             f"leaf {seq} changes neither recording {rec_id} nor an "
                             "explanation about it")
            image = records_row(body, rec_id)
            if number == 0 and image is None:
                self.problem("leaf_row", at, f"the first leaf ({seq}) does not record "
                             f"recording {rec_id}'s row")
            if image is not None:
                self._row_matches(image, entry, record, f"{where}: record", seq)
                last_image = (seq, image)
        if last_image is not None:
            seq, image = last_image
            catalog = entry.get("catalog")
            if not isinstance(catalog, dict):
                self.problem("manifest", f"{where}: catalog", "is not an object")
                return
            for name, column in CATALOG_COLUMNS.items():
                if catalog.get(name) != image.get(column):
                    self.problem("leaf_row", f"{where}: catalog.{name}",
                                 f"is {_describe(catalog.get(name))}, the newest leaf about it "
                                 f"({seq}) recorded {_describe(image.get(column))}")

    def _row_matches(self, image: Mapping[str, Any], entry: Mapping[str, Any],
                     record: Mapping[str, Any], where: str, seq: int) -> None:
        pairs = [(f"{where}.{name}", record.get(name), column)
                 for name, column in SIGNED_COLUMNS.items()]
        pairs += [(f"{where.removesuffix(': record')}: {name}", entry.get(name), name)
                  for name in ("signature", "key_id")]
        for subject, stated, column in pairs:
            if stated != image.get(column):
                self.problem("leaf_row", subject,
                             f"is {_describe(stated)}, ledger leaf {seq} recorded "
                             f"{_describe(image.get(column))}")

    # Files ------------------------------------------------------------------------

    def _file(self, name: object, sha256: object, size: object, subject: str) -> None:
        problem = name_problem(name)
        if problem is not None:
            self.problem("unsafe_name", subject, f"{_describe(name)} {problem}")
            return
        assert isinstance(name, str)
        self.expected.add(name)
        if name not in self.digests:
            self.digests[name] = self._hash(name)
        found = self.digests[name]
        if found is None:
            return
        digest, length = found
        if length != size:
            self.problem("file_size", name, f"is {length} bytes, the manifest says "
                         f"{_describe(size)}")
        if digest != sha256:
            self.problem("file_altered", name, f"has sha256 {digest}, the manifest says "
                         f"{_describe(sha256)}: the file was changed")

    def _hash(self, name: str) -> tuple[str, int] | None:
        path = self.folder.joinpath(*name.split("/"))
        if self.on_file is not None:
            self.on_file(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self.problem("file_missing", name, "the manifest lists it; the package has no "
                         "such file")
            return None
        except OSError as exc:
            kind = "not_a_file" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else (
                "file_unreadable")
            self.problem(kind, name, exc.strerror or str(exc))
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                self.problem("not_a_file", name, "is not a regular file")
                return None
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as stream:
                return hash_stream(stream, threaded=False)
        except OSError as exc:
            self.problem("file_unreadable", name, exc.strerror or str(exc))
            return None
        finally:
            os.close(fd)

    def _documents(self) -> None:
        documents = self.m.get("documents")
        if not isinstance(documents, list):
            self.problem("manifest", f"{MANIFEST}: documents", "is not a list")
            return
        listed = set()
        for number, doc in enumerate(documents):
            name = doc.get("file") if isinstance(doc, dict) else None
            if name not in DOCUMENTS or name in listed:
                self.problem("manifest", f"{MANIFEST}: documents[{number}]",
                             f"{_describe(name)} is not one of {', '.join(DOCUMENTS)}, or is "
                             "listed twice")
                continue
            assert isinstance(doc, dict) and isinstance(name, str)
            listed.add(name)
            self.expected.add(name)
            found = self.digests[name] = self._hash(name)
            if found is not None:
                if found[1] != doc.get("size"):
                    self.problem("file_size", name, f"is {found[1]} bytes, the manifest says "
                                 f"{_describe(doc.get('size'))}")
                if found[0] != doc.get("sha256"):
                    self.problem("file_altered", name, f"has sha256 {found[0]}, the manifest "
                                 f"says {_describe(doc.get('sha256'))}: the file was changed")
        for name in DOCUMENTS:
            if name not in listed:
                self.problem("manifest", f"{MANIFEST}: documents", f"does not list {name}")

    def _extra_files(self) -> None:
        for top, dirs, files in os.walk(self.folder):
            base = Path(top)
            links = [d for d in dirs if (base / d).is_symlink()]
            for name in sorted(files + links):
                rel = (base / name).relative_to(self.folder).as_posix()
                if rel not in self.expected:
                    self.problem("extra_file", rel, "is in the package folder but not in the "
                                 "manifest")

    # The export leaf --------------------------------------------------------------

    def _export_leaf(self) -> None:
        item = self.export_item
        where = f"{PROOFS}: export_leaf"
        if not isinstance(item, dict):
            if self.proofs_read:  # (else the problem with proofs.json is named already)
                self.problem("export_leaf", where, "is missing")
            return
        body = self._leaf(item, where, _Proven(item.get("leaf_hash"), item.get("proof")))
        if body is None:
            return
        seq = body["seq"]
        for name, expected in (("kind", "export"), ("subject", self.report.package_id),
                               ("station", self.m.get("station"))):
            if body.get(name) != expected:
                self.problem("export_leaf", f"{where}.{name}",
                             f"is {_describe(body.get(name))}, expected {_describe(expected)}")
        payload = body.get("payload")
        if not isinstance(payload, dict):
            self.problem("export_leaf", f"{where}.payload", "is not an object")
            return
        try:
            expected_payload = export_payload(self.m, "", self.manifest_sha256)
        except (KeyError, TypeError):
            expected_payload = {"manifest_sha256": self.manifest_sha256}
        for name in EXPORT_PAYLOAD_FIELDS:
            if name in expected_payload and payload.get(name) != expected_payload[name]:
                what = ("manifest.json was changed after the export was recorded"
                        if name == "manifest_sha256" else "the manifest says otherwise")
                self.problem("export_leaf", f"{where}.payload.{name}",
                             f"the ledger recorded {_describe(payload.get(name))}, the package "
                             f"has {_describe(expected_payload[name])}: {what}")
        later = [s for s in self.checked_leaves if s >= seq and s != seq]
        if later:
            self.problem("export_leaf", f"{where}.seq",
                         f"leaf {seq} is not after the recordings' leaves {sorted(later)}")


def _rotated(body: Mapping[str, Any], old: PublicKey, new: PublicKey) -> bool:
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


def verify_package(folder: Path, *, key: PublicKey | None = None,
                   vkey: NoteVerifier | None = None,
                   on_file: Callable[[str], None] | None = None) -> PackageReport:
    """Check the package in ``folder``; raise NotAPackage when there is none to check."""
    if not folder.is_dir():
        raise NotAPackage(f"{folder} is not a folder; give the package folder")
    path = folder / MANIFEST
    try:
        info = path.lstat()
    except OSError as exc:
        raise NotAPackage(f"{folder} has no {MANIFEST}: it is not an evidence package") \
            from exc
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_SMALL_FILE:
        raise NotAPackage(f"{path} is not a regular file of a sensible size")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotAPackage(f"{path} cannot be read: {exc.strerror or exc}") from exc
    try:
        manifest = strict_json(data)
    except ValueError as exc:
        raise NotAPackage(f"{path} is not valid JSON ({exc}): not an evidence package") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != PACKAGE_FORMAT:
        raise NotAPackage(f"{path} is not the manifest of an {PACKAGE_FORMAT} package")
    return _Checker(folder, manifest, data, key, vkey, on_file).run()

