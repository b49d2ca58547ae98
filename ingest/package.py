"""The evidence export package: its layout, its manifest, and the ledger leaves it carries.

Pure values and functions shared by the exporter (agent/export.py) and the checker
(ingest/package_verify.py). The format is documented byte by byte in
docs/export-format.md; what the ingest record and a ledger leaf are is in
docs/formats.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ingest.record import RECORD_FORMAT, RECORD_FORMAT_V1, V2_FIELDS, IngestRecord
from storage.models import Recording

PACKAGE_FORMAT = "evidock-export/1"
PROOFS_FORMAT = "evidock-export-proofs/1"

MANIFEST = "manifest.json"
PROOFS = "proofs.json"
CHECKPOINT = "checkpoint.txt"
PUBLIC_KEY = "station.pub"
VKEY = "station.vkey"
DESCRIPTION_TXT = "description.txt"
DESCRIPTION_HTML = "description.html"
DESCRIPTION_PDF = "description.pdf"
DOCUMENTS = (DESCRIPTION_TXT, DESCRIPTION_HTML, DESCRIPTION_PDF)
#: Files every package has besides the recordings (the documents are listed in the manifest).
FIXED_FILES = (MANIFEST, PROOFS, CHECKPOINT, PUBLIC_KEY, VKEY)
#: The first component of every recording's name inside a package (as in the vault).
FILE_AREAS = ("files", "quarantine")

#: Signed record field -> the recording column (and ledger row key) that holds it.
SIGNED_COLUMNS: dict[str, str] = {
    "station": "station_id", "agency": "agency", "session": "session_id",
    "device": "device_no", "officer": "officer_no", "source_path": "source_path",
    "size": "size", "sha256": "sha256", "recording_start": "recording_start",
    "recording_end": "recording_end", "ingested_at": "ingested_at", "deadline": "deadline",
    "vault_path": "vault_path",
}
#: A version 2 record also holds the offset (a column) and the recorder's own times,
#: which are the corrected times plus the offset (no column of their own).
SIGNED_COLUMNS_V2: dict[str, str] = {**SIGNED_COLUMNS, "clock_offset_s": "clock_offset_s"}
#: format -> (its record_version, the fields its record has, exactly)
RECORD_SHAPES: dict[str, tuple[int, frozenset[str]]] = {
    RECORD_FORMAT_V1: (1, frozenset(("format", *SIGNED_COLUMNS))),
    RECORD_FORMAT: (2, frozenset(("format", *SIGNED_COLUMNS_V2, *V2_FIELDS))),
}

#: Catalog data about a recording that is not signed (R6 keys added later, state, flags):
#: manifest field -> recording column. Checked against the newest row image in the leaves.
CATALOG_COLUMNS: dict[str, str] = {
    "case": "case_no", "party": "party", "category": "category",
    "officer_name": "officer_name", "unit": "unit", "state": "state", "late": "late",
    "important": "important", "start_from": "start_from",
}


def record_object(row: Recording) -> dict[str, Any]:
    """The signed ingest record of ``row`` as a JSON object, exactly what was signed."""
    value: dict[str, Any] = json.loads(IngestRecord.from_row(row).canonical())
    return value


def catalog_object(row: Recording) -> dict[str, Any]:
    return {name: getattr(row, column) for name, column in CATALOG_COLUMNS.items()}


# Which ledger leaves are about a recording --------------------------------------------

def concerns(body: Mapping[str, Any], rec_id: int) -> bool:
    """Whether a leaf changed recording ``rec_id`` or an explanation about it."""
    key = str(rec_id)
    for change in body.get("changes", []):
        if not isinstance(change, Mapping):
            continue
        table, row = change.get("table"), change.get("row")
        if table == "recording" and change.get("key") == key:
            return True
        if table == "explanation" and isinstance(row, Mapping):
            about = row.get("recording_id")
            if isinstance(about, int) and not isinstance(about, bool) and about == rec_id:
                return True
    return False


def records_row(body: Mapping[str, Any], rec_id: int) -> dict[str, Any] | None:
    """The image of recording ``rec_id``'s row this leaf wrote (None if it wrote none)."""
    for change in body.get("changes", []):
        if (isinstance(change, Mapping) and change.get("table") == "recording"
                and change.get("key") == str(rec_id) and isinstance(change.get("row"), dict)):
            row: dict[str, Any] = change["row"]
            return row
    return None


def station_row(body: Mapping[str, Any], station: str) -> dict[str, Any] | None:
    """The image of station ``station``'s row this leaf wrote (its key), if any."""
    for change in body.get("changes", []):
        if (isinstance(change, Mapping) and change.get("table") == "station"
                and change.get("key") == station and isinstance(change.get("row"), dict)):
            row: dict[str, Any] = change["row"]
            return row
    return None


@dataclass(frozen=True)
class LeafRef:
    seq: int
    kind: str
    body: str  # the canonical leaf text, ASCII


@dataclass
class LeafIndex:
    """In one pass over the ledger: the leaves about each wanted recording, and the
    leaves that wrote the station's row (its key: first pinned, then each rotation)."""

    wanted: frozenset[int]
    station: str
    found: dict[int, list[LeafRef]] = field(default_factory=dict)
    station_leaves: list[LeafRef] = field(default_factory=list)

    def add(self, seq: int, kind: str, body: str) -> None:
        tables = [t for t in ('"recording"', '"explanation"', '"station"') if t in body]
        if not tables:
            return  # cheap: most leaves are about none of these tables
        parsed = json.loads(body)
        for rec_id in self.wanted:
            if concerns(parsed, rec_id):
                self.found.setdefault(rec_id, []).append(LeafRef(seq, kind, body))
        if station_row(parsed, self.station) is not None:
            self.station_leaves.append(LeafRef(seq, kind, body))


def leaves_about(leaves: Iterable[tuple[int, str, str]], ids: Iterable[int], station: str
                 ) -> LeafIndex:
    """For each recording id, every (seq, kind, body) leaf about it, in ledger order;
    and every leaf that wrote the station's row."""
    index = LeafIndex(frozenset(ids), station)
    for seq, kind, body in leaves:
        index.add(seq, kind, body)
    return index


# Names inside a package --------------------------------------------------------------

def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a recording's file inside a package, or None if it can."""
    if not isinstance(name, str) or not name:
        return "is not a non-empty text"
    if "\\" in name or "\x00" in name or name.startswith("/"):
        return "is not a relative '/'-separated path"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' component"
    if parts[0] not in FILE_AREAS or len(parts) < 2:
        return f"does not lie under {' or '.join(f'{a}/' for a in FILE_AREAS)}"
    return None


def package_name(vault_path: str) -> str:
    """A recording's name in the package: its vault path (files/... or quarantine/...)."""
    name = PurePosixPath(vault_path).as_posix()
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"vault path {vault_path!r} {problem}")
    return name


# The manifest ------------------------------------------------------------------------

@dataclass(frozen=True)
class Collection:
    """What the written description says about this export (R10)."""

    collector: str
    place: str
    reason: str
    approved_by: str
    recording_ids: tuple[int, ...]
    case: str | None  # the case number the recordings were selected by, if any
    timezone: str  # the zone times are shown in in the description


def recording_entry(row: Recording, leaves: Sequence[LeafRef]) -> dict[str, Any]:
    assert row.id is not None
    return {
        "id": row.id,
        "record": record_object(row),
        "signature": row.signature,
        "key_id": row.key_id,
        "file": package_name(row.vault_path),
        "size": row.size,
        "sha256": row.sha256,
        "catalog": catalog_object(row),
        "leaves": [leaf_object(leaf) for leaf in leaves],
    }


def leaf_object(leaf: LeafRef) -> dict[str, Any]:
    return {"seq": leaf.seq, "kind": leaf.kind, "body": leaf.body}


def manifest_object(*, package_id: str, station: str, agency: str, origin: str, key_id: str,
                    created_at: str, collection: Collection,
                    recordings: Sequence[dict[str, Any]], station_keys: Sequence[LeafRef],
                    documents: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": PACKAGE_FORMAT,
        "package_id": package_id,
        "station": station,
        "agency": agency,
        "origin": origin,
        "key_id": key_id,
        "created_at": created_at,
        "collection": {
            "collector": collection.collector, "place": collection.place,
            "reason": collection.reason, "approved_by": collection.approved_by,
            "case": collection.case, "recording_ids": list(collection.recording_ids),
            "timezone": collection.timezone,
        },
        "recordings": list(recordings),
        "station_keys": [leaf_object(leaf) for leaf in station_keys],
        "documents": list(documents),
    }


def export_payload(manifest: Mapping[str, Any], out: str, manifest_sha256: str
                   ) -> dict[str, Any]:
    """The payload of the ledger's ``export`` event for this manifest."""
    coll = manifest["collection"]
    return {
        "package_id": manifest["package_id"],
        "recordings": [r["id"] for r in manifest["recordings"]],
        "case": coll["case"],
        "out": out,
        "collector": coll["collector"], "place": coll["place"], "reason": coll["reason"],
        "approved_by": coll["approved_by"],
        "created_at": manifest["created_at"],
        "manifest_sha256": manifest_sha256,
    }


#: Payload fields of the export leaf that must equal the manifest's (verify-export checks).
EXPORT_PAYLOAD_FIELDS = ("package_id", "recordings", "case", "collector", "place", "reason",
                         "approved_by", "created_at", "manifest_sha256")


def json_bytes(value: Any) -> bytes:
    """How manifest.json and proofs.json are written: UTF-8 JSON, sorted keys, indented."""
    return (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: bytes) -> Any:
    """Parse JSON as verify-export does: UTF-8, no duplicate keys, no NaN or Infinity.

    Duplicate keys are refused because two readers could take different values from them.
    Raises ValueError (UnicodeDecodeError, json.JSONDecodeError, DuplicateKey).
    """
    return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                      parse_constant=_no_constant)

