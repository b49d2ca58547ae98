"""`evidock explain ...`: list, show, complete, correct and print written explanations."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent import render
from agent.access import own_officers
from agent.cliutil import emit_json, moment_of, say, settings_of, when, write_output
from agent.render import TIME_FIELDS
from agent.station import open_reader, open_station
from ingest.explain import Reason, check_signers
from storage.errors import UsageError
from storage.terms import LogFilter, now_utc
from storage.text import shown

if TYPE_CHECKING:
    from agent.settings import Settings
    from storage.catalog import Catalog
    from storage.explanations import ExplanationFilter, Explanations
    from storage.models import Explanation

explain_app = typer.Typer(no_args_is_help=True, help=(
    "Written explanations (R2, R3, R4...): evidock writes the facts, officers complete "
    "them with a reason and a signed statement."))

Json = Annotated[bool, typer.Option("--json")]
Id = Annotated[int, typer.Argument(metavar="ID", help="the explanation's number")]
_SHOW_LIMIT = 4000


def _reader(ctx: typer.Context) -> "tuple[Explanations, Settings]":
    from storage.explanations import Explanations

    settings = settings_of(ctx)
    return Explanations(open_reader(settings).catalog), settings


def _visible(ctx: typer.Context, catalog: "Catalog") -> set[int] | None:
    """The recordings whose explanations the caller may see; None: all (R12: an
    officer sees those about their own recordings)."""
    own = own_officers(ctx, catalog)
    if own is None:
        return None
    return {r.id for o in own for r in catalog.recordings(LogFilter(officer=o))
            if r.id is not None}


def _about_visible(exp: "Explanation", visible: set[int] | None) -> bool:
    return visible is None or bool({exp.recording_id, exp.related_recording_id} & visible)


def _get(ctx: typer.Context, book: "Explanations", explanation_id: int) -> "Explanation":
    exp = book.get(explanation_id)
    if not _about_visible(exp, _visible(ctx, book.catalog)):
        raise UsageError(f"officers see only explanations about their own recordings; "
                         f"explanation {explanation_id} is not about one of theirs")
    return exp


def list_explanations(ctx: typer.Context, flt: "ExplanationFilter", as_json: bool) -> None:
    book, _ = _reader(ctx)
    visible = _visible(ctx, book.catalog)
    rows = [render.explanation_dict(e) for e in book.list(flt) if _about_visible(e, visible)]
    if as_json:
        emit_json(rows)
        return
    for r in rows:  # recorder text escaped: one explanation is always these two lines
        where = shown(r["source_path"]) if r["source_path"] else "(recorder)"
        say(f"#{r['id']} {when(r['occurred_at'])} [{shown(r['rule'])} {shown(r['kind'])}] "
            f"{shown(r['status'])} device {shown(r['device'])} {where}: "
            f"{shown(r['error'], limit=_SHOW_LIMIT)}")
        say(f"    -> {shown(r['action'], limit=_SHOW_LIMIT)}")


@explain_app.command("list")
def list_cmd(
    ctx: typer.Context,
    open_only: Annotated[bool, typer.Option("--open", help="only those not completed")] = False,
    officer: Annotated[str | None, typer.Option(help="officer number")] = None,
    device: Annotated[str | None, typer.Option(help="device number")] = None,
    rule: Annotated[str | None, typer.Option(help="e.g. R2, R3, R4")] = None,
    kind: Annotated[str | None, typer.Option(help="e.g. late_ingest")] = None,
    session: Annotated[str | None, typer.Option(help="one dock session")] = None,
    since: Annotated[str | None, typer.Option(help="occurred at or after (ISO time)")] = None,
    as_json: Json = False,
) -> None:
    """Explanations, oldest first."""
    from storage.explanations import ExplanationFilter

    settings = settings_of(ctx)
    flt = ExplanationFilter(open_only=open_only, officer=officer, device=device, rule=rule,
                            kind=kind, session=session,
                            since=moment_of(since, settings, upper=False))
    list_explanations(ctx, flt, as_json)


def _document_data(book: "Explanations", exp: "Explanation") -> tuple[dict[str, Any],
                                                                   list[dict[str, Any]]]:
    data = render.explanation_dict(exp)
    officer = _officer_of(book, exp)
    data["officer"] = officer
    statements = book.statements(exp.id or 0)
    numbers = [no for st in statements for no in st.signers()] + ([officer] if officer else [])
    officers = book.officers(numbers)
    data["officer_name"] = officers[officer].name if officer in officers else None
    return data, [render.statement_dict(st, officers) for st in statements]


def _officer_of(book: "Explanations", exp: "Explanation") -> str | None:
    catalog = book.catalog
    if exp.recording_id is not None:
        return catalog.recording(exp.recording_id).officer_no
    dock = catalog.session(exp.session_id) if exp.session_id else None
    return dock.officer_no if dock else None


@explain_app.command("show")
def show_cmd(ctx: typer.Context, explanation_id: Id, as_json: Json = False) -> None:
    """One explanation: the facts evidock recorded and every statement on it."""
    book, _ = _reader(ctx)
    data, statements = _document_data(book, _get(ctx, book, explanation_id))
    data["statements"] = statements
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        if key != "statements":
            say(f"{key:13} " + ("-" if value is None else when(value) if key in TIME_FIELDS
                                else shown(str(value), limit=_SHOW_LIMIT)))
    for st in statements:
        signed = ", ".join(f"{s['officer']} {s['name'] or ''}".strip() + f" ({s['role']})"
                           for s in st["signers"])
        say(f"statement #{st['id']} {when(st['made_at'])} reason {st['reason']}"
            + (f", corrects #{st['corrects']}" if st["corrects"] else "")
            + f"; signed by {shown(signed)}")
        say(f"    {shown(st['text'], limit=_SHOW_LIMIT)}")


Signed = Annotated[list[str], typer.Option(
    "--signed-by", metavar="OFFICER_NO",
    help="a registered officer who signs (repeat: R4 needs two or more)")]
ReasonOpt = Annotated[Reason, typer.Option(help="why it happened")]
Text = Annotated[str, typer.Option("--statement", help="what happened, in the officers' words")]


def _state(ctx: typer.Context, explanation_id: int, reason: Reason, statement: str,
           signed_by: list[str], *, corrects: bool) -> None:
    from storage.explanations import Explanations

    station = open_station(settings_of(ctx), create=False)
    try:
        _get(ctx, Explanations(station.catalog), explanation_id)
        made = Explanations(station.catalog).complete(
            explanation_id, reason=str(reason), text=statement, signers=signed_by,
            check=check_signers, at=now_utc(), corrects=corrects)
    finally:
        station.close()
    verb = "corrected by" if corrects else "completed with"
    say(f"explanation {explanation_id} {verb} statement {made.id}, signed by "
        f"{shown(', '.join(signed_by))}")


@explain_app.command("complete")
def complete_cmd(ctx: typer.Context, explanation_id: Id, reason: ReasonOpt, statement: Text,
                 signed_by: Signed) -> None:
    """Complete an open explanation: the reason, the statement, who signs (once only)."""
    _state(ctx, explanation_id, reason, statement, signed_by, corrects=False)


@explain_app.command("correct")
def correct_cmd(ctx: typer.Context, explanation_id: Id, reason: ReasonOpt, statement: Text,
                signed_by: Signed) -> None:
    """Correct a completed explanation with a new statement linked to the last one."""
    _state(ctx, explanation_id, reason, statement, signed_by, corrects=True)


@explain_app.command("print")
def print_cmd(ctx: typer.Context, explanation_id: Id,
              output: Annotated[Path, typer.Option(
                  "--out", "-o", help="FILE.pdf or FILE.html")]) -> None:
    """The printable written explanation (情况说明) for the case file, as PDF or HTML."""
    from agent import pdf
    from agent.settings import local_zone_name
    from ingest.explain_doc import html_document

    suffix = output.suffix.lower()
    if suffix not in (".pdf", ".html"):
        raise UsageError(f"--out must name a .pdf or .html file, not {output.name!r}")
    if output.exists():
        raise UsageError(f"{output} exists; evidock never overwrites a document")
    book, settings = _reader(ctx)
    data, statements = _document_data(book, _get(ctx, book, explanation_id))
    if suffix == ".pdf":
        pdf.require()
    document = html_document(data, statements, local_zone_name(settings.timezone))
    write_output(ctx, settings, output, pdf.html_to_pdf(document) if suffix == ".pdf"
                 else document.encode("utf-8"))
    say(f"explanation {explanation_id} written to {output}")
