"""Finish what a crashed process left: run by every writing start and by the daemon.

A process that writes to the vault holds the lock of its work folder
(storage.vault). A work folder whose lock nobody holds belongs to a process
that died; for each:

- a pending copy (noted in the catalog before it was linked into the vault) is
  adopted: its bytes are read back and, if they match the signed row, the row
  is recorded (``copy_adopted``); a copy never linked is linked first. A copy
  whose bytes do not match is moved to quarantine with an explanation. A note
  whose copy is gone is dropped with an explanation.
- every other temporary file is a copy never recorded (cut short, or whole and
  waiting for its group, ingest/filing.py): removed, with one explanation
  (``unfinished_copy_removed``);
- its open dock sessions are closed and signed, each with a ``dock_interrupted``
  explanation that gives the catalog's account; a clearing asked for but never
  answered gets the outcome "unknown".

Only one process recovers at a time (an flock on ``.work/recover.lock``).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import PurePosixPath

from ingest.account import dock_account
from ingest.dock import IngestContext
from ingest.explain import rule_of
from storage.canonical import canonical_json
from storage.errors import CatalogError, VaultError
from storage.models import (
    Device,
    DockSession,
    Explanation,
    Officer,
    PendingCopy,
    Recording,
    fault_of,
    row_from_json,
)
from storage.retention import finish_purges
from storage.text import shown
from storage.vault import QUARANTINE, WORK, is_area_path, is_taken

log = logging.getLogger(__name__)


@contextmanager
def _recovering(st: IngestContext) -> Iterator[bool]:
    """Hold the recovery lock; yields False if another process is recovering now."""
    folder = st.vault.base / WORK
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "recover.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def recover(st: IngestContext) -> list[str]:
    """Repair what dead processes left; returns one line per thing done."""
    done: list[str] = []
    with _recovering(st) as mine:
        if not mine:
            return done
        vault = st.vault
        for owner in vault.owners():
            if vault.owner_alive(owner):
                continue
            for pending in st.catalog.pending(owner):
                done.append(_finish_pending(st, pending))
            done.extend(_remove_leftovers(st, owner))
            vault.retire_owner(owner)
        legacy = list(vault.legacy_temporaries())
        if legacy:
            done.extend(_remove(st, None, legacy, "an earlier version"))
        for dock in st.catalog.open_sessions(st.station_id):
            if dock.owner is None or not vault.owner_alive(dock.owner):
                done.append(_close(st, dock))
        done.extend(f"removed {rel}: its recording's purge by rule (R8) was recorded, the "
                    "file was still there" for rel in finish_purges(st.catalog, vault))
    for line in done:
        log.warning("recovery: %s", shown(line, 1000))
    return done


def _explain(st: IngestContext, kind: str, *, session: str | None, error: str, action: str,
             recording: Recording | None = None, vault_path: str | None = None) -> None:
    st.record_explanation(Explanation(
        session_id=session, recording_id=recording.id if recording else None, kind=kind,
        rule=rule_of(kind), device_no=recording.device_no if recording else None,
        source_path=recording.source_path if recording else None, vault_path=vault_path,
        occurred_at=st.clock(), error=error, action=action))


def _finish_pending(st: IngestContext, pending: PendingCopy) -> str:
    vault, catalog = st.vault, st.catalog
    row = row_from_json(Recording, pending.row_json)
    final = PurePosixPath(pending.vault_path)
    tmp = PurePosixPath(pending.tmp_path)
    where = "the vault"
    try:
        sha, size = vault.digest(final)
    except VaultError:
        sha, size, where = "", -1, "its temporary file"
        with suppress(VaultError):  # neither exists: size stays -1
            sha, size = vault.digest_temporary(tmp)
    assert pending.id is not None
    if size < 0:
        catalog.drop_pending(pending.id)
        _explain(st, "unfinished_copy_removed", session=pending.session_id,
                 error=f"a note of a verified copy of {row.source_path} for {final} was left, "
                       "but neither the copy nor its temporary file exists",
                 action="the note was dropped; that dock did not store this file; evidock did "
                        "not clear it, so if it is still on the recorder the next dock copies it")
        return f"dropped the note for {final}: no copy exists"
    if (sha, size) != (row.sha256, row.size):
        return _set_aside(st, pending, row, final if where == "the vault" else tmp, sha, size)
    if where != "the vault":
        try:
            vault.link(vault.root.joinpath(*tmp.parts), final)
        except VaultError as exc:
            if not is_taken(exc):
                raise
            return _set_aside(st, pending, row, tmp, sha, size)
    vault.remove_leftover(tmp)
    now = st.clock()
    catalog.add_recording(row, Device(device_no=row.device_no, first_seen=now, last_seen=now),
                          Officer(officer_no=row.officer_no), pending_id=pending.id)
    fault = fault_of(pending.row_json)
    _explain(st, "copy_adopted", session=pending.session_id, recording=row,
             vault_path=pending.vault_path,
             error=f"the dock stopped after its verified copy of {row.source_path} was made but "
                   "before it was recorded",
             action=f"the copy at {final} read back identical to the signed record "
                    f"(SHA-256 {sha}) and was recorded as recording {row.id}"
                    + (f", in quarantine ({fault['kind']}: its explanation follows)"
                       if fault else ""))
    if fault is not None:  # what the dock would have written with the row
        _explain(st, fault["kind"], session=pending.session_id, recording=row,
                 vault_path=pending.vault_path, error=fault["error"], action=fault["action"])
    return f"recorded the verified copy at {final} (recording {row.id})"


def _set_aside(st: IngestContext, pending: PendingCopy, row: Recording, found: PurePosixPath,
               sha: str, size: int) -> str:
    """A copy that does not match its note: kept, in quarantine, never recorded as the file."""
    vault = st.vault
    aside = vault.free_name(vault.in_area(QUARANTINE, row.vault_path),
                            st.catalog.vault_path_taken)
    vault.link(vault.root.joinpath(*found.parts), aside)
    if not is_area_path(found):  # a temporary copy in a work folder
        vault.remove_leftover(found)
    else:
        vault.unlink(found)
    assert pending.id is not None
    st.catalog.drop_pending(pending.id)
    _explain(st, "digest_mismatch", session=pending.session_id, vault_path=str(aside),
             error=f"the copy left for {row.source_path} gives SHA-256 {sha} ({size} bytes), "
                   f"not the {row.sha256} ({row.size} bytes) that was read and signed",
             action=f"the copy was moved to {aside} and not recorded as the file; evidock did "
                    "not clear the file, so if it is still on the recorder the next dock "
                    "copies it")
    return f"moved a mismatching copy to {aside}"


def _remove_leftovers(st: IngestContext, owner: str) -> list[str]:
    leftovers = st.vault.leftovers_of(owner)
    return _remove(st, owner, leftovers, f"process {owner}") if leftovers else []


def _remove(st: IngestContext, owner: str | None, files: list[PurePosixPath],
            whose: str) -> list[str]:
    total = 0
    for rel in files:
        total += st.vault.size_of(rel)
        st.vault.remove_leftover(rel)
    session = None
    if owner is not None:
        session = next((d.session_id for d in st.catalog.open_sessions(st.station_id)
                        if d.owner == owner), None)
    _explain(st, "unfinished_copy_removed", session=session,
             error=f"{len(files)} temporary cop{'y' if len(files) == 1 else 'ies'} "
                   f"({total} bytes) left by {whose}, which stopped before recording "
                   f"{'it' if len(files) == 1 else 'them'} (a copy may have been whole and "
                   "read back, or cut short: unknown)",
             action="removed: a copy is evidence only once it is recorded; evidock did not "
                    "clear the files being copied, so those still on the recorder are copied "
                    "at the next dock")
    return [f"removed {len(files)} unfinished copies of {whose}"]


def _close(st: IngestContext, dock: DockSession) -> str:
    catalog = st.catalog
    now = st.clock()
    for c in catalog.clearings(dock.session_id):
        if c.outcome is None:
            assert c.id is not None
            catalog.clearing_outcome(c.id, "unknown", "the dock stopped after the intent to "
                                     "clear was recorded; whether CLR reached the recorder is "
                                     "not known", now)
    account = dock_account(catalog, dock)
    # once per dock: a recovery killed between this explanation and the close below has
    # already written it
    if not any(e.kind == "dock_interrupted" for e in catalog.explanations(
            session_id=dock.session_id)):
        _explain(st, "dock_interrupted", session=dock.session_id,
                 error=f"the process running this dock (started "
                       f"{dock.started_at:%Y-%m-%d %H:%M:%S} UTC) stopped without closing it",
                 action=f"closed at the next start; {account}")
    stored = catalog.count_recordings(dock.session_id)
    summary = {"session": dock.session_id, "source": dock.source,
               "started_at": dock.started_at, "finished_at": now, "files_stored": stored,
               "interrupted": True, "closed_by": "recovery", "account": account}
    body = canonical_json(summary)
    dock.finished_at, dock.files_stored, dock.interrupted = now, stored, True
    dock.summary_json = body.decode("ascii")
    dock.signature, dock.key_id = st.key.sign(body), st.key.key_id
    try:
        catalog.finish_session(dock)
    except CatalogError as exc:
        return f"could not close session {dock.session_id}: {exc}"
    return f"closed dock session {dock.session_id}: {account}"
