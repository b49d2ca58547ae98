"""`evidock device ...` and `evidock officer ...`: the custodians' commands."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from agent.cliutil import emit_json, out, say, settings_of
from agent.station import open_reader, open_station
from ingest.explain import Role
from storage.models import Device, Officer
from storage.registry import Registry
from storage.text import shown

device_app = typer.Typer(no_args_is_help=True, help="Register and maintain recorders.")
officer_app = typer.Typer(no_args_is_help=True, help="Officers recorders are assigned to.")

By = Annotated[str, typer.Option("--by", help="who is making the change")]

Json = Annotated[bool, typer.Option("--json")]


def _registry(ctx: typer.Context, *, create: bool = True) -> Registry:
    """The registry; the listing commands pass ``create=False``: read-only, no key needed."""
    settings = settings_of(ctx)
    return Registry(open_station(settings).catalog if create else open_reader(settings).catalog)


def device_dict(d: Device) -> dict[str, Any]:
    return {"device": d.device_no, "usb_serial": d.usb_serial, "model": d.model,
            "officer": d.officer_no, "status": d.status,
            "registered_at": d.registered_at.isoformat() if d.registered_at else None,
            "retired_at": d.retired_at.isoformat() if d.retired_at else None,
            "first_seen": d.first_seen.isoformat(), "last_seen": d.last_seen.isoformat()}


def officer_dict(o: Officer) -> dict[str, Any]:
    return {"officer": o.officer_no, "name": o.name, "unit_no": o.unit_no,
            "unit_name": o.unit_name, "role": o.role}


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


@device_app.command("list")
def list_devices(ctx: typer.Context, as_json: Json = False) -> None:
    """Every recorder the station knows, registered or only seen."""
    rows = [device_dict(d) for d in _registry(ctx, create=False).devices()]
    emit_json(rows) if as_json else _table(rows)


@device_app.command("show")
def show_device(ctx: typer.Context,
                device_no: Annotated[str, typer.Argument(metavar="DEVICE_NO")],
                as_json: Json = False) -> None:
    """One recorder."""
    row = device_dict(_registry(ctx, create=False).device(device_no))
    if as_json:
        emit_json(row)
    else:
        for key, value in row.items():
            say(f"{key:14} {shown(value) if isinstance(value, str) else value}")


@officer_app.command("add")
def add_officer(ctx: typer.Context,
                officer_no: Annotated[str, typer.Argument(metavar="OFFICER_NO")], by: By,
                name: Annotated[str, typer.Option(help="full name")],
                unit_no: Annotated[str | None, typer.Option(help="unit number")] = None,
                unit_name: Annotated[str | None, typer.Option(help="unit name")] = None,
                role: Annotated[Role, typer.Option(
                    help="who they are: custodians and supervisors sign for storage "
                         "faults and device custody")] = Role.OFFICER) -> None:
    """Add (or update) an officer; only added officers can sign statements."""
    o = _registry(ctx).add_officer(Officer(officer_no=officer_no, name=name, unit_no=unit_no,
                                           unit_name=unit_name, role=str(role)), by=by)
    say(f"officer {o.officer_no} {o.name} ({o.role})")


@officer_app.command("list")
def list_officers(ctx: typer.Context, as_json: Json = False) -> None:
    """Every officer."""
    rows = [officer_dict(o) for o in _registry(ctx, create=False).officers()]
    emit_json(rows) if as_json else _table(rows)
