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

import hashlib
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.package import (
    CATALOG_COLUMNS,
    CHECKPOINT,
    EXPORT_PAYLOAD_FIELDS,
    MANIFEST,
    PACKAGE_FORMAT,
    PROOFS,
    PROOFS_FORMAT,
    PUBLIC_KEY,
    RECORD_SHAPES,
    SIGNED_COLUMNS,
    SIGNED_COLUMNS_V2,
    concerns,
    export_payload,
    records_row,
    station_row,
    strict_json,
)
from ingest.package_files import MAX_SMALL_FILE, FileChecks, describe
from ingest.package_trust import resolve_keys, rotated
from storage.canonical import canonical_json, utc_text
from storage.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
)
from storage.errors import StationKeyError, UsageError
from storage.keys import PublicKey
from storage.ledger import LEAF_FORMAT
from storage.merkle import HASH_SIZE, leaf_hash, verify_inclusion


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
        self.report = PackageReport(str(folder))
        self.files = FileChecks(folder, self.problem, on_file)
        self.checked_leaves: dict[int, bool] = {}
        self.point: Checkpoint | None = None
        self.proven: dict[int, _Proven] = {}
        self.proofs_read = False
        self.export_item: object = None

    def problem(self, kind: str, subject: str, detail: str) -> None:
        self.report.problems.append(Finding(kind, subject, detail))

    def run(self) -> PackageReport:
        self.report.package_id = self._text(self.m, "package_id", MANIFEST)
        trust = resolve_keys(self.m, self.files, self.problem, self.given_key, self.given_vkey)
        self.report.key_id, self.report.trusted = trust.key_id, trust.independent
        self.report.trust = trust.text
        self._checkpoint(trust.verifier)
        self._proofs()
        signing = self._signing_keys(trust.package_key, trust.trusted)
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
        self.files.documents(self.m)
        self._export_leaf()
        self.files.extra_files()
        self.report.files = len(self.files.digests)
        self.report.leaves = len(self.checked_leaves)
        return self.report

    # Small helpers ----------------------------------------------------------------

    def _text(self, obj: Mapping[str, Any], name: str, where: str) -> str | None:
        value = obj.get(name)
        if not isinstance(value, str) or not value:
            self.problem("manifest", f"{where}: {name}",
                         f"is missing or not a non-empty text (found {describe(value)})")
            return None
        return value

    # Keys and trust ---------------------------------------------------------------

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
                             f"station {describe(station)}'s row")
                continue
            try:
                key = PublicKey.from_pem(str(row.get("public_key_pem")))
            except StationKeyError as exc:
                self.problem("key_chain", at, f"leaf {body['seq']}: {exc}")
                continue
            if row.get("key_id") != key.key_id:
                self.problem("key_chain", at, f"leaf {body['seq']} names key "
                             f"{describe(row.get('key_id'))} for the public key {key.key_id}")
            elif pinned is None or pinned.key_id == key.key_id or rotated(body, pinned, key):
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
        note = self.files.read_small(CHECKPOINT)
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
        raw = self.files.read_small(PROOFS)
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
                         f"{describe(proofs.get('package_id'))} is not the manifest's "
                         f"{describe(self.report.package_id)}")
        copy = proofs.get("checkpoint")
        if self.point is not None and copy != self.report.checkpoint:
            self.problem("proofs", f"{PROOFS}: checkpoint",
                         f"{describe(copy)} differs from {CHECKPOINT} "
                         f"({describe(self.report.checkpoint)})")
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
                         f"hash {describe(proven.leaf_hash)}: the body was edited")
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
                             f"is {describe(body.get(name))}, expected {describe(expected)}")
        if "kind" in item and body.get("kind") != item["kind"]:
            self.problem("manifest", f"{where}.kind",
                         f"says {describe(item['kind'])}, the leaf is {describe(body['kind'])}")
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
        where = f"{MANIFEST}: recording {describe(rec_id)}"
        if not isinstance(rec_id, int) or isinstance(rec_id, bool):
            self.problem("manifest", f"{MANIFEST}: recordings[{index}].id", "is not a number")
            return
        record = entry.get("record")
        if not isinstance(record, dict):
            self.problem("manifest", f"{where}: record", "is not an object")
            return
        shape = RECORD_SHAPES.get(record.get("format"))  # type: ignore[arg-type]
        if shape is None or set(record) != shape[1]:
            self.problem("manifest", f"{where}: record",
                         f"format {describe(record.get('format'))}: not a record format, or "
                         "not exactly its fields")
        version = shape[0] if shape is not None else None
        if version == 2:
            self._recorder_times(record, where)
        self._signature(entry, record, keys, where)
        for field_name in ("size", "sha256"):
            if entry.get(field_name) != record.get(field_name):
                self.problem("manifest", f"{where}: {field_name}",
                             f"is {describe(entry.get(field_name))}, the signed record says "
                             f"{describe(record.get(field_name))}")
        name = entry.get("file")
        if name != record.get("vault_path"):
            self.problem("manifest", f"{where}: file",
                         f"is {describe(name)}, the signed record's vault_path is "
                         f"{describe(record.get('vault_path'))}")
        self.files.file(name, record.get("sha256"), record.get("size"), f"{where}: file")
        self._leaves_of(rec_id, entry, record, version, where)

    def _recorder_times(self, record: Mapping[str, Any], where: str) -> None:
        """Version 2: the recorder's times are the corrected ones plus the offset."""
        offset = record.get("clock_offset_s")
        if offset is not None and (not isinstance(offset, int) or isinstance(offset, bool)):
            self.problem("manifest", f"{where}: record.clock_offset_s",
                         f"is {describe(offset)}, not a whole number of seconds or null")
            return
        for mine, theirs in (("recording_start", "recorder_start"),
                             ("recording_end", "recorder_end")):
            expected = _plus(record.get(mine), offset or 0)
            if expected is None or record.get(theirs) != expected:
                self.problem("manifest", f"{where}: record.{theirs}",
                             f"is {describe(record.get(theirs))}, not {mine} "
                             f"{describe(record.get(mine))} plus the clock offset "
                             f"({describe(offset)} s)")

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
                         f"signed by {describe(key_id)}, which is not "
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
                   version: int | None, where: str) -> None:
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
                self._row_matches(image, entry, record, version, f"{where}: record", seq)
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
                                 f"is {describe(catalog.get(name))}, the newest leaf about it "
                                 f"({seq}) recorded {describe(image.get(column))}")

    def _row_matches(self, image: Mapping[str, Any], entry: Mapping[str, Any],
                     record: Mapping[str, Any], version: int | None, where: str,
                     seq: int) -> None:
        """Step 8.7; the version is the record's ``format``'s (None: no record format)."""
        pairs = [(f"{where}.{name}", record.get(name), column)
                 for name, column in (SIGNED_COLUMNS_V2 if version == 2 else
                                      SIGNED_COLUMNS).items()]
        if version is not None:
            pairs.append((f"{where}.format", version, "record_version"))
        pairs += [(f"{where.removesuffix(': record')}: {name}", entry.get(name), name)
                  for name in ("signature", "key_id")]
        for subject, stated, column in pairs:  # JSON values: true is not 1
            found = image.get(column)
            if type(stated) is not type(found) or stated != found:
                self.problem("leaf_row", subject,
                             f"is {describe(stated)}, ledger leaf {seq} recorded "
                             f"{describe(image.get(column))}")

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
                             f"is {describe(body.get(name))}, expected {describe(expected)}")
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
                             f"the ledger recorded {describe(payload.get(name))}, the package "
                             f"has {describe(expected_payload[name])}: {what}")
        later = [s for s in self.checked_leaves if s >= seq and s != seq]
        if later:
            self.problem("export_leaf", f"{where}.seq",
                         f"leaf {seq} is not after the recordings' leaves {sorted(later)}")


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
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SMALL_FILE:
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


CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def _plus(text: object, seconds: int) -> str | None:
    """A canonical UTC time ``seconds`` later, as canonical text; None if not one."""
    if not isinstance(text, str) or not CANONICAL_TIME.fullmatch(text):
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        return utc_text(moment + timedelta(seconds=seconds))
    except (ValueError, OverflowError):
        return None
