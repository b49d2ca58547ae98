"""`evidock report`: statistics for supervisors and the yearly case list (R14)."""

import sys
from datetime import datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from agent.cliutil import emit_json, moment_of, out, say, settings_of, when, write_output
from agent.station import open_reader
from storage.errors import UsageError
from storage.terms import LogFilter
from storage.text import shown

if TYPE_CHECKING:
    from ingest.report import Line


class By(StrEnum):
    OFFICER = "officer"
    DEVICE = "device"
    CATEGORY = "category"
    UNIT = "unit"


def _year(year: int, zone: tzinfo | None) -> tuple[datetime, datetime]:
    """The calendar year in the station's zone (the system's when none is set)."""
    def new_year(y: int) -> datetime:
        return datetime(y, 1, 1, tzinfo=zone) if zone else datetime(y, 1, 1).astimezone()
    return new_year(year), new_year(year + 1)


def report(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option("--from", metavar="TIME",
                                              help="recordings started at or after")] = None,
    until: Annotated[str | None, typer.Option("--to", metavar="TIME",
                                              help="... and before (ISO time)")] = None,
    year: Annotated[int | None, typer.Option(min=2000, max=2999,
                                             help="the calendar year (instead of --from/--to)")]
    = None,
    by: Annotated[By, typer.Option(help="one line per officer, device, category or unit")]
    = By.OFFICER,
    cases: Annotated[bool, typer.Option("--cases", help="with --year: the yearly list of "
                                        "cases, due by 31 January")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
    html_out: Annotated[Path | None, typer.Option("--html", metavar="FILE",
                                                  help="an HTML report with charts")] = None,
) -> None:
    """Recordings, hours, bytes, lateness, explanations, interruptions, device faults."""
    from ingest.report import build, to_csv, year_cases
    from storage.models import Case, DeviceNote, Explanation

    settings = settings_of(ctx)
    if sum([as_json, as_csv, html_out is not None]) > 1:
        raise UsageError("give one of --json, --csv, --html")
    if year is not None and (since or until):
        raise UsageError("give --year or --from/--to, not both")
    if cases and year is None:
        raise UsageError("--cases needs --year")
    if html_out is not None and html_out.exists():
        raise UsageError(f"{html_out} exists; evidock never overwrites a report")
    start, end = (_year(year, settings.zone) if year is not None else
                  (moment_of(since, settings, upper=False), moment_of(until, settings,
                                                                       upper=True)))
    if start is not None and end is not None and start >= end:
        raise UsageError("--from must be before --to")
    catalog = open_reader(settings).catalog
    if cases:
        assert year is not None
        found = year_cases(catalog.recordings(), catalog.rows(Case), year, settings.zone)
        rows: list[dict[str, Any]] = [{
            "case": c.case_no, "recordings": c.recordings, "first": c.first.isoformat(),
            "last": c.last.isoformat(),
                 "ended_at": c.ended_at.isoformat() if c.ended_at else None,
                 "filed_at": c.filed_at.isoformat() if c.filed_at else None} for c in found]
        if as_json:
            emit_json(rows)
        elif as_csv:
            _csv_rows(rows)
        else:
            say(f"cases of {year}: {len(rows)}")
            for r in rows:
                say(f"  {shown(r['case'])}: {r['recordings']} recording(s), "
                    f"{when(r['first'])[:10]} .. {when(r['last'])[:10]}"
                    + (f", ended {when(r['ended_at'])[:10]}" if r["ended_at"] else
                       ", not closed")
                    + (f", filed {when(r['filed_at'])[:10]}" if r["filed_at"] else ""))
        return
    made = build(str(by), catalog.recordings(LogFilter(since=start, until=end)),
                 catalog.rows(Explanation), catalog.rows(DeviceNote), start, end)
    period = (f"{when(start)} .. {when(end)}" if start and end else
              f"from {when(start)}" if start else f"before {when(end)}" if end else
              "everything")
    if as_json:
        emit_json({"by": made.by, "from": start.isoformat() if start else None,
                   "to": end.isoformat() if end else None,
                   "lines": [x.to_dict() for x in made.lines], "total": made.total.to_dict()})
    elif as_csv:
        sys.stdout.write(to_csv(made))
    elif html_out is not None:
        from agent.report_html import html_report

        write_output(ctx, settings, html_out, html_report(made, period).encode("utf-8"))
        say(f"report written to {html_out}")
    else:
        out.print(_table(made.by, [*made.lines, made.total]))


def _csv_rows(rows: list[dict[str, Any]]) -> None:
    import csv

    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["case"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _table(by: str, lines: "list[Line]") -> Table:
    table = Table()
    columns = list(lines[0].to_dict()) if lines else []
    table.add_column(by)
    for column in columns[1:]:
        table.add_column(column.replace("_", " "), justify="right")
    for line in lines:
        values = line.to_dict()
        table.add_row(Text(shown(line.group)), *(Text(
            f"{v:.1%}" if k == "late_rate" else f"{v:,}" if isinstance(v, int) else f"{v:g}")
            for k, v in list(values.items())[1:]))
    return table
