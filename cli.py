"""The evidock command line: thin commands over agent/, ingest/ and storage/.

Data goes to stdout, logs to stderr. Exit codes: 0 fine, 1 something failed
or a problem was found, 2 bad usage or invalid settings.

Start-up is part of every command (issue 11: `log`, `show`, `status` under 0.3 s): heavy
modules are imported by the commands that use them, and this module and agent/*_cli.py
keep their annotations as objects (no ``from __future__ import annotations``): typer
reads every command's signature at each start, and string annotations cost it an eval
each (12 ms of cli.py's 40, measured).
"""

import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from agent import access, render
from agent.access_cli import access_app
from agent.case_cli import case_app
from agent.cliutil import (
    State,
    caller_of,
    emit_json,
    finish,
    moment_of,
    out,
    output_path,
    say,
    settings_of,
    setup_logging,
    when,
)
from agent.duty_cli import duty_app, overdue
from agent.explain_cli import explain_app, list_explanations
from agent.installed import SYSTEM_CONFIG
from agent.owner import no_access
from agent.progress import SignalStop, TerminalProgress, ignore_signals
from agent.registry_cli import device_app, officer_app
from agent.report_cli import report
from agent.retention_cli import hold_app, purge
from agent.station import (
    key_file_ids,
    open_reader,
    open_reads,
    open_station,
    require_store,
    trusted_keys,
)
from agent.status import NotRunning, read_status
from ingest.dock import IngestContext, Summary
from ingest.explain import needs_notice
from storage.durable import write_atomic
from storage.errors import CatalogUnreachable, EvidockError, NotFound, UsageError
from storage.terms import LogFilter
from storage.text import shown

if TYPE_CHECKING:
    from devices.volume import FolderVolume
    from ingest.plan import Identity

# The catalog's modules (SQLAlchemy), the keys' (cryptography), the settings' (pydantic),
# the dock's and the verifier's are imported in the commands that use them: a command
# loads what it needs, `--help` none of them (issue 11; tests/unit/test_cli_imports.py).

log = logging.getLogger("evidock")

# What a command that catches SIGTERM and Ctrl-C leaves for them when it is done: None
# (put back what was there) in-process; SIG_IGN in the program (main), whose exit code is
# then decided and must not be changed by a late signal on the way out.
_SIGNALS_AFTER_COMMAND: Any = None
# The SIGINT handler the program (agent/entry.py) puts back when a command is invoked.
_SIGINT_AT_INVOKE: Any = None

_MAX_ID = 2**63 - 1  # the largest id SQLite (and most databases) can hold
_SHOW_LIMIT = 4000  # characters of one recorder-supplied text in `show` and `explanations`


class EvidockGroup(TyperGroup):
    """Catches evidock's own errors once, for every command; Ctrl-C exits 130."""

    def invoke(self, ctx: Any) -> Any:  # click.Context, which typer vendors
        if _SIGINT_AT_INVOKE is not None:  # the program: Ctrl-C is Python's from here on
            signal.signal(signal.SIGINT, _SIGINT_AT_INVOKE)
        try:
            return super().invoke(ctx)
        except EvidockError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            typer.echo(f"evidock: error: {exc}", err=True)
            ctx.exit(2 if isinstance(exc, UsageError) else 1)
        except PermissionError as exc:  # a file of the station this user may not use
            if ctx.find_root().params.get("debug"):
                raise
            typer.echo(f"evidock: error: {no_access(exc.filename)}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:  # (ingest and the daemon catch SIGINT themselves)
            if ctx.find_root().params.get("debug"):
                raise
            typer.echo("evidock: stopped by Ctrl-C", err=True)
            ctx.exit(128 + signal.SIGINT)


app = typer.Typer(cls=EvidockGroup, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Docking-station ingest for body-worn recorders.")
config_app = typer.Typer(no_args_is_help=True, help="Show and check the settings.")
keys_app = typer.Typer(no_args_is_help=True, help="The station signing key.")
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.add_typer(device_app, name="device")
app.add_typer(officer_app, name="officer")
app.add_typer(explain_app, name="explain")
app.add_typer(duty_app, name="duty")
app.add_typer(case_app, name="case")
app.add_typer(hold_app, name="hold")
app.add_typer(access_app, name="access")
app.command("overdue")(overdue)
app.command("purge")(purge)
app.command("report")(report)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="settings file (TOML); default $EVIDOCK_CONFIG or "
        "/etc/evidock/evidock.toml")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    utc: Annotated[bool, typer.Option("--utc", help="show times in UTC, not in the "
                                      "station's zone (JSON output is always UTC)")] = False,
) -> None:
    setup_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    if not debug:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    ctx.obj = State(config, utc)


# config ----------------------------------------------------------------------

@config_app.command("show")
def config_show(ctx: typer.Context,
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the settings in effect, with the paths derived from them."""
    settings = settings_of(ctx)
    data = settings.model_dump(mode="json")
    for model in data["models"]:  # recorders' command-port passwords are not shown either
        model["password"] = "**********" if model["password"] else ""
    data.update(catalog_url=settings.catalog_url, vault_dir=str(settings.vault_dir),
                key_file=str(settings.key_file), station_zone=settings.station_zone_name,
                times_shown_in="UTC" if ctx.ensure_object(State).utc
                else settings.station_zone_name)
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        out.print(f"{key} = {json.dumps(value, ensure_ascii=False)}", highlight=False)


@config_app.command("validate")
def config_validate(ctx: typer.Context) -> None:
    """Check the settings file and environment; exit 2 with the problems if invalid."""
    from agent.settings import config_path

    state: State = ctx.ensure_object(State)
    path = config_path(state.config, os.environ)
    settings_of(ctx).catalog_password()  # a password file that cannot be read is a problem
    out.print(f"settings are valid ({path or 'built-in defaults'})", highlight=False)


@config_app.command("systemd")
def config_systemd(
    ctx: typer.Context,
    write: Annotated[bool, typer.Option(
        "--write", help="write them (then: systemctl daemon-reload; systemctl restart "
        "evidock) instead of printing them")] = False,
    root: Annotated[Path, typer.Option(help="the folder of the units' drop-ins")] = Path(
        "/etc/systemd/system"),
) -> None:
    """The systemd drop-ins a site station needs: its catalog server's address, a vault
    outside /var/lib/evidock (nothing when the shipped units suffice)."""
    from agent.site_unit import dropins, write_dropins

    settings = settings_of(ctx)
    made = dropins(settings)
    if not made:
        out.print("the shipped units need nothing more for these settings", highlight=False)
        return
    if not write:
        for unit, text in made.items():
            out.print(f"# {root / (unit + '.d')}/50-evidock-site.conf", highlight=False)
            out.print(text, highlight=False, markup=False)
        return
    try:
        for path in write_dropins(settings, root):
            out.print(f"wrote {path}", highlight=False)
    except OSError as exc:
        raise UsageError(f"cannot write the drop-ins under {root}: {exc.strerror or exc}") \
            from exc


# keys ------------------------------------------------------------------------

@keys_app.command("show")
def keys_show(ctx: typer.Context,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The station key id and public key (the key is made on first use)."""
    from storage.keys import load_or_create

    settings = settings_of(ctx)
    key = load_or_create(settings.key_file)
    data = {"key_id": key.key_id, "path": str(settings.key_file), "public_key": key.public.pem()}
    if as_json:
        emit_json(data)
        return
    out.print(f"key id: {key.key_id}\nfile:   {settings.key_file}", highlight=False)
    sys.stdout.write(key.public.pem())


@keys_app.command("rotate")
def keys_rotate(ctx: typer.Context) -> None:
    """Replace the station key: the ledger records the new key, signed by old and new."""
    from ingest import custody

    settings = settings_of(ctx)
    station = open_station(settings)
    old = station.key.key_id
    new = custody.rotate(station.catalog, station.key, settings.station_id, settings.key_file)
    custody.make(station.catalog, new, settings.station_id, settings.checkpoint_outbox)
    say(f"station key rotated: {old} -> {new.key_id}; the old key is kept as "
        f"{settings.key_file}.retired-{old.split(':')[-1]}; export the new public key "
        "(`evidock keys export-public`) to every verifier")


@keys_app.command("export-public")
def keys_export_public(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here")] = None,
) -> None:
    """Write the station's public key (PEM) for auditors and other stations."""
    from storage.keys import load as load_key

    settings = settings_of(ctx)
    require_store(settings, catalog=False)  # never make a key just to export it
    pem = load_key(settings.key_file).public.pem()
    if output is None:
        sys.stdout.write(pem)
        return
    try:
        with output.open("x", encoding="ascii") as handle:
            handle.write(pem)
    except FileExistsError as exc:
        raise UsageError(f"{output} exists; not overwriting it") from exc
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from exc


# ingest ----------------------------------------------------------------------

def _dock(station: IngestContext, volume: "FolderVolume", given: "Identity",
          stop: SignalStop, show_progress: bool) -> Summary:
    """Dock the folder; a signal caught by ``stop`` ends it cleanly."""
    from devices.source import FolderSource
    from ingest.pipeline import Dock

    source = FolderSource(volume)
    if show_progress and sys.stderr.isatty():
        with TerminalProgress() as bar:
            stop.inner = bar
            return Dock(station, source, given=given, progress=stop).run()
    return Dock(station, source, given=given, progress=stop).run()


def _print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        emit_json(render.summary_dict(summary))
    else:
        for line in render.summary_lines(summary):
            out.print(line, highlight=False, markup=False)


@app.command()
def ingest(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="a mounted recorder volume or any folder")],
    device: Annotated[str | None, typer.Option(
        help="device number where neither the recorder nor its file names give one")] = None,
    officer: Annotated[str | None, typer.Option(
        help="officer number where the file names give none")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="summary as JSON")] = False,
) -> None:
    """Copy every recording on PATH into the vault, signed and catalogued.

    SIGTERM or Ctrl-C stops it cleanly: the file in hand is finished or discarded, the
    dock session is closed with a true account, and the exit code is 128 + the signal.
    """
    from devices.volume import FolderVolume
    from ingest.plan import Identity

    if not path.strip():
        raise UsageError("an empty path names no folder; give the recorder volume's folder")
    volume = FolderVolume(Path(path))  # before anything is created: a wrong path changes nothing
    given = Identity(given_device=device, given_officer=officer)
    summary: Summary | None = None
    # From here to the exit, SIGTERM and Ctrl-C only set a flag: the start-up repair and
    # closing the store are never cut short, and the exit code always says why it ended.
    with SignalStop(after=_SIGNALS_AFTER_COMMAND) as stop:
        from agent.offline import open_for_dock  # (only docks load the replay)
        station = open_for_dock(settings_of(ctx), path)
        try:
            if stop.signum is None:  # else stopped before the dock began: nothing to do
                summary = _dock(station, volume, given, stop, not as_json)
        finally:
            station.close()
        if summary is not None:
            _print_summary(summary, as_json)
    if stop.signum is not None:
        if summary is None:
            log.warning("stopped by %s before the dock began; nothing was copied",
                        signal.Signals(stop.signum).name)
        raise typer.Exit(128 + stop.signum)
    assert summary is not None
    finish(summary.failed)


# queries ---------------------------------------------------------------------

def _log_table(rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(show_lines=False)
    for column in ("id", "start", "device", "officer", "file", "size", "sha256",
                   "deadline", "late", "state", "case"):
        table.add_column(column, overflow="fold")
    for r in rows:  # Text, not str: recorder text is escaped and never taken as rich markup
        table.add_row(*(Text(cell) for cell in (
            str(r["id"]), when(r["start"]), shown(r["device"]), shown(r["officer"]),
            shown(r["source_path"].rsplit("/", 1)[-1]), f"{r['size']:,}", r["sha256"][:12],
            when(r["deadline"]), "LATE" if r["late"] else "", r["state"],
            shown(r["case"]) if r["case"] else "")))
    return table


@app.command("log")
def log_cmd(
    ctx: typer.Context,
    device: Annotated[str | None, typer.Option(help="device number")] = None,
    officer: Annotated[str | None, typer.Option(help="officer number")] = None,
    since: Annotated[str | None, typer.Option(help="recorded at or after (ISO date/time)")] = None,
    until: Annotated[str | None, typer.Option(help="recorded before (ISO date/time)")] = None,
    late: Annotated[bool, typer.Option("--late", help="only late ingests")] = False,
    state: Annotated[str | None, typer.Option(help="stored or quarantined")] = None,
    case: Annotated[str | None, typer.Option(help="case number")] = None,
    limit: Annotated[int, typer.Option(
        min=0, help="show the most recent N that match (0: all)")] = 1000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    reason: access.Reason = None,
) -> None:
    """The ingest log: the recordings that match, oldest first (the most recent --limit).
    An officer sees only their own; another officer's rows listed are registered (R12)."""
    settings = settings_of(ctx)
    if state not in (None, "stored", "quarantined"):
        raise UsageError(f"--state must be 'stored' or 'quarantined', not {state!r}")
    start, end = moment_of(since, settings, upper=False), moment_of(until, settings, upper=True)
    catalog = open_reads(settings)
    own = access.own_officers(ctx, catalog)
    if own is not None:  # an officer: their own recordings only
        if officer is not None and officer not in own:
            raise UsageError(f"officers see only their own recordings; {officer} is not "
                             f"{', '.join(sorted(own)) or 'theirs (no officer has their login)'}")
        officer = officer or (min(own) if own else "")
    flt = LogFilter(device=device, officer=officer, since=start, until=end,
                    late=True if late else None, state=state, case=case)
    found = catalog.recordings(flt, limit=limit or None)
    access.guard(ctx, settings, catalog, "log", found, access.Approved(reason=reason),
                 approval_needed=False)
    if limit and len(found) == limit and (total := catalog.count_recordings(flt=flt)) > limit:
        sys.stderr.write(f"showing the {limit:,} most recent of {total:,} recordings that "
                         "match; --limit 0 shows all\n")
    rows = [render.recording_dict(r) for r in found]
    if as_json:
        emit_json(rows)
    else:
        out.print(_log_table(rows))


@app.command()
def show(ctx: typer.Context, rec_id: Annotated[int, typer.Argument(metavar="ID")],
         as_json: Annotated[bool, typer.Option("--json")] = False,
         reason: access.Reason = None, approved_by: access.ApprovedBy = None,
         approval: access.Approval = None) -> None:
    """One recording with its explanations (another officer's: with an approval, R12)."""
    settings = settings_of(ctx)
    catalog = open_reads(settings)
    if not 0 <= rec_id <= _MAX_ID:  # beyond SQLite's INTEGER: no such row can exist
        raise NotFound(f"no recording with id {rec_id}")
    rec = catalog.recording(rec_id)
    access.guard(ctx, settings, catalog, "show", [rec],
                 access.Approved(reason, approved_by, approval))
    data = render.recording_dict(rec)
    data["explanations"] = [render.explanation_dict(e)
                            for e in catalog.explanations(recording_id=rec_id)]
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():  # recorder text escaped; --json above stays exact
        text = (render.shown_json(value) if isinstance(value, dict | list)
                else when(value) if key in render.TIME_FIELDS and value
                else shown(value, limit=_SHOW_LIMIT) if isinstance(value, str) else value)
        out.print(f"{key:13} {text}", highlight=False, markup=False)


@app.command()
def explanations(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="e.g. late_ingest, dock_interrupted")] = None,
    session: Annotated[str | None, typer.Option(help="one dock session")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Written explanations, oldest first (`evidock explain list` has every filter)."""
    from storage.explanations import ExplanationFilter

    list_explanations(ctx, ExplanationFilter(kind=kind, session=session), as_json)


@app.command()
def annotate(
    ctx: typer.Context, rec_id: Annotated[int, typer.Argument(metavar="ID")],
    by: Annotated[str, typer.Option(help="who is making the change")],
    case: Annotated[str | None, typer.Option(help="case number (案由)")] = None,
    party: Annotated[str | None, typer.Option(help="party (当事人)")] = None,
    category: Annotated[str | None, typer.Option(help="enforcement category")] = None,
    reason: access.Reason = None, approved_by: access.ApprovedBy = None,
    approval: access.Approval = None,
) -> None:
    """Add case, party or category to a recording (the file itself never changes)."""
    from ingest import continuity

    if case is None and party is None and category is None:
        raise UsageError("give at least one of --case, --party, --category")
    settings = settings_of(ctx)
    station = open_station(settings, create=False)
    if not 0 <= rec_id <= _MAX_ID:  # beyond SQLite's INTEGER: no such row can exist
        raise NotFound(f"no recording with id {rec_id}")
    access.guard(ctx, settings, station.catalog, "annotate",
                 [station.catalog.recording(rec_id)],
                 access.Approved(reason, approved_by, approval))
    rec = station.catalog.annotate(rec_id, by=by, case_no=case, party=party,
                                   category=category)
    out.print(f"recording {rec.id}: case={rec.case_no} party={rec.party} "
              f"category={rec.category}", highlight=False, markup=False)
    if rec.category in settings.continuous_categories:  # R5: its gaps are violations now
        for gap, violation in continuity.escalate(station, rec):
            say(f"explanation {violation.id}: continuity_violation (R5) for the gap of "
                f"explanation {gap.id}: category {shown(rec.category)} is recorded "
                "without a break")


@app.command()
def verify(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json")] = False,
           checkpoint: Annotated[list[Path] | None, typer.Option(
               help="a signed checkpoint kept outside the station (repeatable): the "
                    "ledger must extend it")] = None) -> None:
    """Check every file, signature, ledger leaf, checkpoint and catalog row; exit 1 on any
    problem."""
    from ingest.verify import verify_store

    settings = settings_of(ctx)
    outside = []
    for path in checkpoint or []:
        try:
            outside.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise UsageError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from exc
    reader = open_reader(settings)
    held, pending, why = key_file_ids(settings)
    report = verify_store(reader.catalog, reader.vault, trusted_keys(settings),
                          station_id=settings.station_id, outside=outside, station_key=held,
                          pending_key=pending)
    if held is None:
        report.notes.append(f"whether the station key file is the pinned key: {why}")
    if as_json:
        emit_json(render.verify_dict(report))
    else:
        for line in render.verify_lines(report):
            out.print(line, highlight=False, markup=False)
    finish(not report.ok)


@app.command("checkpoint")
def checkpoint_cmd(ctx: typer.Context) -> None:
    """Sign a checkpoint of the ledger now, keep it, write it to the outbox, print it."""
    from ingest import custody

    settings = settings_of(ctx)
    station = open_station(settings, create=False)
    row = custody.make(station.catalog, station.key, settings.station_id,
                       settings.checkpoint_outbox)
    sys.stdout.write(row.note)


@app.command()
def witness(
    ctx: typer.Context,
    note: Annotated[Path, typer.Argument(help="another station's signed checkpoint")],
    log_key: Annotated[Path, typer.Option(help="that station's public key (PEM)")],
    log_station: Annotated[str, typer.Option(help="that station's id")],
    proof: Annotated[Path | None, typer.Option(
        help="`evidock prove --from OLD --to NEW` output from that station")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Cosign another station's checkpoint if it extends the last one cosigned for it."""
    from ingest import custody
    from storage.keys import PublicKey
    from storage.keys import load as load_key

    settings = settings_of(ctx)
    require_store(settings, catalog=False)
    try:
        text = note.read_bytes()
        public = PublicKey.from_pem(log_key.read_text(encoding="ascii"))
        steps = None if proof is None else [
            bytes.fromhex(h) for h in json.loads(proof.read_text())["proof"]]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the witness input: {exc}") from exc
    cosigned = custody.witness(text, public, custody.origin_of(log_station),
                               load_key(settings.key_file), settings.station_id,
                               settings.home / "witnessed", steps)
    if output is None:
        sys.stdout.write(cosigned.decode("utf-8"))
    else:
        write_atomic(output, cosigned)


@app.command()
def prove(ctx: typer.Context,
          recording: Annotated[int | None, typer.Argument(
              help="recording id: prove its ledger leaf is in the latest checkpoint")] = None,
          from_size: Annotated[int | None, typer.Option(
              "--from", help="prove the ledger of this many leaves is a prefix of ...")] = None,
          to_size: Annotated[int | None, typer.Option(
              "--to", help="... the checkpoint of this size (default: the latest)")] = None,
          leaf: Annotated[int | None, typer.Option(help="prove this leaf (by index)")] = None,
          ) -> None:
    """Inclusion or consistency proofs (RFC 6962) against signed checkpoints, as JSON."""
    from ingest import custody

    settings = settings_of(ctx)
    asked = [recording is not None, from_size is not None, leaf is not None]
    if sum(asked) != 1:
        raise UsageError("give a recording id, --leaf N, or --from N [--to M]")
    if to_size is not None and from_size is None:
        raise UsageError("--to needs --from")
    catalog = open_reader(settings).catalog
    if from_size is not None:
        emit_json(custody.consistency(catalog, from_size, to_size))
        return
    seq = leaf if leaf is not None else custody.recording_leaf(catalog, recording or 0)
    if seq < 0:
        raise UsageError("--leaf must be 0 or more")
    emit_json(custody.inclusion(catalog, seq))


@app.command()
def daemon(
    ctx: typer.Context,
    udev: Annotated[bool, typer.Option(help="watch udev for USB recorders")] = True,
) -> None:
    """Run the docking daemon: detect recorders, ingest them, until SIGTERM."""
    from agent.settings import config_path

    settings = settings_of(ctx)
    if missing := settings.unfilled():
        where = config_path(ctx.ensure_object(State).config, os.environ) or SYSTEM_CONFIG
        raise UsageError(
            f"the daemon does not start until the station is named: set {', '.join(missing)} "
            f"in {where} (or as EVIDOCK_* variables); they are written into every signed "
            "record")
    try:
        station = open_station(settings)
    except CatalogUnreachable as exc:
        if not settings.offline_docking:
            raise
        from agent.offline import open_offline

        station = open_offline(settings, str(exc))
        log.error("%s: the daemon runs on the station's offline store; once the catalog can "
                  "be reached it stops, and its unit starts it again on the catalog", exc)
    from agent.daemon import EXIT_SITE_BACK, discoveries, run_daemon

    if run_daemon(settings, station, discoveries(settings, udev=udev)):
        raise typer.Exit(EXIT_SITE_BACK)


@app.command()
def status(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Docked recorders and their live progress (from the running daemon)."""
    settings = settings_of(ctx)
    try:
        data = read_status(settings.run_dir)
    except NotRunning:  # a mistyped home is named as such, not as "not running"
        require_store(settings, key=False)  # (the key's folder may be closed to this user)
        raise
    from storage.spool import Spool

    try:  # the daemon's state needs only the run folder; the catalog may be closed to us
        data["attention"] = [render.explanation_dict(e) for e in
                             open_reads(settings).explanations(open_only=True)
                             if needs_notice(e)]
    except EvidockError as exc:
        data["attention"], data["attention_unknown"] = None, str(exc)
    try:
        data["spooled"] = Spool(settings.home / "spool").waiting_count()
    except OSError as exc:
        data["spooled"], data["spooled_unknown"] = None, exc.strerror or str(exc)
    from agent.offline import waiting
    try:
        data["offline_docks"] = waiting(settings) or 0
    except (EvidockError, OSError) as exc:
        data["offline_docks"], data["offline_unknown"] = None, str(exc)
    if as_json:
        emit_json(data)
        return
    say(f"daemon pid {data['pid']}, station {shown(str(data['station']))}, "
        f"since {when(data['started_at'])}")
    for label, rows in (("docked", data["docked"]), ("recent", data["recent"][:5])):
        say(f"{label}:" if rows else f"{label}: none")
        for r in rows:  # serials, device numbers and errors come from recorders: escaped
            share = r["bytes_done"] / r["bytes_total"] if r["bytes_total"] else 0.0
            say(f"  {shown(r['usb_serial']):12} {shown(r['device'] or '?'):10} "
                f"{shown(r['state']):20} {r['files_done']}/{r['files_total']} files {share:6.1%}"
                + (f"  {shown(r['error'], limit=_SHOW_LIMIT)}" if r["error"] else ""))
    if data["spooled"] is None:
        say(f"explanations waiting in the spool: unknown ({data['spooled_unknown']})")
    elif data["spooled"]:
        say(f"explanations waiting in the spool for the catalog: {data['spooled']} (recorded "
            "once it can be reached)")
    if data["offline_docks"] is None:
        say(f"docks waiting in the offline store: unknown ({data['offline_unknown']})")
    elif data["offline_docks"]:
        say(f"docks waiting in the offline store for the site catalog: "
            f"{data['offline_docks']} (replayed once it can be reached)")
    attention = data["attention"]
    if attention is None:
        say(f"open storage faults and violations (R3): unknown ({data['attention_unknown']})")
        return
    say(f"open storage faults and violations (R3): {len(attention) or 'none'}")
    for e in attention[-10:]:
        say(f"  #{e['id']} {when(e['occurred_at'])} {shown(e['kind'])} device "
            f"{shown(e['device'] or '?')}: {shown(e['error'], limit=200)}")
    if len(attention) > 10:
        say("  ... `evidock explain list --open --rule R3` lists them all")


@app.command()
def replay(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option(
        "--check", help="only say how many offline docks wait; change nothing")] = False,
) -> None:
    """Replay the docks kept in the station's offline store into the site catalog.

    While the site catalog cannot be reached, docks go into the offline store; the daemon,
    and every dock, replay them by themselves once it can be reached. Exit 1 if a dock
    must wait (it is tried again), a replayed file failed or was quarantined, or another
    process is using the offline store.
    """
    from agent.offline import OfflineBusy, replay_offline, waiting

    settings = settings_of(ctx)
    count = waiting(settings)
    if count is None or check:
        say("the station has no offline store: nothing to replay" if count is None else
            f"offline docks waiting for the site catalog: {count}")
        return
    station = open_station(settings)
    try:
        done = replay_offline(settings, station)
    finally:
        station.close()
    if done is None:
        raise OfflineBusy("the station's offline store is in use by another evidock process "
                          "(a replay, or a dock); try again when it is done")
    for summary in done.summaries:
        files = ", ".join(f"{n} {status}" for status, n in
                          sorted(summary.to_dict()["files"].items())) or "no files"
        said = ", ".join(sorted({e.kind for e in summary.explanations})) or "none"
        say(f"offline dock {summary.replayed_from['session'] if summary.replayed_from else '?'}"
            f" -> dock session {summary.session_id}: {files}; explanations: {said}"
            + (f"; {shown(summary.error, limit=_SHOW_LIMIT)}" if summary.error else ""))
    say(f"offline docks replayed into the site catalog: {done.sessions}")
    for why in done.left:
        say(f"  waits (tried again): {shown(why, limit=_SHOW_LIMIT)}")
    if done.retired is not None:
        say(f"every offline dock is in the site catalog; the offline store is kept at "
            f"{done.retired}")
    finish(bool(done.left) or any(o.status in ("failed", "quarantined")
                                  for s in done.summaries for o in s.outcomes))


@app.command("udev-rules")
def udev_rules_cmd(ctx: typer.Context) -> None:
    """Print udev rules for the configured recorder models."""
    from agent.udev_rules import udev_rules

    sys.stdout.write(udev_rules(settings_of(ctx).models))


@app.command()
def demo(ctx: typer.Context) -> None:
    """Dock a simulated serial recorder through the daemon; show what it stored and verify."""
    from agent.demo import run_demo
    from ingest.verify import verify_store

    settings = settings_of(ctx)
    station = open_station(settings)
    say(f"evidock demo: data folder {settings.home}")
    docked = run_demo(settings, station)
    w = docked.worker
    if w.summary is None:
        raise EvidockError(f"the demo dock failed: {w.error}")
    facts = w.dock.facts_said
    say(f"simulated recorder {w.info.usb_serial} docked on {docked.port} (simulated USB bus)")
    officer = facts.get("officer_no")
    name = w.dock.names(officer)[0] if officer else None
    say(f"  device {facts.get('device_no', 'unknown')}, officer {officer or 'unknown'}"
        + (f" {name}" if name else "") + f", firmware {facts.get('firmware', 'unknown')}")
    drift, battery = facts.get("clock_drift_s"), facts.get("battery_pct")
    free, total = facts.get("storage_free"), facts.get("storage_total")
    events = json.loads(facts.get("device_log") or "[]")
    say("  clock " + (f"{drift:+.0f} s from the station" if drift is not None else "unknown")
        + f" ({'set' if facts.get('clock_set') else 'not set'}), battery "
        + (f"{battery}%" if battery is not None else "unknown") + ", storage "
        + (f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB" if free is not None
           and total else "unknown") + f", {len(events)} events in its log")
    _print_summary(w.summary, as_json=False)
    rows = [render.recording_dict(r) for r in station.catalog.recordings()
            if r.session_id == w.summary.session_id]
    out.print(_log_table(rows))
    report = verify_store(station.catalog, station.vault, trusted_keys(settings),
                          station_id=settings.station_id)
    for line in render.verify_lines(report):
        say(line)
    finish(not report.ok)


# evidence export (R10) ---------------------------------------------------------

@app.command("export")
def export_cmd(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="the package folder: new or empty")],
    collector: Annotated[str, typer.Option(help="who collects the evidence (提取人)")],
    place: Annotated[str, typer.Option(help="where it is collected (提取地点)")],
    reason: Annotated[str, typer.Option(help="why (提取事由)")],
    approved_by: Annotated[str, typer.Option("--approved-by", help="who approved (批准人)")],
    recording: Annotated[list[int] | None, typer.Option(
        "--recording", metavar="ID", help="a recording to export (repeatable)")] = None,
    case: Annotated[str | None, typer.Option(help="export every recording of this case")] = None,
    iso: Annotated[Path | None, typer.Option(help="also write an ISO 9660 disc image")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    approval: access.Approval = None,
) -> None:
    """Export recordings as a self-verifying evidence package with a written description."""
    from agent.export import ExportRequest, run_export, select

    settings = settings_of(ctx)
    output_path(ctx, settings, out_dir)
    if iso is not None:
        output_path(ctx, settings, iso)
    request = ExportRequest(recording_ids=tuple(recording or ()), case=case, out=out_dir,
                            collector=collector, place=place, reason=reason,
                            approved_by=approved_by, iso=iso)
    station = open_station(settings, create=False)
    try:
        if caller_of(ctx).delegated:  # (for others, run_export checks the request first)
            access.guard(ctx, settings, station.catalog, "export", select(station, request),
                         access.Approved(reason, approved_by, approval))
        result = run_export(station, request, timezone=settings.timezone,
                            outbox=settings.checkpoint_outbox)
    finally:
        station.close()
    if as_json:
        emit_json(result.to_dict())
    else:
        for line in result.lines():
            say(line)


@app.command("verify-export")
def verify_export_cmd(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="the package folder")],
    key: Annotated[Path | None, typer.Option(
        help="the station's public key (PEM), obtained separately: trust only it")] = None,
    vkey: Annotated[str | None, typer.Option(
        help="the station's checkpoint verifier key, obtained separately")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check an evidence package offline (no store, no settings); exit 1 on any problem."""
    from ingest.package_trust import load_trusted_key, load_trusted_vkey
    from ingest.package_verify import verify_package

    if key is not None and vkey is not None:
        raise UsageError("give --key or --vkey, not both")
    report = verify_package(folder, key=load_trusted_key(key) if key else None,
                            vkey=load_trusted_vkey(vkey) if vkey else None)
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.lines():
            say(line)
    finish(not report.ok)


def main(sigint: Any = None) -> None:
    """The `evidock` program, once loaded (agent/entry.py); tests run ``app`` in-process.

    ``sigint``: the SIGINT handler to put back once a command is invoked (until then
    Ctrl-C ends the program at once, as it did while loading)."""
    global _SIGNALS_AFTER_COMMAND, _SIGINT_AT_INVOKE
    _SIGNALS_AFTER_COMMAND = signal.SIG_IGN  # the program ends with its command
    _SIGINT_AT_INVOKE = sigint
    try:
        app()
    finally:
        # The command has ended and decided its exit code: a SIGTERM or Ctrl-C now must
        # not kill the process on its way out (the interpreter's exit restores the
        # default actions) and so change how it is seen to have ended.
        ignore_signals(signal.SIGTERM, signal.SIGINT)


if __name__ == "__main__":
    main()
