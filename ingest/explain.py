"""The vocabulary of written explanations: what kind of fault, which rule, what was done."""

from __future__ import annotations

import errno as errnos

# kind -> (rule, what the explanation is about)
KINDS: dict[str, tuple[str, str]] = {
    "unreadable_source": ("R3", "a file on the recorder could not be read"),
    "source_vanished": ("R3", "a file disappeared from the recorder before it was copied"),
    "source_changed": ("R3", "a file changed on the recorder while it was copied"),
    "digest_mismatch": ("R3", "the stored copy did not match the bytes read"),
    "vault_full": ("R3", "the vault ran out of space"),
    "vault_read_only": ("R3", "the vault is read-only"),
    "vault_io_error": ("R3", "the vault reported an I/O error"),
    "vault_error": ("R3", "the vault could not store the file"),
    "catalog_error": ("R3", "the catalog could not record a stored file"),
    "media_unreadable": ("R3", "the media prober cannot read the file"),
    "media_truncated": ("R3", "the recording is shorter than its header says (damaged)"),
    "media_mismatch": ("R3", "the file's content is not the kind of media its name says"),
    "empty_file": ("R3", "the file is empty"),
    "symlink": ("R3", "a symbolic link on the volume was not followed"),
    "special_file": ("R3", "a FIFO, device node or socket on the volume was not read"),
    "too_deep": ("R3", "a folder nested too deep was not read"),
    "unreadable_folder": ("R3", "a folder on the volume could not be read"),
    "late_ingest": ("R2", "stored after the deadline"),
    "dock_interrupted": ("R3", "the recorder was removed or the station stopped mid-copy"),
    "dock_failed": ("R3", "the recorder could not be docked (command port, volume, mount)"),
    "recording_interrupted": ("R4", "the recorder's log shows an interruption while recording"),
    "clock_drift": ("R15", "the recorder's clock was off; its times need correcting"),
    "unregistered_device": ("R13", "a recorder that is not in the registry was docked"),
    "retired_device": ("R13", "a retired recorder was docked"),
    "identity_unknown": ("R6", "the device or officer number is unknown"),
    "identity_conflict": ("R6", "the recorder, its file names, the registry or the operator "
                                "disagree on the device or officer"),
    "recorder_step_failed": ("R13", "a step of the recorder conversation failed or answered "
                                    "oddly; that fact is unknown for this dock"),
    "copy_adopted": ("R3", "a verified copy left by an interrupted dock was recorded at the "
                           "next start"),
    "unfinished_copy_removed": ("R3", "unfinished copies left by an interrupted dock were "
                                      "removed at the next start"),
    "unknown_model": ("R13", "a recorder of no configured model was docked by its layout"),
    "implausible_time": ("R15", "a recording's time is implausibly far in the future or past"),
    "clear_failed": ("R3", "clearing the recorder failed or its outcome is unknown"),
}

# What evidock knows about a file it did not store: it did not clear it, nothing more.
NOT_CLEARED = ("evidock did not clear this file from the recorder; if it is still there, "
               "the next dock copies it")


def rule_of(kind: str) -> str:
    return KINDS[kind][0]


def vault_fault_kind(code: int | None) -> str:
    if code in (errnos.ENOSPC, errnos.EDQUOT):
        return "vault_full"
    if code == errnos.EROFS:
        return "vault_read_only"
    if code == errnos.EIO:
        return "vault_io_error"
    return "vault_error"
