"""`evidock case close|file|list` (R11: records filed within 30 days of the action's end)."""

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cliutil import emit_json, moment_of, say, settings_of, when
from agent.station import open_reader, open_station
from storage.errors import UsageError
from storage.terms import FILING_DAYS, now_utc
from storage.text import shown

if TYPE_CHECKING:
    from storage.cases import CaseState

case_app = typer.Typer(no_args_is_help=True, help=(
    f"Cases (R11): once the action has ended its records are filed within {FILING_DAYS} "
    "days."))

CaseNo = Annotated[str, typer.Argument(metavar="CASE_NO")]
By = Annotated[str, typer.Option("--by", help="who records it")]


def case_dict(state: "CaseState") -> dict[str, Any]:
    c = state.case
    now = now_utc()
    return {"case": state.case_no, "recordings": state.recordings, "status": state.status(now),
            "ended_at": c.ended_at.isoformat() if c else None,
            "due": state.due.isoformat() if state.due else None,
            "filed_at": c.filed_at.isoformat() if c and c.filed_at else None,
            "filed_by": c.filed_by if c else None}


@case_app.command("close")
def close(ctx: typer.Context, case_no: CaseNo, by: By, ended_at: Annotated[str, typer.Option(
        "--ended-at", metavar="TIME", help="when the enforcement action ended")]) -> None:
    """Record that a case's action has ended: its records are due in the case file."""
    from storage.cases import Cases

    settings = settings_of(ctx)
    ended = moment_of(ended_at, settings, upper=False)
    if ended is None or ended.year in (1, 9999):
        raise UsageError("--ended-at must be a real time")
    station = open_station(settings, create=False)
    try:
        case = Cases(station.catalog).close(case_no, ended_at=ended, by=by, now=now_utc())
    finally:
        station.close()
    due = case.ended_at + timedelta(days=FILING_DAYS)
    say(f"case {shown(case_no)} closed: its records are due in the case file by "
        f"{when(due)}")


@case_app.command("file")
def file_case(ctx: typer.Context, case_no: CaseNo, by: By, note: Annotated[str, typer.Option(
        help="where it was filed (e.g. the archive number)")] = "") -> None:
    """Record that a closed case's records were filed into the case file."""
    from storage.cases import Cases

    station = open_station(settings_of(ctx), create=False)
    try:
        Cases(station.catalog).file(case_no, by=by, note=note, now=now_utc())
    finally:
        station.close()
    say(f"case {shown(case_no)} filed")


@case_app.command("list")
def list_cases(ctx: typer.Context,
               overdue: Annotated[bool, typer.Option(
                   "--overdue", help=f"only closed cases not filed within {FILING_DAYS} days")]
               = False,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Cases: annotated recordings, closing, filing, and what is overdue."""
    from storage.cases import Cases

    rows = [case_dict(s) for s in Cases(open_reader(settings_of(ctx)).catalog).states()]
    if overdue:
        rows = [r for r in rows if r["status"] == "overdue"]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        say("(none)")
    for r in rows:
        say(f"{shown(r['case'])}: {r['recordings']} recording(s), {r['status']}"
            + (f", ended {when(r['ended_at'])}, due {when(r['due'])}" if r["ended_at"] else "")
            + (f", filed {when(r['filed_at'])} by {shown(r['filed_by'])}" if r["filed_at"]
               else ""))
