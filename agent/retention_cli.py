"""`evidock hold add|release|list` (R9) and `evidock purge` (R8)."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cliutil import emit_json, say, settings_of, when
from agent.station import open_reader, open_station
from storage.errors import UsageError
from storage.terms import HoldReason, now_utc
from storage.text import shown

if TYPE_CHECKING:
    from storage.models import Hold
    from storage.retention import Due

hold_app = typer.Typer(no_args_is_help=True, help=(
    "Long-term holds (R9): footage of a dispute, complaint, assault on an officer, "
    "emergency or evidence is kept until the hold is released."))

By = Annotated[str, typer.Option("--by", help="who does it")]
Note = Annotated[str, typer.Option("--note", help="why, in words")]
Json = Annotated[bool, typer.Option("--json")]


def hold_dict(h: "Hold") -> dict[str, Any]:
    return {"id": h.id, "recording": h.recording_id, "case": h.case_no, "reason": h.reason,
            "note": h.note, "by": h.placed_by, "at": h.placed_at.isoformat(),
            "released_at": h.released_at.isoformat() if h.released_at else None,
            "released_by": h.released_by, "release_note": h.release_note}


def due_dict(d: "Due", now: Any) -> dict[str, Any]:
    rec = d.recording
    return {"recording": rec.id, "device": rec.device_no, "officer": rec.officer_no,
            "source_path": rec.source_path, "case": rec.case_no, "category": rec.category,
            "until": d.until.isoformat(), "class": d.by, "holds": list(d.holds),
            "purged_at": rec.purged_at.isoformat() if rec.purged_at else None,
            "purgeable": d.purgeable(now)}


@hold_app.command("add")
def add(ctx: typer.Context,
        reason: Annotated[HoldReason, typer.Option(help="R9's reason")],
        rec_id: Annotated[int | None, typer.Argument(metavar="[ID]", help="a recording")]
        = None,
        case: Annotated[str | None, typer.Option(help="every recording of a case")] = None,
        note: Note = "", by: By = "") -> None:
    """Keep a recording, or a case's recordings, beyond their retention."""
    from storage.retention import Retention

    settings = settings_of(ctx)
    station = open_station(settings, create=False)
    try:
        placed = Retention(station.catalog, settings.retention_days).hold(
            recording_id=rec_id, case_no=case, reason=reason.value, note=note, by=by,
            now=now_utc())
    finally:
        station.close()
    what = f"recording {rec_id}" if rec_id is not None else f"case {shown(case or '')}"
    say(f"hold {placed.id} on {what} ({placed.reason}): kept until the hold is released")


@hold_app.command("release")
def release(ctx: typer.Context, hold_id: Annotated[int, typer.Argument(metavar="HOLD_ID")],
            note: Note = "", by: By = "") -> None:
    """Release a hold: its footage is kept for its retention class again."""
    from storage.retention import Retention

    settings = settings_of(ctx)
    station = open_station(settings, create=False)
    try:
        Retention(station.catalog, settings.retention_days).release(
            hold_id, note=note, by=by, now=now_utc())
    finally:
        station.close()
    say(f"hold {hold_id} released")


@hold_app.command("list")
def list_holds(ctx: typer.Context, released: Annotated[bool, typer.Option(
        "--released", help="also the released ones")] = False, as_json: Json = False) -> None:
    """Holds in force (with --released: all)."""
    from storage.retention import Retention

    settings = settings_of(ctx)
    rows = [hold_dict(h) for h in Retention(open_reader(settings).catalog,
                                            settings.retention_days).holds(released=released)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        say("(none)")
    for r in rows:
        what = f"recording {r['recording']}" if r["recording"] is not None else \
            f"case {shown(r['case'])}"
        say(f"#{r['id']} {what} {r['reason']} since {when(r['at'])} by {shown(r['by'])}: "
            f"{shown(r['note'], limit=200)}"
            + (f"; released {when(r['released_at'])} by {shown(r['released_by'])}"
               if r["released_at"] else ""))


def purge(
    ctx: typer.Context,
    rec_ids: Annotated[list[int] | None, typer.Argument(
        metavar="[ID]...", help="only these recordings (each must be due)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what is due")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="purge what is due")] = False,
    by: Annotated[str, typer.Option("--by", help="who purges (an admin)")] = "",
    approved_by: Annotated[str, typer.Option("--approved-by",
                                             help="the second person who approved")] = "",
    approval: Annotated[str, typer.Option("--approval",
                                          help="the approval's reference")] = "",
    as_json: Json = False,
) -> None:
    """Remove footage whose retention (R8) has run out and that no hold (R9) keeps; each
    leaves a tombstone (its digest and signed record, who, when, why) that verify accepts."""
    from storage.retention import Retention

    if dry_run == apply:
        raise UsageError("give --dry-run or --apply")
    settings = settings_of(ctx)
    now = now_utc()
    if dry_run:
        book = Retention(open_reader(settings).catalog, settings.retention_days)
        due = [d for d in book.due() if d.recording.purged_at is None]
        chosen = _chosen(due, rec_ids, now, strict=False)
        rows = [due_dict(d, now) for d in chosen]
        if as_json:
            emit_json(rows)
            return
        ready = [r for r in rows if r["purgeable"]]
        say(f"due for purging now: {len(ready) or 'none'} of {len(rows)} recording(s)")
        for r in ready:
            say(f"  recording {r['recording']} {shown(r['source_path'])}: kept until "
                f"{when(r['until'])} ({r['class']})")
        return
    station = open_station(settings, create=False)
    try:
        book = Retention(station.catalog, settings.retention_days)
        chosen = _chosen(book.due(), rec_ids, now, strict=True)
        done = book.purge(chosen, station.vault, by=by, approved_by=approved_by,
                          approval=approval, now=now)
    finally:
        station.close()
    if as_json:
        emit_json({"purged": done})
        return
    say(f"purged {len(done)} recording(s): {', '.join(map(str, done)) or 'none due'}; "
        "their rows stay as tombstones")


def _chosen(due: "list[Due]", rec_ids: list[int] | None, now: Any, *, strict: bool
            ) -> "list[Due]":
    """The named recordings (each must exist, and with ``strict`` be purgeable), or every
    purgeable one (all, for a dry run)."""
    if not rec_ids:
        return [d for d in due if d.purgeable(now)] if strict else due
    by_id = {d.recording.id: d for d in due}
    missing = [i for i in rec_ids if i not in by_id]
    if missing:
        raise UsageError(f"no recording with id {', '.join(map(str, missing))}")
    return [by_id[i] for i in dict.fromkeys(rec_ids)]
