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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ingest.record import IngestRecord
from storage.catalog import GENESIS, Catalog, event_hash, payload_of
from storage.errors import VaultError
from storage.keys import PublicKey
from storage.models import Recording
from storage.vault import Vault


@dataclass(frozen=True)
class Problem:
    kind: str  # missing, altered, unreadable, bad_signature, unknown_key, unexpected_file,
    #            unfinished_file, event_chain, event_mismatch, bad_session_signature
    subject: str
    detail: str


@dataclass
class VerifyReport:
    recordings: int = 0
    events: int = 0
    sessions: int = 0
    problems: list[Problem] = field(default_factory=list)
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
                 on_file: Callable[[str], None] | None = None) -> VerifyReport:
    report = VerifyReport()
    problems = report.problems
    rows = catalog.recordings()
    report.recordings = len(rows)
    for row in rows:
        for problem in (_check_signature(row, keys), _check_file(row, vault)):
            if problem is not None:
                problems.append(problem)
        if on_file:
            on_file(row.vault_path)

    accounted = {PurePosixPath(r.vault_path) for r in rows}
    accounted |= {PurePosixPath(e.vault_path) for e in catalog.explanations() if e.vault_path}
    pending = {PurePosixPath(p.vault_path): p for p in catalog.pending()}
    for rel in vault.stored_files():
        if rel in pending:
            report.repairs.append(Problem("pending_copy", str(rel),
                                          "a verified copy whose record a stopped dock did not "
                                          "write; the next start records it"))
        elif rel not in accounted:
            problems.append(Problem("unexpected_file", str(rel),
                                    "in the vault but in no recording or explanation"))
    for owner in vault.owners():
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

    recorded = {str(r.id): r for r in rows}
    prev = GENESIS
    for ev in catalog.events():
        report.events += 1
        subject = f"event {ev.id} ({ev.kind} {ev.subject})"
        if ev.prev_hash != prev or ev.hash != event_hash(prev, ev.at, ev.kind, ev.subject,
                                                         ev.payload):
            problems.append(Problem("event_chain", subject,
                                    "the event log was edited or an entry removed here"))
        prev = ev.hash
        if ev.kind == "recording" and (rec := recorded.get(ev.subject)) is not None:
            logged = payload_of(ev)
            if (logged["sha256"], logged["vault_path"]) != (rec.sha256, rec.vault_path):
                problems.append(Problem("event_mismatch", f"recording {rec.id}",
                                        "the catalog row differs from its logged ingest event"))

    for dock in catalog.sessions():
        report.sessions += 1
        if dock.summary_json is None or dock.signature is None:
            if dock.owner is None or not vault.owner_alive(dock.owner):
                report.repairs.append(Problem("open_session", f"session {dock.session_id}",
                                              "its process stopped before closing it; the "
                                              "next start closes it with an account"))
            continue  # a session still running
        key = keys.get(dock.key_id or "")
        if key is None or not key.verify(dock.signature, dock.summary_json.encode("ascii")):
            problems.append(Problem("bad_session_signature", f"session {dock.session_id}",
                                    "the session summary does not match its signature"))
    return report
