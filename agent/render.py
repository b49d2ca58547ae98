"""Plain dictionaries and lines for what the CLI prints (no I/O here)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ingest.dock import Summary
from ingest.record import FORMATS, IngestRecord

if TYPE_CHECKING:
    from ingest.verify import VerifyReport
    from storage.models import Explanation, Officer, Recording, Statement
    from storage.quickread import ExplanationRow, RecordingRow

#: Fields of the dicts below (and of the other commands' JSON) that hold times.
TIME_FIELDS = frozenset((
    "start", "end", "recorder_start", "recorder_end", "ingested_at", "deadline",
    "occurred_at", "made_at", "registered_at", "retired_at", "first_seen", "last_seen",
    "started_at", "finished_at", "at", "from", "until", "returned_at", "declared_at",
    "ended_at", "due", "filed_at", "closed_at", "purged_at", "until", "released_at"))


def _t(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def recording_dict(row: Recording | RecordingRow) -> dict[str, Any]:
    record = IngestRecord.from_row(row)
    return {
        "id": row.id, "state": row.state, "agency": row.agency, "station": row.station_id,
        "session": row.session_id, "device": row.device_no, "officer": row.officer_no,
        "officer_name": row.officer_name, "unit": row.unit, "category": row.category,
        "case": row.case_no, "party": row.party, "source_path": row.source_path,
        "size": row.size, "sha256": row.sha256, "signature": row.signature,
        "key_id": row.key_id, "start": _t(row.recording_start), "end": _t(row.recording_end),
        "start_from": row.start_from, "duration_s": row.duration_s, "important": row.important,
        "ingested_at": _t(row.ingested_at), "deadline": _t(row.deadline), "late": row.late,
        "vault_path": row.vault_path, "sidecar": row.sidecar, "attached_to": row.attached_to,
        "record_format": FORMATS[record.version], "clock_offset_s": row.clock_offset_s,
        "recorder_start": _t(record.recorder_start), "recorder_end": _t(record.recorder_end),
        "purged_at": _t(row.purged_at), "purged_by": row.purged_by,
        "purge_approved_by": row.purge_approved_by, "purge_approval": row.purge_approval,
        "purge_why": row.purge_why,
        "media": json.loads(row.media_json) if row.media_json else None,
    }


def explanation_dict(exp: Explanation | ExplanationRow) -> dict[str, Any]:
    return {
        "id": exp.id, "kind": exp.kind, "rule": exp.rule, "status": exp.status,
        "device": exp.device_no, "source_path": exp.source_path, "vault_path": exp.vault_path,
        "occurred_at": _t(exp.occurred_at), "error": exp.error, "action": exp.action,
        "recording_id": exp.recording_id, "related_recording_id": exp.related_recording_id,
        "session": exp.session_id,
    }


def statement_dict(st: Statement, officers: Mapping[str, Officer]) -> dict[str, Any]:
    """A statement with its signers' names and roles as the registry has them now."""
    return {
        "id": st.id, "explanation": st.explanation_id, "corrects": st.corrects_id,
        "reason": st.reason, "text": st.text, "made_at": _t(st.made_at),
        "signers": [{"officer": no, "name": officers[no].name if no in officers else None,
                     "role": officers[no].role if no in officers else None}
                    for no in st.signers()],
    }


def summary_dict(summary: Summary) -> dict[str, Any]:
    data = summary.to_dict()
    data["started_at"] = _t(summary.started_at)
    data["finished_at"] = _t(summary.finished_at)
    data["explanations"] = [explanation_dict(e) for e in summary.explanations]
    data["ok"] = not summary.failed
    return data


def summary_lines(summary: Summary) -> list[str]:
    s = summary
    lines = [
        f"dock session {s.session_id} from {s.source}",
        f"  stored {s.count('stored')}, quarantined {s.count('quarantined')}, "
        f"already held {s.count('already_held') + s.count('duplicate')}, "
        f"failed {s.count('failed')}; {s.bytes_stored:,} bytes stored",
    ]
    for exp in s.explanations:
        where = exp.source_path or "(recorder)"
        lines.append(f"  explanation [{exp.rule} {exp.kind}] {where}: {exp.error}")
        lines.append(f"      -> {exp.action}")
    lines.extend(f"  NOT RECORDED: {text}" for text in s.unrecorded)
    return lines


def verify_dict(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok, "recordings": report.recordings, "ledger_leaves": report.leaves,
        "sessions": report.sessions,
        "problems": [p.__dict__ for p in report.problems],
        "awaiting_repair": [p.__dict__ for p in report.repairs],
        "not_checked": report.notes,
    }


def verify_lines(report: VerifyReport) -> list[str]:
    head = (f"verified {report.recordings} recordings, {report.sessions} dock sessions, "
            f"{report.leaves} ledger leaves: ")
    lines = [head + ("all intact" if report.ok else f"{len(report.problems)} problem(s)")]
    lines.extend(f"  {p.kind}: {p.subject}: {p.detail}" for p in report.problems)
    lines.extend(f"  not checked: {note}" for note in report.notes)
    if report.repairs:
        lines.append(f"left by a stopped process, repaired at the next start "
                     f"({len(report.repairs)}):")
        lines.extend(f"  {p.kind}: {p.subject}: {p.detail}" for p in report.repairs)
    return lines


def shown_json(value: Any) -> str:
    """``value`` as JSON for a terminal: text kept readable (Chinese as is), but every
    invisible or control character (ANSI escapes, bidi overrides, line separators) written
    as a ``\\uXXXX`` escape, so the text stays valid JSON and cannot act on the terminal."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return "".join(_json_escape(c) if unicodedata.category(c) in _HIDDEN else c for c in text)


# as storage.text.shown hides them: control, format, line/paragraph separators, surrogates,
# private use, unassigned
_HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
