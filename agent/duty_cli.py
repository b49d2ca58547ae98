"""`evidock duty declare|list` and `evidock overdue` (R2)."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cliutil import emit_json, moment_of, say, settings_of, when
from agent.station import open_reader, open_station
from storage.errors import UsageError
from storage.terms import now_utc
from storage.text import shown

if TYPE_CHECKING:
    from storage.models import Duty

duty_app = typer.Typer(no_args_is_help=True, help=(
    "Remote and continuous duties (R2): recordings made during one are due within the "
    "storage window from the officer's return."))

Json = Annotated[bool, typer.Option("--json")]
When = Annotated[str, typer.Option(metavar="TIME", help="ISO time; without a zone, the "
                                   "station's")]


def duty_dict(d: "Duty") -> dict[str, Any]:
    return {"id": d.id, "officer": d.officer_no, "from": d.starts_at.isoformat(),
            "until": d.ends_at.isoformat(), "returned_at": d.returned_at.isoformat(),
            "reason": d.reason, "declared_at": d.declared_at.isoformat(),
            "declared_by": d.declared_by}


@duty_app.command("declare")
def declare(ctx: typer.Context,
            officer: Annotated[str, typer.Option(help="the officer's number")],
            starts: Annotated[str, typer.Option("--from", metavar="TIME",
                                                help="when the duty began")],
            until: Annotated[str, typer.Option(metavar="TIME", help="when it ended")],
            returned_at: Annotated[str, typer.Option(
                metavar="TIME", help="when the officer was back at the unit")],
            reason: Annotated[str, typer.Option(help="what the duty was")],
            by: Annotated[str | None, typer.Option(help="who declares it")] = None) -> None:
    """Declare a remote or continuous duty (before or after its recordings are docked)."""
    from storage.duties import Duties
    from storage.models import Duty

    settings = settings_of(ctx)
    times = [moment_of(t, settings, upper=False) for t in (starts, until, returned_at)]
    if any(t is None or t.year in (1, 9999) for t in times):
        raise UsageError("--from, --until and --returned-at must be real times")
    start, end, back = (t for t in times if t is not None)
    station = open_station(settings, create=False)
    try:
        duty = Duties(station.catalog).declare(Duty(
            officer_no=officer, starts_at=start, ends_at=end, returned_at=back,
            reason=reason.strip(), declared_at=now_utc(), declared_by=by))
    finally:
        station.close()
    say(f"duty {duty.id} of officer {shown(officer)} declared: recordings made during it are "
        f"due {settings.deadline_hours:g} h after {when(back)}")


@duty_app.command("list")
def list_duties(ctx: typer.Context,
                officer: Annotated[str | None, typer.Option(help="one officer")] = None,
                as_json: Json = False) -> None:
    """Declared duties, oldest first."""
    from storage.duties import Duties

    rows = [duty_dict(d) for d in Duties(open_reader(settings_of(ctx)).catalog).list(officer)]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        say(f"#{r['id']} officer {shown(r['officer'])} {when(r['from'])} .. "
            f"{when(r['until'])}, back {when(r['returned_at'])}: {shown(r['reason'], limit=200)}")


def overdue(ctx: typer.Context, as_json: Json = False) -> None:
    """Late recordings whose explanation is not completed, and recorders not docked within
    the storage window (R2)."""
    from ingest.overdue import late_unexplained, undocked

    settings = settings_of(ctx)
    catalog = open_reader(settings).catalog
    late = late_unexplained(catalog, settings.deadline_hours)
    silent = undocked(catalog, now_utc(), settings.deadline_hours)
    data: dict[str, list[dict[str, Any]]] = {
        "late_recordings": [{
            "recording": x.recording.id, "device": x.recording.device_no,
            "officer": x.recording.officer_no, "deadline": x.recording.deadline.isoformat(),
            "ingested_at": x.recording.ingested_at.isoformat(),
            "explanation": x.explanation.id if x.explanation else None} for x in late],
        "undocked_recorders": [{
            "device": u.device.device_no, "officer": u.device.officer_no,
            "last_docked": u.device.last_seen.isoformat(), "hours": round(u.hours, 1)}
            for u in silent],
    }
    if as_json:
        emit_json(data)
        return
    say(f"late recordings with no completed explanation: {len(late) or 'none'}")
    for r in data["late_recordings"]:
        say(f"  recording {r['recording']} device {shown(r['device'])} officer "
            f"{shown(r['officer'])}: due {when(r['deadline'])}, stored {when(r['ingested_at'])}"
            + (f"; explanation #{r['explanation']} is open" if r["explanation"] else
               "; no explanation recorded"))
    say(f"recorders not docked for more than {settings.deadline_hours:g} h: "
        f"{len(silent) or 'none'}")
    for r in data["undocked_recorders"]:
        say(f"  {shown(r['device'])} (officer {shown(r['officer'])}): last docked "
            f"{when(r['last_docked'])}, {r['hours']:g} h ago; whether it holds recordings is "
            "unknown (evidock keeps no shift roster)")
