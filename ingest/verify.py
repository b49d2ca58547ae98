"""Integrity check of the whole store: files, signatures, sessions and the event chain.

Finds files that are missing, altered (digest or size differ), unexpected (in
the vault but in no record), rows whose signature no longer matches (edited),
broken links in the event chain. What a crashed process left (temporary files,
copies noted as pending, open sessions) is reported as waiting for repair: the
next writing start repairs it (ingest/recovery.py); it is not a fault of the
store.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ingest import custody
from ingest.record import IngestRecord
from storage import ledger
from storage.catalog import Catalog
from storage.errors import StationKeyError, VaultError
from storage.keys import PublicKey
from storage.merkle import MerkleTree, leaf_hash
from storage.models import Recording
from storage.vault import Vault


@dataclass(frozen=True)
class Problem:
    kind: str  # missing, altered, unreadable, bad_signature, unknown_key, unexpected_file,
    #            bad_session_signature, ledger_leaf, ledger_head, row_differs, row_missing,
    #            row_without_leaf, key_changed, checkpoint, catalog_damaged
    subject: str
    detail: str


@dataclass
class VerifyReport:
    recordings: int = 0
    leaves: int = 0
    ledger_keys: dict[str, PublicKey] = field(default_factory=dict)  # keys the ledger accepts
    station_keys: dict[str, PublicKey] = field(default_factory=dict)  # each station's key now
    #: every key each station has had (pinned, then each rotation), for its checkpoints
    station_history: dict[str, list[PublicKey]] = field(default_factory=dict)
    sessions: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not checked, and why
    repairs: list[Problem] = field(default_factory=list)  # left by a crash; the next start

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_signature(row: Recording, keys: Mapping[str, PublicKey]) -> Problem | None:
    subject = f"recording {row.id} ({row.vault_path})"
    key = keys.get(row.key_id)
    if key is None:
        return Problem("unknown_key", subject, f"signed by {row.key_id}, which is not trusted")
    if not key.verify(row.signature, IngestRecord.from_row(row).canonical()):
        return Problem("bad_signature", subject,
                       "the catalog row does not match its signature: it was edited")
    return None


def _check_file(row: Recording, vault: Vault) -> Problem | None:
    subject = f"recording {row.id} ({row.vault_path})"
    try:
        digest, size = vault.digest(row.vault_path)
    except VaultError as exc:
        if exc.errno == errno.ENOENT:
            return Problem("missing", subject, "the file is not in the vault")
        return Problem("unreadable", subject, str(exc))
    if (digest, size) != (row.sha256, row.size):
        return Problem("altered", subject,
                       f"expected {row.sha256} ({row.size} bytes), found {digest} ({size} bytes)")
    return None


def verify_store(catalog: Catalog, vault: Vault, keys: Mapping[str, PublicKey],
                 on_file: Callable[[str], None] | None = None, *,
                 station_id: str | None = None,
                 outside: Sequence[tuple[str, bytes]] = (),
                 station_key: str | None = None,
                 pending_key: str | None = None) -> VerifyReport:
    """Check everything; ``outside`` are (name, signed note) checkpoints kept elsewhere.

    ``station_key`` is the id of the key in the station's key file (None: not checked),
    ``pending_key`` that of a new key a rotation made but had not yet moved into place.
    """
    stored = list(vault.stored_files())  # before the snapshot: a file linked since is
    owners = vault.owners()  # accounted for (its pending row was committed before it)
    with catalog.snapshot():  # one state of the catalog, while a site's stations write
        return _verify(catalog, vault, keys, on_file, station_id, outside, station_key,
                       pending_key, stored, owners)


def _verify(catalog: Catalog, vault: Vault, keys: Mapping[str, PublicKey],
            on_file: Callable[[str], None] | None, station_id: str | None,
            outside: Sequence[tuple[str, bytes]], station_key: str | None,
            pending_key: str | None, stored: Sequence[PurePosixPath],
            owners: Sequence[str]) -> VerifyReport:
    report = VerifyReport()
    problems = report.problems
    problems.extend(Problem("catalog_damaged", "catalog", message)
                    for message in catalog.integrity())
    found, tree = check_ledger(catalog, report)
    current = report.station_keys.get(station_id or "")
    pinned = current.key_id if current is not None else None
    held = station_key if pinned is not None and station_key != pinned else None
    if held is not None and pending_key == pinned:
        report.repairs.append(Problem(
            "unfinished_rotation", f"station {station_id}",
            f"the ledger pins the new key {pending_key}, the key file still holds {held}; "
            "the next start moves the new key into place"))
    elif held is not None:
        problems.append(Problem("key_changed", f"station {station_id}",
                                f"the key file holds {held}, but the ledger pins "
                                f"{pinned}: the key was replaced, not rotated"))
        keys = {k: v for k, v in keys.items() if k != held}  # never trust it
    keys = {**report.ledger_keys, **keys}  # records signed before a rotation still check
    rows = catalog.recordings()
    report.recordings = len(rows)
    kept = {r.vault_path for r in rows if r.purged_at is None}
    for row in rows:
        if row.purged_at is not None:  # a tombstone: its file is gone by rule (R8)
            problem = _check_signature(row, keys)
            if problem is None and row.vault_path not in kept and vault.path(
                    row.vault_path).exists():
                report.repairs.append(Problem(
                    "unfinished_purge", f"recording {row.id} ({row.vault_path})",
                    "purged, but its file is still there; the next start (or purge) "
                    "removes it"))
            if problem is not None:
                problems.append(problem)
        else:
            problems.extend(p for p in (_check_signature(row, keys), _check_file(row, vault))
                            if p is not None)
        if on_file:
            on_file(row.vault_path)

    accounted = {PurePosixPath(r.vault_path) for r in rows}
    accounted |= {PurePosixPath(e.vault_path) for e in catalog.explanations() if e.vault_path}
    pending = {PurePosixPath(p.vault_path): p for p in catalog.pending()}
    for rel in stored:
        if rel in pending:
            report.repairs.append(Problem("pending_copy", str(rel),
                                          "a verified copy whose record a stopped dock did not "
                                          "write; the next start records it"))
        elif rel not in accounted:
            problems.append(Problem("unexpected_file", str(rel),
                                    "in the vault but in no recording or explanation"))
    for owner in owners:
        if vault.owner_alive(owner):
            continue  # a dock running now
        for tmp in vault.leftovers_of(owner):
            report.repairs.append(Problem("unfinished_file", str(tmp),
                                          "an interrupted copy, no evidence; the next start "
                                          "removes it"))
    for tmp in vault.legacy_temporaries():
        report.repairs.append(Problem("unfinished_file", str(tmp),
                                      "an interrupted copy, no evidence; the next start "
                                      "removes it"))

    problems.extend(found)
    if station_id is not None:
        notes: list[tuple[str, str | None, bytes]] = [
            (f"checkpoint {c.size} of {c.station}", c.station, c.note.encode("utf-8"))
            for c in catalog.checkpoints()]
        notes += [(f"outside checkpoint {name}", custody.station_of(note), note)
                  for name, note in outside]
        for subject, signer, note in notes:
            signer = signer or station_id  # a note whose first line names no station
            trusted = custody.verifiers(signer, report.station_history.get(signer, []))
            if signer == station_id:
                trusted += custody.verifiers(signer, keys.values())
            origin = custody.origin_of(signer)
            if finding := custody.check(note, tree, trusted, origin, subject):
                problems.append(Problem("checkpoint", finding.subject, finding.detail))

    for dock in catalog.sessions():
        report.sessions += 1
        if dock.summary_json is None or dock.signature is None:
            if dock.owner is None or not vault.owner_alive(dock.owner):
                report.repairs.append(Problem(
                    "open_session", f"session {dock.session_id}",
                    "its process stopped before closing it; the next start "
                    + ("" if dock.station_id == station_id else f"of station {dock.station_id} ")
                    + "closes it with an account"))
            continue  # a session still running
        key = keys.get(dock.key_id or "")
        if key is None or not key.verify(dock.signature, dock.summary_json.encode("ascii")):
            problems.append(Problem("bad_session_signature", f"session {dock.session_id}",
                                    "the session summary does not match its signature"))
    return report


def _differences(found: dict[str, Any], logged: dict[str, Any]) -> list[str]:
    return sorted(name for name in set(found) | set(logged) if found.get(name) != logged.get(name))


def _pin(pinned: dict[str, PublicKey], station: str, row: dict[str, Any],
         body: dict[str, Any], subject: str) -> Problem | None:
    """Follow a station's key: pinned by its first leaf, changed only by a signed rotation."""
    try:
        key = PublicKey.from_pem(str(row.get("public_key_pem")))
    except StationKeyError:
        return Problem("key_changed", f"station {station}", f"{subject}: no valid public key")
    known = pinned.get(station)
    if known is None or known.key_id == key.key_id:
        pinned.setdefault(station, key)
        return None
    if body.get("kind") == "key-rotate":
        payload = body.get("payload", {})
        statement = str(payload.get("statement", "")).encode("ascii", "replace")
        said = json.loads(statement) if statement.startswith(b"{") else {}
        if (said.get("old_key_id"), said.get("new_key_id")) == (known.key_id, key.key_id) \
                and known.verify(str(payload.get("old_signature")), statement) \
                and key.verify(str(payload.get("new_signature")), statement):
            pinned[station] = key
            return None
    return Problem("key_changed", f"station {station}",
                   f"{subject} changes the station key from {known.key_id} to {key.key_id} "
                   "without a rotation signed by both keys")


def check_ledger(catalog: Catalog, report: VerifyReport) -> tuple[list[Problem], MerkleTree]:
    """The ledger against itself (leaf hashes, order, head) and every row against it."""
    problems: list[Problem] = []
    hashes: list[bytes] = []
    bodies: list[dict[str, Any]] = []
    pinned: dict[str, PublicKey] = {}  # station -> its key: the first, then each rotation
    accepted: list[PublicKey] = []  # every key a station had: older records check with them
    for leaf in catalog.leaves():
        seq = len(bodies)
        subject = f"ledger leaf {leaf.seq} ({leaf.kind} {leaf.subject})"
        raw = leaf.body.encode("ascii", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        if leaf.seq != seq:
            problems.append(Problem("ledger_leaf", subject,
                                    f"expected leaf {seq} here: leaves were removed"))
        if leaf_hash(raw).hex() != leaf.leaf_hash or body.get("seq") != leaf.seq:
            problems.append(Problem("ledger_leaf", subject,
                                    "the leaf does not match its hash or position: edited"))
        hashes.append(leaf_hash(raw))
        bodies.append(body)
        for change in ledger.changes_of(body):
            if change.table == "station" and change.row is not None:
                problem = _pin(pinned, change.key, change.row, body, subject)
                if problem is not None:
                    problems.append(problem)
                accepted.extend(pinned.values())
                had = report.station_history.setdefault(change.key, [])
                now = pinned.get(change.key)
                if now is not None and all(k.key_id != now.key_id for k in had):
                    had.append(now)
    report.leaves = len(bodies)
    report.ledger_keys = {key.key_id: key for key in accepted}
    report.station_keys = dict(pinned)
    tree = MerkleTree(hashes)
    head = catalog.head()
    if head.size != tree.size or head.root != tree.root().hex():
        problems.append(Problem("ledger_head", "ledger",
                                f"the head says {head.size} leaves with root {head.root[:16]}…, "
                                f"the leaves make {tree.size} with root "
                                f"{tree.root().hex()[:16]}…"))
    expected = ledger.replay(bodies)
    for name, cls in ledger.TABLES.items():
        for row in catalog.rows(cls):
            key = (name, ledger.row_key(row))
            logged = expected.pop(key, None)
            what = f"{name} {key[1]}"
            if logged is None:
                problems.append(Problem("row_without_leaf", what,
                                        "the row is in the catalog but not in the ledger"))
            elif diff := _differences(ledger.image(row), logged):
                problems.append(Problem("row_differs", what,
                                        f"differs from the ledger in {', '.join(diff)}"))
    for table, row_id in sorted(expected):
        problems.append(Problem("row_missing", f"{table} {row_id}",
                                "the ledger holds this row; the catalog has lost it"))
    return problems, tree
