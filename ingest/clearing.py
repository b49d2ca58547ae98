"""Clearing a recorder after a dock: only what is verified in the vault, intent before outcome.

A recorder is cleared only when every file listed on its volume is recorded as
stored (not quarantined, failed or skipped) and its vault copy reads back
identical now. The intent (which files, their digests) is committed before
``CLR`` is sent and the outcome after, so a crash in between still leaves a
record whose outcome recovery marks unknown.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from devices.errors import RecorderError
from devices.protocol import RecorderRefused
from devices.volume import SkippedEntry, SourceEntry
from storage.errors import CatalogError, VaultError
from storage.models import Clearing

if TYPE_CHECKING:
    from ingest.pipeline import Dock

log = logging.getLogger(__name__)


def verified_files(dock: Dock, device: str | None, entries: Sequence[SourceEntry],
                   skipped: Sequence[SkippedEntry]) -> list[dict[str, object]] | str:
    """Each file with its verified record, or why the recorder must not be cleared."""
    if device is None:
        return "the device number is unknown"
    if skipped:
        return f"{len(skipped)} item(s) on the volume were not read"
    if any(o.status != "stored" and o.status != "already_held" for o in dock.summary.outcomes):
        return "not every file was stored (some failed or were quarantined)"
    catalog, vault = dock.st.catalog, dock.st.vault
    files: list[dict[str, object]] = []
    for entry in entries:
        dock.check()  # reading every copy back takes a while; nothing is sent yet
        row = catalog.recording_for(device, entry.path)
        if row is None or row.state != "stored" or (row.source_size, row.source_mtime_ns) != (
                entry.size, entry.mtime_ns):
            return f"{entry.path} has no stored recording"
        try:
            again = vault.digest(row.vault_path)
        except VaultError as exc:
            return f"{entry.path}: its vault copy cannot be read back ({exc})"
        if again != (row.sha256, row.size):
            return f"{entry.path}: its vault copy does not read back identical"
        files.append({"path": entry.path, "sha256": row.sha256, "recording": row.id})
    return files


def clear_recorder(dock: Dock, device: str | None, entries: Sequence[SourceEntry],
                   skipped: Sequence[SkippedEntry]) -> None:
    source = dock.source
    if not source.can_clear:
        dock.summary.cleared = "not cleared: this recorder has no way to be cleared"
        return
    try:
        files = verified_files(dock, device, entries, skipped)
    except CatalogError as exc:
        files = f"the catalog cannot be read ({exc})"
    if isinstance(files, str):
        dock.summary.cleared = f"not cleared: {files}"
        log.warning("%s: not clearing: %s", source.label, files)
        return
    clock = dock.st.clock
    intent = dock.st.catalog.clearing_intent(Clearing(
        session_id=dock.session_id, device_no=device, intent_at=clock(),
        files_json=json.dumps(files, ensure_ascii=False)))
    assert intent.id is not None
    sent = False
    try:
        with source.commands() as cmd:
            if cmd is None:
                raise RecorderError("the recorder has no command port now")
            cmd.authenticate(source.password)
            sent = True
            count = cmd.clear()
        outcome, detail = "cleared", (f"the recorder reports {count} file(s) deleted; "
                                      f"{len(files)} were verified in the vault first")
    except RecorderRefused as exc:
        outcome, detail = "refused", str(exc)
    except (RecorderError, OSError) as exc:
        outcome = "unknown" if sent else "not_sent"
        detail = f"{exc}" + ("" if sent else "; CLR was never sent")
    dock.st.catalog.clearing_outcome(intent.id, outcome, detail, clock())
    dock.summary.cleared = f"{outcome}: {detail}"
    if outcome != "cleared":
        dock.explain("clear_failed", path=None, device=device, error=detail,
                     action=f"clearing outcome: {outcome}; every file stays recorded in the "
                            "vault; the custodian must check what is on the recorder")
    else:
        log.info("%s: cleared %d files after verifying them in the vault", source.label,
                 len(files))
