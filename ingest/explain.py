"""The vocabulary of written explanations: what kind of fault, which rule, what was done."""

from __future__ import annotations

import errno as errnos
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from storage.errors import UsageError

if TYPE_CHECKING:
    from storage.models import Explanation, Officer
    from storage.quickread import ExplanationRow

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
    "recording_gap": ("R4", "a pause between two consecutive clips of one recorder"),
    "continuity_violation": ("R5", "a recording that must be uninterrupted has a gap"),
    "clock_drift": ("R15", "the recorder's clock was off; its times need correcting"),
    "unregistered_device": ("R13", "a recorder that is not in the registry was docked"),
    "retired_device": ("R13", "a retired recorder was docked"),
    "out_of_service_device": ("R13", "a recorder taken out of service was docked"),
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
    "docked_offline": ("R3", "the site catalog could not be reached: the dock went into the "
                             "station's offline store"),
    "offline_copy_altered": ("R3", "a file in the station's offline store no longer matched "
                                   "its signed record when it was replayed"),
    "not_ready": ("R13", "asked after its dock, the recorder is not ready for a shift "
                         "(storage, clock or battery)"),
}

# What evidock knows about a file it did not store: it did not clear it, nothing more.
NOT_CLEARED = ("evidock did not clear this file from the recorder; if it is still there, "
               "the next dock copies it")
# ... and about one it holds only in quarantine (the next dock finds it held).
KEPT_IN_QUARANTINE = "evidock never clears a file it holds only in quarantine from the recorder"
# What a replay of the offline store (ingest/replay.py) knows about a file it did not store.
WAITS_OFFLINE = ("the file stays in the station's offline store and its replay is tried "
                 "again later")


def rule_of(kind: str) -> str:
    return KINDS[kind][0]


#: Kinds that break a rule outright (not a fault evidock met): a supervisor is told at
#: once, like every storage fault (R3).
VIOLATIONS: frozenset[str] = frozenset({"continuity_violation"})


def needs_notice(exp: Explanation | ExplanationRow) -> bool:
    """Whether a supervisor must be told at once (R3: storage faults; violations)."""
    return exp.rule == "R3" or exp.kind in VIOLATIONS


def vault_fault_kind(code: int | None) -> str:
    if code in (errnos.ENOSPC, errnos.EDQUOT):
        return "vault_full"
    if code == errnos.EROFS:
        return "vault_read_only"
    if code == errnos.EIO:
        return "vault_io_error"
    return "vault_error"


# Completing an explanation: why it happened, and who signs ---------------------------

class Reason(StrEnum):
    """The reasons officers can give (`evidock explain complete --reason`)."""

    DEVICE_FAULT = "device-fault"
    LOW_BATTERY = "low-battery"
    STORAGE_FULL = "storage-full"
    WEATHER = "weather"
    OBSTRUCTION = "obstruction"
    OTHER = "other"


#: Each reason as the printed statement names it.
REASON_ZH = {Reason.DEVICE_FAULT: "设备故障", Reason.LOW_BATTERY: "电量不足",
             Reason.STORAGE_FULL: "存储空间已满", Reason.WEATHER: "天气原因",
             Reason.OBSTRUCTION: "现场阻碍", Reason.OTHER: "其他原因"}


class Role(StrEnum):
    """What a registered officer is (`evidock officer add --role`)."""

    OFFICER = "officer"
    CUSTODIAN = "custodian"
    SUPERVISOR = "supervisor"


_CUSTODY = frozenset({"custodian", "supervisor"})


@dataclass(frozen=True)
class Signers:
    """Who must sign a statement on an explanation of one rule."""

    minimum: int
    roles: frozenset[str] | None  # None: any registered officer
    why: str

    def describe(self) -> str:
        who = ("registered officers" if self.roles is None
               else " or ".join(sorted(self.roles)))
        return f"{self.minimum} or more distinct {who}" if self.minimum > 1 else (
            f"one {who.rstrip('s') if self.roles is None else who}")


_SIGNERS: dict[str, Signers] = {
    "R4": Signers(2, None, "R4: an interruption is explained in writing and signed by two "
                           "or more officers present"),
    "R5": Signers(2, None, "R5: an interrupted recording of an action that must be recorded "
                           "without a break is explained and signed by two or more officers"),
    "R2": Signers(1, None, "R2: a late storage is explained by the officer"),
    "R3": Signers(1, _CUSTODY, "R3: a storage fault is explained by the equipment custodian "
                               "or a supervisor"),
    "R13": Signers(1, _CUSTODY, "R13: device custody is the custodian's or a supervisor's"),
    "R6": Signers(1, _CUSTODY, "R6: an identity question is settled by the custodian or a "
                               "supervisor"),
}
_ANY_ONE = Signers(1, None, "one registered officer signs")


def signers_for(rule: str) -> Signers:
    return _SIGNERS.get(rule, _ANY_ONE)


def check_signers(exp: Explanation, officers: Sequence[Officer]) -> None:
    """Raise UsageError unless ``officers`` may sign a statement on ``exp``."""
    need = signers_for(exp.rule)
    if need.roles is not None:
        wrong = [f"{o.officer_no} (registered as {o.role})" for o in officers
                 if o.role not in need.roles]
        if wrong:
            raise UsageError(f"{', '.join(wrong)} cannot sign for explanation {exp.id} "
                             f"({exp.kind}): {need.why}")
    if len(officers) < need.minimum:
        raise UsageError(f"explanation {exp.id} ({exp.kind}) needs {need.describe()} to sign "
                         f"(--signed-by NO for each): {need.why}")


def dock_not_started(label: str, why: object, at: datetime) -> Explanation:
    """The explanation of a dock that could not start because the catalog could not be
    reached (it names no session: none was opened)."""
    from storage.models import Explanation

    return Explanation(
        kind="catalog_error", rule=rule_of("catalog_error"), occurred_at=at,
        error=f"{label}: the dock could not start: {' '.join(str(why).split())}",
        action="nothing was copied and evidock did not clear the recorder; its files are "
               "copied at its next dock if they are still on it")
