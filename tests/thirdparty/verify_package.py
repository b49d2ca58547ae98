#!/usr/bin/env python3
"""Independent verifier for evidock evidence-export packages (``evidock-export/1``),
with signed ingest records of version 2 (``evidock-ingest-record/2``) or 1.

Written only from docs/export-format.md, docs/ledger-crypto.md and docs/formats.md,
without reading evidock's code. Standard library plus ``cryptography`` (Ed25519).

Usage: python verify_package.py PACKAGE_DIR [--key STATION.pub]
Exit: 0 good, 1 problems (one line each, ``kind: subject: detail``), 2 not a package
or unusable --key.

Ambiguities in the documents, and what this verifier assumes (see also the report):

A1  Canonical encoding (formats.md) is described in prose only. Assumed to be
    exactly Python ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
    ensure_ascii=True)``: keys sorted by code point, non-BMP characters as UTF-16
    surrogate pairs, ``/`` not escaped, control characters as ``\\u00XX`` except the
    short escapes ``\\n \\t \\r \\b \\f``, lowercase hex digits in ``\\uXXXX``.
A2  "Parse strictly" lists UTF-8, no duplicate keys, no NaN/Infinity. Assumed that
    nothing else (e.g. huge integers, lone surrogates in escapes) is rejected.
A3  Step 6.2 names two kinds [leaf_body, manifest] without saying which is for
    what: assumed ``leaf_body`` for format/seq, ``manifest`` for kind mismatch.
A4  Missing fixed files (proofs.json, checkpoint.txt, station.pub, station.vkey):
    the doc gives both ``file_missing`` ("a file the layout names") and the
    specific kinds. Both are reported here.
A5  Step 12 says every file must be one "of section 2 that the manifest names";
    the five fixed files are not named by the manifest. Assumed: the fixed files
    of section 2, the three documents and every ``recordings[].file`` are allowed.
A6  ``late``/``important`` in the ledger row: formats.md says "booleans are JSON
    booleans", so they are compared strictly (true is not 1); the doc does not say
    how a column is known to be boolean rather than integer.
A7  ``explanation`` rows: ``row.recording_id`` type (integer or text) unstated;
    both accepted.
A8  When the same ``seq`` occurs in several places (station_keys and a
    recording, or two recordings) the doc says "once per seq" but not that the
    bodies must be identical; this verifier requires identical bodies [manifest].
A9  proofs.json ``leaves`` entries with a seq not among the manifest's leaves:
    the doc says "one object per distinct seq" but names no check; reported
    as ``proofs``.
A10 ``--key`` PEM: key name for the checkpoint is the manifest ``origin`` (doc:
    "under the name origin"); if the manifest is unreadable there is no origin.
A11 A leaf that deletes the recording row (``row: null``) is not covered; treated as
    "writes the row" for relatedness but fails the column comparison [leaf_row].
A12 Step 2 checks only top-level types; nested types (collection, recordings[],
    documents[]) are checked here too, as [manifest].
A13 Symbolic links in a *parent* folder of a named file (e.g. ``files`` itself a
    link) are not mentioned; every path component is checked with lstat.
A14 ``catalog.state`` vs the ``files/``/``quarantine/`` prefix is described
    (section 2) but not in the checks; checked here as [manifest].
A15 Time values are only said to be "canonical UTC text"; the regex
    ``\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z`` is checked for created_at.
A16 Step 6.3/6.4: when ``leaf_hash`` differs from SHA-256(0x00 || body), the doc does
    not say whether the inclusion proof is then checked with the body's hash or with
    the stated ``leaf_hash``. This verifier uses the body's hash (so an edited body
    gives both [leaf_body] and [proof]); evidock itself reports only [leaf_body].
A17 vkey parsing: the doc gives ``name+id+base64`` but base64 may contain ``+``;
    split at the first two ``+`` (names cannot contain ``+``).
A18 Ingest-record signatures and rotation signatures: "standard base64 with
    padding" -- assumed canonical (re-encoding gives the same text) is required.
A19 Missing ``kind`` of the export leaf item in proofs.json, ``recordings[].id``
    duplicates, ``documents`` order and ``collection.timezone`` validity are not
    specified; not checked.
A20-A24 (record versions: an absent record_version column, canonical time text, the
    offset arithmetic, which times 8.1 checks, the version a record's format names)
    were questions about the first text of the version 2 rules; the document now
    states each of them (steps 8.1 and 8.7), as implemented here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FIXED_FILES = ("manifest.json", "proofs.json", "checkpoint.txt", "station.pub", "station.vkey")
DOC_FILES = ("description.txt", "description.html", "description.pdf")
RECORD_FIELDS_V1 = (
    "format",
    "station",
    "agency",
    "session",
    "device",
    "officer",
    "source_path",
    "size",
    "sha256",
    "recording_start",
    "recording_end",
    "ingested_at",
    "deadline",
    "vault_path",
)
RECORD_FIELDS_V2 = (*RECORD_FIELDS_V1, "clock_offset_s", "recorder_start", "recorder_end")
# record.format -> (version number, the exact field set of that version); section 4, step 8.1
RECORD_VERSIONS = {
    "evidock-ingest-record/1": (1, frozenset(RECORD_FIELDS_V1)),
    "evidock-ingest-record/2": (2, frozenset(RECORD_FIELDS_V2)),
}
# step 8.1: recorder_* = recording_* + clock_offset_s seconds
RECORDER_TIMES = (("recorder_start", "recording_start"), ("recorder_end", "recording_end"))
ROW_VS_RECORD = (
    ("station_id", "station"),
    ("agency", "agency"),
    ("session_id", "session"),
    ("device_no", "device"),
    ("officer_no", "officer"),
    ("source_path", "source_path"),
    ("size", "size"),
    ("sha256", "sha256"),
    ("recording_start", "recording_start"),
    ("recording_end", "recording_end"),
    ("ingested_at", "ingested_at"),
    ("deadline", "deadline"),
    ("vault_path", "vault_path"),
)
ROW_VS_CATALOG = (
    ("case_no", "case"),
    ("party", "party"),
    ("category", "category"),
    ("officer_name", "officer_name"),
    ("unit", "unit"),
    ("state", "state"),
    ("late", "late"),
    ("important", "important"),
    ("start_from", "start_from"),
)
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z", re.ASCII)
TIME_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
KEYID_RE = re.compile(r"ed25519:[0-9a-f]{16}\Z")
WHITESPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}
MAX_U64 = 2**64 - 1


class NotAPackage(Exception):
    pass


class StrictJSONError(ValueError):
    pass


# ---------------------------------------------------------------- encodings


def _no_dupes(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise StrictJSONError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_const(name):
    raise StrictJSONError(f"{name} not allowed")


def strict_loads(data: bytes):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StrictJSONError(f"not UTF-8: {e}") from None
    try:
        return json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_no_const)
    except StrictJSONError:
        raise
    except (ValueError, RecursionError) as e:
        raise StrictJSONError(str(e)) from None


def canonical(obj) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def format_time(d: datetime) -> str:
    """Canonical UTC time text, YYYY-MM-DDTHH:MM:SS.ffffffZ (four-digit year always)."""
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond:06d}Z"
    )


def parse_time(text: object) -> datetime | None:
    """The moment a canonical time text names, or None if it is not canonical time text
    (wrong shape, or no such date or time, e.g. February 30 or second 60; see A21)."""
    if not isinstance(text, str) or not TIME_RE.match(text):
        return None
    try:
        d = datetime.strptime(text, TIME_FMT)
    except ValueError:
        return None
    return d if format_time(d) == text else None


def shift_time(d: datetime, seconds: int) -> str | None:
    """Canonical text of d + seconds, or None if that is outside years 0001-9999 (A22)."""
    try:
        return format_time(d + timedelta(seconds=seconds))
    except (OverflowError, ValueError):
        return None


def b64_canonical(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def key_id_of(raw: bytes) -> str:
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def note_key_id(name: str, raw: bytes) -> bytes:
    return sha256(name.encode("utf-8") + b"\n\x01" + raw)[:4]


def load_pem_ed25519(data: bytes) -> bytes:
    """Raw 32-byte key from an Ed25519 SubjectPublicKeyInfo PEM; raises ValueError."""
    if not data.lstrip().startswith(b"-----BEGIN PUBLIC KEY-----"):
        raise ValueError("not a PUBLIC KEY PEM")
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_ok(raw: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


# ---------------------------------------------------------------- merkle


def verify_inclusion(h, m, n, proof, root) -> bool:
    try:
        if not all(isinstance(x, bytes) and len(x) == 32 for x in [h, root, *proof]):
            return False
        if not (isinstance(m, int) and isinstance(n, int)) or isinstance(m, bool):
            return False
        if m < 0 or n < 0 or n > MAX_U64 or m >= n:
            return False
        fn, sn, r = m, n - 1, h
        for p in proof:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = sha256(b"\x01" + p + r)
                if not fn & 1:
                    while not (fn & 1) and fn != 0:
                        fn >>= 1
                        sn >>= 1
            else:
                r = sha256(b"\x01" + r + p)
            fn >>= 1
            sn >>= 1
        return sn == 0 and r == root
    except Exception:  # never raise, like the documented API
        return False


# ---------------------------------------------------------------- notes


class NoteError(Exception):
    pass


def _check_key_name(name: str):
    if not name or "+" in name or any(c in WHITESPACE for c in name):
        raise NoteError(f"bad key name {name!r}")


def parse_vkey(text: str):
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError("vkey is not name+id+key")
    name, hexid, b64 = parts
    _check_key_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", hexid):
        raise NoteError("vkey id is not 8 lowercase hex digits")
    raw = b64_canonical(b64)
    if raw is None or len(raw) != 33 or raw[0] != 1:
        raise NoteError("vkey key is not canonical base64 of 0x01 + 32 bytes")
    if note_key_id(name, raw[1:]).hex() != hexid:
        raise NoteError("vkey id does not match name and key")
    return name, bytes.fromhex(hexid), raw[1:]


def parse_note(note: bytes):
    if len(note) > 1 << 20:
        raise NoteError("note larger than 1 MiB")
    try:
        s = note.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in s):
        raise NoteError("control character in note")
    if not s.endswith("\n"):
        raise NoteError("note does not end with LF")
    i = s.rfind("\n\n")
    if i < 0:
        raise NoteError("no blank line before signatures")
    text, sigblock = s[: i + 1], s[i + 2 :]
    lines = sigblock[:-1].split("\n") if sigblock else []
    if not lines or lines == [""]:
        raise NoteError("no signature line")
    if len(lines) > 100:
        raise NoteError("more than 100 signatures")
    sigs = []
    for line in lines:
        if not line.startswith("\u2014 "):
            raise NoteError(f"malformed signature line {line!r}")
        rest = line[2:].split(" ")
        if len(rest) != 2:
            raise NoteError(f"malformed signature line {line!r}")
        name, b64 = rest
        _check_key_name(name)
        raw = b64_canonical(b64)
        if raw is None or len(raw) < 5:
            raise NoteError("signature is not canonical base64 of at least 5 bytes")
        sigs.append((name, raw[:4], raw[4:]))
    return text.encode("utf-8"), sigs


def verify_note(note: bytes, verifiers):
    """verifiers: list of (name, id4, raw32). Returns text bytes; raises NoteError."""
    text, sigs = parse_note(note)
    signed = []
    for name, kid, sig in sigs:
        for vn, vid, vraw in verifiers:
            if vn == name and vid == kid:
                if not ed25519_ok(vraw, sig, text):
                    raise NoteError(f"bad signature by {name}")
                signed.append(name)
    if not signed:
        raise NoteError("not signed by the key checked with")
    return text


def parse_checkpoint(text: bytes):
    s = text.decode("utf-8")
    if any(ord(c) < 0x20 and c != "\n" for c in s) or not s.endswith("\n"):
        raise NoteError("bad checkpoint text")
    lines = s[:-1].split("\n")
    if len(lines) < 3 or any(not ln for ln in lines):
        raise NoteError("checkpoint needs at least three non-empty lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not re.fullmatch(r"0|[1-9][0-9]*", size_s) or int(size_s) > MAX_U64:
        raise NoteError(f"bad tree size {size_s!r}")
    root = b64_canonical(root_s)
    if root is None or len(root) != 32:
        raise NoteError("root is not canonical base64 of 32 bytes")
    return origin, int(size_s), root


# ---------------------------------------------------------------- verifier


@dataclass
class Verifier:
    pkg: str
    key_file: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def bad(self, kind, subject, detail):
        self.problems.append(f"{kind}: {subject}: {detail}")

    # -- helpers
    def path(self, rel):
        return os.path.join(self.pkg, *rel.split("/"))

    def read_regular(self, rel, missing_kind="file_missing"):
        """Bytes of a regular, non-link file at rel, or None (problem reported)."""
        parts = rel.split("/")
        cur = self.pkg
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                self.bad(missing_kind, rel, "not in the package")
                if missing_kind != "file_missing":
                    self.bad("file_missing", rel, "not in the package")
                return None
            except OSError as e:
                self.bad("file_unreadable", rel, str(e))
                return None
            last = i == len(parts) - 1
            if (
                stat.S_ISLNK(st.st_mode)
                or (last and not stat.S_ISREG(st.st_mode))
                or (not last and not stat.S_ISDIR(st.st_mode))
            ):
                self.bad("not_a_file", rel, "a link, folder or device, not a regular file")
                return None
        try:
            with open(cur, "rb") as f:
                return f.read()
        except OSError as e:
            self.bad("file_unreadable", rel, str(e))
            return None

    def file_digest(self, rel, size, digest):
        parts = rel.split("/")
        cur = self.pkg
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                self.bad("file_missing", rel, "not in the package")
                return
            except OSError as e:
                self.bad("file_unreadable", rel, str(e))
                return
            last = i == len(parts) - 1
            if (
                stat.S_ISLNK(st.st_mode)
                or (last and not stat.S_ISREG(st.st_mode))
                or (not last and not stat.S_ISDIR(st.st_mode))
            ):
                self.bad("not_a_file", rel, "a link, folder or device, not a regular file")
                return
        h, n = hashlib.sha256(), 0
        try:
            with open(cur, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    n += len(chunk)
        except OSError as e:
            self.bad("file_unreadable", rel, str(e))
            return
        if n != size:
            self.bad("file_size", rel, f"{n} bytes, expected {size}")
        if h.hexdigest() != digest:
            self.bad("file_altered", rel, f"sha256 {h.hexdigest()}, expected {digest}")

    # -- main
    def run(self) -> int:
        # Step 0: --key usable?
        trusted_raw = None
        if self.key_file is not None:
            try:
                with open(self.key_file, "rb") as f:
                    trusted_raw = load_pem_ed25519(f.read())
            except (OSError, ValueError) as e:
                raise NotAPackage(f"unusable --key {self.key_file}: {e}") from None

        # Step 1: is it a package?
        mpath = os.path.join(self.pkg, "manifest.json")
        if not os.path.isdir(self.pkg) or os.path.islink(mpath) or not os.path.isfile(mpath):
            raise NotAPackage("no regular file manifest.json")
        with open(mpath, "rb") as f:
            mbytes = f.read()
        try:
            man = strict_loads(mbytes)
        except StrictJSONError as e:
            raise NotAPackage(f"manifest.json does not parse: {e}") from None
        if not isinstance(man, dict) or man.get("format") != "evidock-export/1":
            raise NotAPackage("manifest.json is not evidock-export/1")

        self.check_manifest_types(man)
        origin = man.get("origin") if isinstance(man.get("origin"), str) else None
        package_id = man.get("package_id")

        # Step 3: keys
        pub_raw = None
        pub = self.read_regular("station.pub", "public_key")
        if pub is not None:
            try:
                pub_raw = load_pem_ed25519(pub)
            except ValueError as e:
                self.bad("public_key", "station.pub", f"not an Ed25519 PEM: {e}")
        if pub_raw is not None and key_id_of(pub_raw) != man.get("key_id"):
            self.bad(
                "public_key",
                "station.pub",
                f"key id {key_id_of(pub_raw)} is not manifest key_id {man.get('key_id')!r}",
            )
        vk = self.read_regular("station.vkey", "public_key")
        vkey = None
        if vk is not None:
            try:
                s = vk.decode("utf-8")
                if not s.endswith("\n") or "\n" in s[:-1]:
                    raise NoteError("not one line ending in LF")
                vkey = parse_vkey(s[:-1])
            except (UnicodeDecodeError, NoteError) as e:
                self.bad("public_key", "station.vkey", str(e))
        if vkey is not None:
            if vkey[0] != origin:
                self.bad("public_key", "station.vkey", f"name {vkey[0]!r} is not origin {origin!r}")
            if pub_raw is not None and vkey[2] != pub_raw:
                self.bad("public_key", "station.vkey", "key is not station.pub's")
        if trusted_raw is not None:
            self.notes.append("checked against the trusted key given with --key")
            check_raw = trusted_raw
            if pub_raw is None or trusted_raw != pub_raw:
                self.bad(
                    "untrusted_key",
                    "station.pub",
                    f"the package's key is not the trusted key {key_id_of(trusted_raw)}",
                )
            verifiers = [(origin, note_key_id(origin, trusted_raw), trusted_raw)] if origin else []
        else:
            self.notes.append(
                "checked only against the package's own key (station.pub): "
                "NOT independently trusted"
            )
            check_raw = pub_raw
            verifiers = (
                [vkey]
                if vkey is not None
                else (
                    [(origin, note_key_id(origin, pub_raw), pub_raw)] if origin and pub_raw else []
                )
            )

        # Step 4: checkpoint
        n = root = None
        cp = self.read_regular("checkpoint.txt", "checkpoint")
        if cp is not None:
            try:
                text = verify_note(cp, verifiers)
            except NoteError as e:
                self.bad("checkpoint", "checkpoint.txt", str(e))
                try:
                    text = parse_note(cp)[0]
                except NoteError:
                    text = None
            if text is not None:
                try:
                    cp_origin, n, root = parse_checkpoint(text)
                    if cp_origin != origin:
                        self.bad(
                            "checkpoint",
                            "checkpoint.txt",
                            f"origin {cp_origin!r} is not {origin!r}",
                        )
                except (NoteError, UnicodeDecodeError) as e:
                    self.bad("checkpoint", "checkpoint.txt", str(e))

        # Step 5: proofs.json
        proofs = {}
        export_leaf = None
        pb = self.read_regular("proofs.json", "proofs")
        if pb is not None:
            try:
                pj = strict_loads(pb)
                if not isinstance(pj, dict):
                    raise StrictJSONError("not an object")
            except StrictJSONError as e:
                self.bad("proofs", "proofs.json", f"does not parse: {e}")
                pj = {}
            if pb is not None and pj:
                if pj.get("format") != "evidock-export-proofs/1":
                    self.bad("proofs", "proofs.json: format", repr(pj.get("format")))
                if pj.get("package_id") != package_id:
                    self.bad("proofs", "proofs.json: package_id", "not the manifest's")
                want = {"origin": origin, "size": n, "root": root.hex() if root else None}
                if pj.get("checkpoint") != want or (
                    isinstance(pj.get("checkpoint"), dict)
                    and isinstance(pj["checkpoint"].get("size"), bool)
                ):
                    self.bad(
                        "proofs",
                        "proofs.json: checkpoint",
                        f"{pj.get('checkpoint')!r} is not checkpoint.txt's {want!r}",
                    )
                leaves = pj.get("leaves")
                if not isinstance(leaves, list):
                    self.bad("proofs", "proofs.json: leaves", "not an array")
                    leaves = []
                for i, e in enumerate(leaves):
                    if not isinstance(e, dict) or type(e.get("seq")) is not int:
                        self.bad(
                            "proofs", f"proofs.json: leaves[{i}]", "not an object with integer seq"
                        )
                        continue
                    if e["seq"] in proofs:
                        self.bad("proofs", f"proofs.json: leaves[{i}]", f"seq {e['seq']} repeated")
                        continue
                    proofs[e["seq"]] = e
                seqs = [e["seq"] for e in proofs.values()]
                if seqs != sorted(seqs):
                    self.bad("proofs", "proofs.json: leaves", "not in increasing seq")
                export_leaf = pj.get("export_leaf")
                if not isinstance(export_leaf, dict):
                    self.bad("export_leaf", "proofs.json: export_leaf", "missing or not an object")
                    export_leaf = None

        # Step 6: each leaf
        bodies = {}  # seq -> parsed body (only if canonical)
        seen_body_text = {}

        def check_leaf(item, where, proof_entry):
            if not isinstance(item, dict):
                self.bad("manifest", where, "leaf is not an object")
                return None
            seq, body = item.get("seq"), item.get("body")
            if type(seq) is not int or not isinstance(body, str):
                self.bad("manifest", where, "leaf needs integer seq and string body")
                return None
            if "kind" in item and not isinstance(item["kind"], str):
                self.bad("manifest", where, "kind is not a string")
            if seq in seen_body_text:
                if seen_body_text[seq] != body:
                    self.bad("manifest", where, f"leaf {seq} given with two different bodies")
                parsed = bodies.get(seq)
                if parsed is not None and "kind" in item and parsed.get("kind") != item["kind"]:
                    self.bad("manifest", where, f"kind {item['kind']!r} is not the body's")
                return parsed
            seen_body_text[seq] = body
            parsed = None
            try:
                bb = body.encode("ascii")
                obj = strict_loads(bb)
                if not isinstance(obj, dict):
                    raise StrictJSONError("not an object")
                if canonical(obj) != bb:
                    raise StrictJSONError("not canonical")
                parsed = obj
            except (UnicodeEncodeError, StrictJSONError, ValueError) as e:
                self.bad("leaf_body", f"{where} (leaf {seq})", str(e))
                bb = body.encode("utf-8")
            if parsed is not None:
                if parsed.get("format") != "evidock-ledger-leaf/1":
                    self.bad("leaf_body", f"leaf {seq}", "format is not evidock-ledger-leaf/1")
                if parsed.get("seq") != seq or type(parsed.get("seq")) is not int:
                    self.bad("leaf_body", f"leaf {seq}", f"body seq {parsed.get('seq')!r}")
                if "kind" in item and parsed.get("kind") != item["kind"]:
                    self.bad("manifest", where, f"kind {item['kind']!r} is not the body's")
                bodies[seq] = parsed
            h = sha256(b"\x00" + bb)
            if proof_entry is None:
                self.bad("proof_missing", "proofs.json", f"no proof for leaf {seq}")
                return parsed
            if proof_entry.get("leaf_hash") != h.hex():
                self.bad("leaf_body", f"leaf {seq}", "body does not hash to the proven leaf_hash")
            pr = proof_entry.get("proof")
            ok = isinstance(pr, list) and all(isinstance(x, str) and HEX64.match(x) for x in pr)
            if not ok:
                self.bad("proof", f"proofs.json: leaf {seq} proof", "not a list of 64-digit hex")
            elif n is None or root is None:
                self.bad(
                    "proof", f"proofs.json: leaf {seq} proof", "no checkpoint to check against"
                )
            elif not verify_inclusion(h, seq, n, [bytes.fromhex(x) for x in pr], root):
                self.bad(
                    "proof",
                    f"proofs.json: leaf {seq} proof",
                    f"does not lead to the checkpoint root (size {n})",
                )
            return parsed

        manifest_seqs = set()
        sk = man.get("station_keys") if isinstance(man.get("station_keys"), list) else []
        recs = man.get("recordings") if isinstance(man.get("recordings"), list) else []
        sk_parsed = []
        for j, item in enumerate(sk):
            seq = item.get("seq") if isinstance(item, dict) else None
            if type(seq) is int:
                manifest_seqs.add(seq)
            sk_parsed.append(
                (item, check_leaf(item, f"manifest.json: station_keys[{j}]", proofs.get(seq)))
            )
        rec_parsed = []
        for r in recs:
            lst = []
            rid = r.get("id") if isinstance(r, dict) else None
            lvs = (
                r.get("leaves") if isinstance(r, dict) and isinstance(r.get("leaves"), list) else []
            )
            for j, item in enumerate(lvs):
                seq = item.get("seq") if isinstance(item, dict) else None
                if type(seq) is int:
                    manifest_seqs.add(seq)
                lst.append(
                    (
                        item,
                        check_leaf(
                            item, f"manifest.json: recording {rid}: leaves[{j}]", proofs.get(seq)
                        ),
                    )
                )
            rec_parsed.append(lst)
        for seq in proofs:
            if seq not in manifest_seqs:
                self.bad(
                    "proofs",
                    "proofs.json",
                    f"proof for leaf {seq}, which the manifest does not list",
                )
        exp = None
        if export_leaf is not None:
            eseq = export_leaf.get("seq")
            if type(eseq) is int and (eseq in seen_body_text):
                self.bad(
                    "export_leaf", "proofs.json: export_leaf", f"seq {eseq} is also a manifest leaf"
                )
            exp = check_leaf(
                {k: export_leaf.get(k) for k in ("seq", "body")},
                "proofs.json: export_leaf",
                export_leaf,
            )

        # Step 7: station keys
        signing = self.check_station_keys(man, sk_parsed, pub_raw, check_raw)

        # Step 8: recordings
        for i, r in enumerate(recs):
            self.check_recording(i, r, rec_parsed[i], signing)

        # Step 9
        col = man.get("collection") if isinstance(man.get("collection"), dict) else {}
        ids = [r.get("id") if isinstance(r, dict) else None for r in recs]
        if col.get("recording_ids") != ids:
            self.bad("manifest", "manifest.json: collection.recording_ids", "not recordings[].id")

        # Step 10: documents
        docs = man.get("documents") if isinstance(man.get("documents"), list) else []
        names = [d.get("file") if isinstance(d, dict) else None for d in docs]
        if (
            sorted(n_ for n_ in names if isinstance(n_, str)) != sorted(DOC_FILES)
            or len(names) != 3
        ):
            self.bad("manifest", "manifest.json: documents", f"lists {names!r}")
        for d in docs:
            if isinstance(d, dict) and d.get("file") in DOC_FILES:
                if type(d.get("size")) is not int or not isinstance(d.get("sha256"), str):
                    self.bad(
                        "manifest", f"manifest.json: documents {d.get('file')}", "bad size/sha256"
                    )
                    continue
                self.file_digest(d["file"], d["size"], d["sha256"])
        for dn in DOC_FILES:
            if dn not in names and not os.path.lexists(self.path(dn)):
                self.bad("file_missing", dn, "not in the package")

        # Step 11: export leaf
        self.check_export_leaf(man, mbytes, exp, export_leaf, seen_body_text)

        # Step 12: nothing else
        allowed = set(FIXED_FILES) | set(DOC_FILES)
        for r in recs:
            if isinstance(r, dict) and isinstance(r.get("file"), str):
                allowed.add(r["file"])
        for dirpath, dirnames, filenames in os.walk(self.pkg, followlinks=False):
            reld = os.path.relpath(dirpath, self.pkg)
            for name in filenames + [
                d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
            ]:
                rel = name if reld == "." else reld.replace(os.sep, "/") + "/" + name
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    if rel not in allowed:
                        self.bad("extra_file", rel, "a symbolic link not named by the manifest")
                elif rel not in allowed:
                    self.bad("extra_file", rel, "not named by the manifest")
        return 1 if self.problems else 0

    # ------------------------------------------------------------ pieces
    def check_manifest_types(self, man):
        def t(name, ok):
            if not ok:
                self.bad(
                    "manifest",
                    f"manifest.json: {name}",
                    f"missing or wrong type: {man.get(name)!r}"[:200],
                )

        for k in ("format", "package_id", "station", "agency", "origin", "key_id", "created_at"):
            t(k, isinstance(man.get(k), str))
        for k in ("collection",):
            t(k, isinstance(man.get(k), dict))
        for k in ("recordings", "station_keys", "documents"):
            t(k, isinstance(man.get(k), list))
        if isinstance(man.get("package_id"), str) and not UUID4.match(man["package_id"]):
            self.bad("manifest", "manifest.json: package_id", "not a lowercase UUID v4")
        if isinstance(man.get("key_id"), str) and not KEYID_RE.match(man["key_id"]):
            self.bad("manifest", "manifest.json: key_id", "not ed25519: + 16 hex")
        if isinstance(man.get("created_at"), str) and not TIME_RE.match(man["created_at"]):
            self.bad("manifest", "manifest.json: created_at", "not canonical UTC time")
        if isinstance(man.get("station"), str) and man.get("origin") != "evidock/" + man["station"]:
            self.bad("manifest", "manifest.json: origin", "not evidock/<station>")
        col = man.get("collection")
        if isinstance(col, dict):
            for k in ("collector", "place", "reason", "approved_by"):
                v = col.get(k)
                if (
                    not isinstance(v, str)
                    or not (1 <= len(v) <= 2000)
                    or v != v.strip()
                    or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in v)
                ):
                    self.bad("manifest", f"manifest.json: collection.{k}", "not a 1-2000 char line")
            if not (col.get("case") is None or isinstance(col.get("case"), str)):
                self.bad("manifest", "manifest.json: collection.case", "not string or null")
            if not isinstance(col.get("timezone"), str):
                self.bad("manifest", "manifest.json: collection.timezone", "not a string")
            ids = col.get("recording_ids")
            if not isinstance(ids, list) or any(type(x) is not int for x in ids):
                self.bad("manifest", "manifest.json: collection.recording_ids", "not integers")
        if isinstance(man.get("recordings"), list):
            for i, r in enumerate(man["recordings"]):
                if not isinstance(r, dict):
                    self.bad("manifest", f"manifest.json: recordings[{i}]", "not an object")
                    continue
                for k, ty in (
                    ("id", int),
                    ("record", dict),
                    ("signature", str),
                    ("key_id", str),
                    ("file", str),
                    ("size", int),
                    ("sha256", str),
                    ("catalog", dict),
                    ("leaves", list),
                ):
                    v = r.get(k)
                    if not isinstance(v, ty) or (ty is int and isinstance(v, bool)):
                        self.bad(
                            "manifest",
                            f"manifest.json: recording {r.get('id')}: {k}",
                            "missing or wrong type",
                        )

    def check_station_keys(self, man, sk_parsed, pub_raw, check_raw):
        station = man.get("station")
        pinned = []  # list of raw keys
        prev_seq = -1
        if not sk_parsed:
            self.bad("key_chain", "manifest.json: station_keys", "empty")
        for item, body in sk_parsed:
            seq = item.get("seq") if isinstance(item, dict) else None
            if type(seq) is int:
                if seq <= prev_seq:
                    self.bad("manifest", "manifest.json: station_keys", "seq not increasing")
                prev_seq = seq
            if body is None:
                continue
            row = None
            for ch in body.get("changes") or []:
                if (
                    isinstance(ch, dict)
                    and ch.get("table") == "station"
                    and ch.get("key") == station
                    and isinstance(ch.get("row"), dict)
                ):
                    row = ch["row"]
            if row is None:
                self.bad(
                    "leaf_unrelated",
                    f"manifest.json: station_keys leaf {seq}",
                    "does not write the station's row",
                )
                continue
            try:
                raw = load_pem_ed25519(str(row.get("public_key_pem")).encode("ascii"))
            except (ValueError, UnicodeEncodeError) as e:
                self.bad("key_chain", f"leaf {seq}", f"public_key_pem is not Ed25519: {e}")
                continue
            if key_id_of(raw) != row.get("key_id"):
                self.bad("key_chain", f"leaf {seq}", "key_id is not the key's id")
                continue
            if not pinned:
                pinned.append(raw)
                continue
            if raw == pinned[-1]:
                continue
            ok = False
            payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
            if body.get("kind") == "key-rotate" and isinstance(payload.get("statement"), str):
                try:
                    stb = payload["statement"].encode("ascii")
                    st = strict_loads(stb)
                    osig = b64_canonical(payload.get("old_signature") or "")
                    nsig = b64_canonical(payload.get("new_signature") or "")
                    ok = (
                        isinstance(st, dict)
                        and st.get("format") == "evidock-key-rotation/1"
                        and st.get("old_key_id") == key_id_of(pinned[-1])
                        and st.get("new_key_id") == key_id_of(raw)
                        and osig is not None
                        and nsig is not None
                        and ed25519_ok(pinned[-1], osig, stb)
                        and ed25519_ok(raw, nsig, stb)
                    )
                except (UnicodeEncodeError, StrictJSONError, TypeError):
                    ok = False
            if ok:
                pinned.append(raw)
            else:
                self.bad("key_chain", f"leaf {seq}", "key changed without a valid rotation")
        if pinned and pub_raw is not None and pinned[-1] != pub_raw:
            self.bad(
                "key_chain", "manifest.json: station_keys", "last pinned key is not station.pub's"
            )
        if pinned and check_raw is not None and pinned[-1] == check_raw:
            return {key_id_of(k): k for k in pinned}
        return {key_id_of(check_raw): check_raw} if check_raw is not None else {}

    def check_recording(self, i, r, parsed_leaves, signing):
        if not isinstance(r, dict):
            return
        rid = r.get("id")
        subj = f"manifest.json: recording {rid}"
        rec = r.get("record") if isinstance(r.get("record"), dict) else {}
        # 8.1 record version, its exact fields, and (version 2) the recorder times
        version = self.check_record_fields(subj, rec)
        # 8.2 signature
        sig = b64_canonical(r.get("signature")) if isinstance(r.get("signature"), str) else None
        kid = r.get("key_id")
        if kid not in signing:
            self.bad("record_signature", f"{subj}: key_id", f"{kid!r} is not a station signing key")
        else:
            try:
                msg = canonical(rec)
            except (TypeError, ValueError):
                msg = None
            if (
                sig is None
                or len(sig) != 64
                or msg is None
                or not ed25519_ok(signing[kid], sig, msg)
            ):
                self.bad("record_signature", f"{subj}: record", "signature does not verify")
        # 8.3
        for k in ("size", "sha256"):
            if r.get(k) != rec.get(k) or type(r.get(k)) is not type(rec.get(k)):
                self.bad("manifest", f"{subj}: {k}", "differs from record")
        if r.get("file") != rec.get("vault_path"):
            self.bad("manifest", f"{subj}: file", "differs from record.vault_path")
        # 8.4
        f = r.get("file")
        safe = isinstance(f, str)
        if safe:
            parts = f.split("/")
            safe = (
                len(parts) >= 2
                and parts[0] in ("files", "quarantine")
                and "\\" not in f
                and "\0" not in f
                and all(p not in ("", ".", "..") for p in parts)
            )
        if not safe:
            self.bad("unsafe_name", f"{subj}: file", repr(f))
        else:
            cat = r.get("catalog") if isinstance(r.get("catalog"), dict) else {}
            want_top = "quarantine" if cat.get("state") == "quarantined" else "files"
            if f.split("/")[0] != want_top:
                self.bad(
                    "manifest",
                    f"{subj}: file",
                    f"state {cat.get('state')!r} but under {f.split('/')[0]}/",
                )
            # 8.5
            if type(rec.get("size")) is int and isinstance(rec.get("sha256"), str):
                self.file_digest(f, rec["size"], rec["sha256"])
        # 8.6
        if not parsed_leaves:
            self.bad("manifest", f"{subj}: leaves", "empty")
        skey = str(rid)
        prev = -1
        newest_row = None
        for j, (item, body) in enumerate(parsed_leaves):
            seq = item.get("seq") if isinstance(item, dict) else None
            if type(seq) is int:
                if seq <= prev:
                    self.bad("manifest", f"{subj}: leaves", "seq not increasing")
                prev = seq
            if body is None:
                continue
            writes, row, expl = False, None, False
            for ch in body.get("changes") or []:
                if not isinstance(ch, dict):
                    continue
                if ch.get("table") == "recording" and ch.get("key") == skey:
                    writes, row = True, ch.get("row")
                if ch.get("table") == "explanation" and isinstance(ch.get("row"), dict):
                    rr = ch["row"].get("recording_id")
                    if rr == rid or (isinstance(rr, str) and rr == skey):
                        expl = True
            if not writes and not expl:
                self.bad("leaf_unrelated", f"{subj}: leaf {seq}", "does not concern the recording")
            if j == 0 and not writes:
                self.bad(
                    "leaf_row", f"{subj}: leaf {seq}", "first leaf does not write the recording row"
                )
            if writes:
                if not isinstance(row, dict):
                    self.bad("leaf_row", f"{subj}: leaf {seq}", "row deleted or not an object")
                    continue
                for col, rk in ROW_VS_RECORD:
                    if not _same(row.get(col), rec.get(rk)):
                        self.bad(
                            "leaf_row",
                            f"{subj}: record.{rk}",
                            f"ledger leaf {seq} has {row.get(col)!r}",
                        )
                if version is not None:
                    # A20: the text gives no default for an absent record_version column
                    rv = row.get("record_version", _ABSENT)
                    if not _same(rv, version):
                        self.bad(
                            "leaf_row",
                            f"{subj}: record.format",
                            f"version {version} record, but ledger leaf {seq} has record_version "
                            + ("absent" if rv is _ABSENT else repr(rv)),
                        )
                # version 2: an absent clock_offset_s column counts as null (step 8.7)
                if version == 2 and not _same(row.get("clock_offset_s"), rec.get("clock_offset_s")):
                    self.bad(
                        "leaf_row",
                        f"{subj}: record.clock_offset_s",
                        f"ledger leaf {seq} has {row.get('clock_offset_s')!r}",
                    )
                for col, ek in (("signature", "signature"), ("key_id", "key_id")):
                    if not _same(row.get(col), r.get(ek)):
                        self.bad(
                            "leaf_row", f"{subj}: {ek}", f"ledger leaf {seq} has {row.get(col)!r}"
                        )
                newest_row = (seq, row)
        if newest_row is not None:
            seq, row = newest_row
            cat = r.get("catalog") if isinstance(r.get("catalog"), dict) else {}
            for col, ck in ROW_VS_CATALOG:
                if ck not in cat or not _same(row.get(col), cat.get(ck)):
                    self.bad(
                        "leaf_row",
                        f"{subj}: catalog.{ck}",
                        f"ledger leaf {seq} has {row.get(col)!r}",
                    )

    def check_record_fields(self, subj, rec):
        """Step 8.1. Returns the record's version (1 or 2), or None if its format is
        neither; every problem is reported as [manifest]."""
        fmt = rec.get("format")
        known = RECORD_VERSIONS.get(fmt) if isinstance(fmt, str) else None
        if known is None:
            self.bad(
                "manifest",
                f"{subj}: record.format",
                f"{fmt!r} is not evidock-ingest-record/2 or evidock-ingest-record/1",
            )
            return None
        version, fields = known
        if set(rec) != fields:
            missing = sorted(fields - set(rec))
            extra = sorted(set(rec) - fields)
            self.bad(
                "manifest",
                f"{subj}: record",
                f"not exactly the fields of a version {version} ingest record"
                f" (missing {missing}, extra {extra})",
            )
        if version != 2:
            return version
        offset = rec.get("clock_offset_s")
        offset_ok = offset is None or (isinstance(offset, int) and not isinstance(offset, bool))
        if not offset_ok:
            self.bad(
                "manifest",
                f"{subj}: record.clock_offset_s",
                f"{offset!r} is not null or an integer",
            )
        for rk, sk in RECORDER_TIMES:
            station_t = parse_time(rec.get(sk))
            if station_t is None:
                self.bad(
                    "manifest",
                    f"{subj}: record.{sk}",
                    f"{rec.get(sk)!r} is not canonical time text",
                )
            if parse_time(rec.get(rk)) is None:
                self.bad(
                    "manifest",
                    f"{subj}: record.{rk}",
                    f"{rec.get(rk)!r} is not canonical time text",
                )
                continue
            if station_t is None or not offset_ok:
                continue
            want = shift_time(station_t, offset or 0)
            if want is None:
                self.bad(
                    "manifest",
                    f"{subj}: record.{rk}",
                    f"{sk} + clock_offset_s ({offset!r}) is not a representable time",
                )
            elif rec.get(rk) != want:
                self.bad(
                    "manifest",
                    f"{subj}: record.{rk}",
                    f"{rec.get(rk)!r} is not {sk} + clock_offset_s ({offset!r} s) = {want!r}",
                )
        return version

    def check_export_leaf(self, man, mbytes, exp, export_leaf, seen):
        if exp is None:
            if export_leaf is not None:
                self.bad("export_leaf", "proofs.json: export_leaf", "body unreadable")
            return
        subj = "proofs.json: export_leaf"
        if exp.get("kind") != "export":
            self.bad("export_leaf", subj, f"kind {exp.get('kind')!r}")
        if exp.get("subject") != man.get("package_id"):
            self.bad("export_leaf", subj, "subject is not the package_id")
        if exp.get("station") != man.get("station"):
            self.bad("export_leaf", subj, "station is not the manifest's")
        p = exp.get("payload") if isinstance(exp.get("payload"), dict) else {}
        col = man.get("collection") if isinstance(man.get("collection"), dict) else {}
        recs = man.get("recordings") if isinstance(man.get("recordings"), list) else []
        want = {
            "package_id": man.get("package_id"),
            "recordings": [r.get("id") if isinstance(r, dict) else None for r in recs],
            "case": col.get("case"),
            "collector": col.get("collector"),
            "place": col.get("place"),
            "reason": col.get("reason"),
            "approved_by": col.get("approved_by"),
            "created_at": man.get("created_at"),
        }
        for k, v in want.items():
            if k not in p or not _same(p.get(k), v):
                self.bad(
                    "export_leaf",
                    f"{subj}: payload.{k}",
                    f"ledger has {p.get(k)!r}, manifest {v!r}",
                )
        if p.get("manifest_sha256") != hashlib.sha256(mbytes).hexdigest():
            self.bad(
                "export_leaf",
                f"{subj}: payload.manifest_sha256",
                "not the SHA-256 of manifest.json: the manifest was changed after the export",
            )
        eseq = exp.get("seq")
        if type(eseq) is int and any(s >= eseq for s in seen if s != eseq):
            self.bad("export_leaf", subj, "seq not greater than every other leaf's")


_ABSENT = object()


def _same(a, b):
    """Equal values of the same JSON type (so true is not 1; see A6)."""
    return type(a) is type(b) and a == b


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    key = None
    if "--key" in argv:
        i = argv.index("--key")
        if i + 1 >= len(argv):
            print("usage: verify_package.py PACKAGE_DIR [--key STATION.pub]", file=sys.stderr)
            return 2
        key = argv[i + 1]
        del argv[i : i + 2]
    if len(argv) != 1:
        print("usage: verify_package.py PACKAGE_DIR [--key STATION.pub]", file=sys.stderr)
        return 2
    v = Verifier(argv[0], key)
    try:
        rc = v.run()
    except NotAPackage as e:
        print(f"not a package: {e}")
        return 2
    for p in v.problems:
        print(p)
    for note in v.notes:
        print(f"note: {note}", file=sys.stderr)
    print("OK" if rc == 0 else f"{len(v.problems)} problem(s)", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
