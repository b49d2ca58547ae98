"""`evidock access log`: the register of who saw, exported or tagged whose recordings."""

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cliutil import emit_json, moment_of, say, settings_of, when
from agent.station import open_reader
from storage.text import shown

if TYPE_CHECKING:
    from storage.models import AccessEntry

access_app = typer.Typer(no_args_is_help=True, help="The access register (R12).")


def entry_dict(e: "AccessEntry") -> dict[str, Any]:
    return {"id": e.id, "at": e.at.isoformat(), "user": e.login, "roles": e.roles,
            "action": e.action, "recordings": json.loads(e.recordings),
            "officers": json.loads(e.officers), "reason": e.reason,
            "approved_by": e.approved_by, "approval": e.approval}


@access_app.command("log")
def access_log(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="one OS account")] = None,
    recording: Annotated[int | None, typer.Option(help="one recording")] = None,
    since: Annotated[str | None, typer.Option(help="at or after (ISO time)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every registered view, export and tag of another officer's recordings."""
    from storage.access import AccessFilter, AccessLog

    settings = settings_of(ctx)
    flt = AccessFilter(login=user, recording=recording,
                       since=moment_of(since, settings, upper=False))
    rows = [entry_dict(e) for e in AccessLog(open_reader(settings).catalog).entries(flt)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        say("(none)")
    for r in rows:
        say(f"#{r['id']} {when(r['at'])} {shown(r['user'])} ({r['roles']}) {r['action']} "
            f"recording(s) {', '.join(map(str, r['recordings'][:20]))}"
            + (" ..." if len(r["recordings"]) > 20 else "")
            + f" of {', '.join(shown(o) for o in r['officers'])}"
            + (f"; approved by {shown(r['approved_by'])} ({shown(r['approval'])})"
               if r["approval"] else "; no approval")
            + (f": {shown(r['reason'], limit=200)}" if r["reason"] else ""))
