"""`evidock device ...` and `evidock officer ...`: the custodians' commands."""

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from agent.cliutil import emit_json, out, say, settings_of, when
from agent.render import TIME_FIELDS
from agent.station import open_reader, open_station
from ingest.explain import Role
from storage.errors import UsageError
from storage.text import shown

if TYPE_CHECKING:
    from storage.models import Device, DeviceNote, DockSession, Officer
    from storage.registry import Registry

device_app = typer.Typer(no_args_is_help=True, help="Register and maintain recorders.")
officer_app = typer.Typer(no_args_is_help=True, help="Officers recorders are assigned to.")

By = Annotated[str, typer.Option("--by", help="who is making the change")]

Json = Annotated[bool, typer.Option("--json")]


def _registry(ctx: typer.Context, *, create: bool = True) -> "Registry":
    """The registry; the listing commands pass ``create=False``: read-only, no key needed."""
    from storage.registry import Registry

    settings = settings_of(ctx)
    return Registry(open_station(settings).catalog if create else open_reader(settings).catalog)


def device_dict(d: "Device") -> dict[str, Any]:
    return {"device": d.device_no, "usb_serial": d.usb_serial, "model": d.model,
            "officer": d.officer_no, "status": d.status, "checked_out_to": d.checked_out_to,
            "registered_at": d.registered_at.isoformat() if d.registered_at else None,
            "retired_at": d.retired_at.isoformat() if d.retired_at else None,
            "first_seen": d.first_seen.isoformat(), "last_seen": d.last_seen.isoformat()}


def note_dict(n: "DeviceNote") -> dict[str, Any]:
    return {"id": n.id, "at": n.at.isoformat(), "kind": n.kind, "note": n.note,
            "officer": n.officer_no, "by": n.by}


def dock_dict(d: "DockSession") -> dict[str, Any]:
    return {"session": d.session_id,
            "started_at": d.started_at.isoformat() if d.started_at else None,
            "finished_at": d.finished_at.isoformat() if d.finished_at else None,
            "battery_pct": d.battery_pct, "clock_drift_s": d.clock_drift_s,
            "storage_free": d.storage_free, "files_stored": d.files_stored,
            "interrupted": d.interrupted,
            "after": json.loads(d.ready_json) if d.ready_json else None}


def officer_dict(o: "Officer") -> dict[str, Any]:
    return {"officer": o.officer_no, "name": o.name, "unit_no": o.unit_no,
            "unit_name": o.unit_name, "role": o.role, "login": o.login}


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        say("(none)")
        return
    table = Table()
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        # Text, not str: a name holding "[red]" is shown as typed, not taken as rich markup
        table.add_row(*(Text("" if v is None else shown(str(v))) for v in row.values()))
    out.print(table)


@device_app.command("register")
def register(ctx: typer.Context, device_no: Annotated[str, typer.Argument(metavar="DEVICE_NO")],
             by: By, usb_serial: Annotated[str | None, typer.Option(
                 help="the recorder's USB serial number, as udev reports it")] = None,
             model: Annotated[str | None, typer.Option(help="a configured model name")] = None,
             officer: Annotated[str | None, typer.Option(help="assigned officer")] = None,
             ) -> None:
    """Register a recorder (or complete its registration)."""
    settings = settings_of(ctx)
    if model is not None and settings.model_named(model) is None:
        known = ", ".join(m.name for m in settings.models) or "none"
        raise UsageError(f"model {model!r} is not configured (configured: {known}); add it "
                         "to the settings' models first")
    d = _registry(ctx).register(device_no, usb_serial=usb_serial, model=model,
                                officer_no=officer, by=by)
    say(f"registered {d.device_no} (USB serial {d.usb_serial}, model {d.model})")


@device_app.command("assign")
def assign(ctx: typer.Context, device_no: Annotated[str, typer.Argument(metavar="DEVICE_NO")],
           officer_no: Annotated[str, typer.Argument(metavar="OFFICER_NO")], by: By) -> None:
    """Assign a recorder to an officer."""
    d = _registry(ctx).assign(device_no, officer_no, by=by)
    say(f"{d.device_no} is assigned to {d.officer_no}")


@device_app.command("retire")
def retire(ctx: typer.Context, device_no: Annotated[str, typer.Argument(metavar="DEVICE_NO")],
           by: By, reason: Annotated[str, typer.Option(help="why it leaves service")]) -> None:
    """Take a recorder out of service (its recordings stay)."""
    d = _registry(ctx).retire(device_no, by=by, reason=reason)
    say(f"{d.device_no} retired")


Note = Annotated[str, typer.Option(help="what was done or found")]
DeviceNo = Annotated[str, typer.Argument(metavar="DEVICE_NO")]


class Maintenance(StrEnum):
    CHECK = "check"
    REPAIR = "repair"
    FAULT = "fault"
    FIRMWARE = "firmware"


@device_app.command("maintain")
def maintain(ctx: typer.Context, device_no: DeviceNo, kind: Annotated[
        Maintenance, typer.Option(help="what kind of entry")], note: Note, by: By) -> None:
    """Add a check, repair, fault or firmware entry to a recorder's log."""
    entry = _registry(ctx).maintain(device_no, kind=str(kind), note=note, by=by)
    say(f"{device_no}: {entry.kind} logged (entry {entry.id})")


@device_app.command("out-of-service")
def out_of_service(ctx: typer.Context, device_no: DeviceNo, by: By, reason: Annotated[
        str, typer.Option(help="why (a fault, a repair)")]) -> None:
    """Take a recorder out of service until `in-service` (docked, it is still ingested)."""
    _registry(ctx).out_of_service(device_no, reason=reason, by=by)
    say(f"{device_no} is out of service")


@device_app.command("in-service")
def in_service(ctx: typer.Context, device_no: DeviceNo, by: By, note: Note) -> None:
    """Put a recorder back in service."""
    _registry(ctx).in_service(device_no, note=note, by=by)
    say(f"{device_no} is back in service")


@device_app.command("check-out")
def check_out(ctx: typer.Context, device_no: DeviceNo, by: By, officer: Annotated[
        str, typer.Option(help="the officer who takes it")], note: Annotated[
        str, typer.Option(help="e.g. what was checked")] = "") -> None:
    """Hand a recorder to an officer for a shift."""
    _registry(ctx).check_out(device_no, officer_no=officer, by=by, note=note)
    say(f"{device_no} checked out to {officer}")


@device_app.command("check-in")
def check_in(ctx: typer.Context, device_no: DeviceNo, by: By, note: Annotated[
        str, typer.Option(help="its state when returned")] = "") -> None:
    """Take a recorder back from the officer who has it."""
    entry = _registry(ctx).check_in(device_no, by=by, note=note)
    say(f"{device_no} checked in from {entry.officer_no}")


@device_app.command("list")
def list_devices(ctx: typer.Context, as_json: Json = False) -> None:
    """Every recorder the station knows, registered or only seen."""
    rows = [device_dict(d) for d in _registry(ctx, create=False).devices()]
    emit_json(rows) if as_json else _table(rows)


@device_app.command("show")
def show_device(ctx: typer.Context,
                device_no: Annotated[str, typer.Argument(metavar="DEVICE_NO")],
                as_json: Json = False) -> None:
    """One recorder, with its custody and maintenance log and its last docks."""
    registry = _registry(ctx, create=False)
    row = device_dict(registry.device(device_no))
    row["assignments"] = [{"at": a.at.isoformat(), "officer": a.officer, "by": a.by,
                           "how": a.how, "leaf": a.seq} for a in registry.assignments(device_no)]
    row["log"] = [note_dict(n) for n in registry.notes(device_no)]
    row["docks"] = [dock_dict(d) for d in registry.catalog.sessions_of(device_no, limit=10)]
    if as_json:
        emit_json(row)
        return
    for key, value in row.items():
        if key not in ("log", "docks", "assignments"):
            say(f"{key:14} " + (when(value) if key in TIME_FIELDS and value else
                                shown(value) if isinstance(value, str) else str(value)))
    say(f"assignments ({len(row['assignments']) or 'none'}):")
    for a in row["assignments"]:
        say(f"  {when(a['at'])} to officer {shown(a['officer'])} by {shown(a['by'] or '?')} "
            f"({a['how']}, ledger leaf {a['leaf']})")
    say(f"log ({len(row['log']) or 'empty'}):")
    for n in row["log"]:
        say(f"  {when(n['at'])} {n['kind']:14} by {shown(n['by'])}"
            + (f" officer {shown(n['officer'])}" if n["officer"] else "")
            + (f": {shown(n['note'], limit=300)}" if n["note"] else ""))
    say(f"last docks ({len(row['docks']) or 'none'}):")
    for d in row["docks"]:
        say(f"  {when(d['started_at'])} battery "
            + (f"{d['battery_pct']}%" if d["battery_pct"] is not None else "unknown")
            + ", clock " + (f"{d['clock_drift_s']:+.0f} s" if d["clock_drift_s"] is not None
                            else "unknown") + f", {d['files_stored']} files stored"
            + (", interrupted" if d["interrupted"] else "")
            + _after(d["after"])
            + ("" if d["finished_at"] else ", not closed"))


def _after(ready: dict[str, Any] | None) -> str:
    """What the recorder said when asked again after the dock (ingest/readiness.py)."""
    if ready is None:
        return ""
    said = [f"battery {ready['battery_pct']}%" if ready["battery_pct"] is not None else "",
            f"{ready['storage_free']:,} bytes free" if ready["storage_free"] is not None
            else "", f"clock {ready['clock_drift_s']:+.0f} s"
            if ready["clock_drift_s"] is not None else ""]
    return "; after: " + (", ".join(s for s in said if s) or "unknown")


@officer_app.command("add")
def add_officer(ctx: typer.Context,
                officer_no: Annotated[str, typer.Argument(metavar="OFFICER_NO")], by: By,
                name: Annotated[str, typer.Option(help="full name")],
                unit_no: Annotated[str | None, typer.Option(help="unit number")] = None,
                unit_name: Annotated[str | None, typer.Option(help="unit name")] = None,
                role: Annotated[Role, typer.Option(
                    help="who they are: custodians and supervisors sign for storage "
                         "faults and device custody")] = Role.OFFICER,
                login: Annotated[str | None, typer.Option(
                    help="their account on this station (R12: officers see their own "
                         "recordings)")] = None) -> None:
    """Add (or update) an officer; only added officers can sign statements."""
    from storage.models import Officer

    o = _registry(ctx).add_officer(Officer(officer_no=officer_no, name=name, unit_no=unit_no,
                                           unit_name=unit_name, role=str(role),
                                           login=login), by=by)
    say(f"officer {o.officer_no} {o.name} ({o.role})")


@officer_app.command("list")
def list_officers(ctx: typer.Context, as_json: Json = False) -> None:
    """Every officer."""
    rows = [officer_dict(o) for o in _registry(ctx, create=False).officers()]
    emit_json(rows) if as_json else _table(rows)
