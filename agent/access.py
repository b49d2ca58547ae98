"""R12 at each command that shows, exports or tags recordings: officers see their own;
anyone else's recordings need an approval (setting ``access_approval_required``) and
are registered (storage/access.py). Binds people who use the station through
delegation (agent/roles.py); root and the service account acting directly can read
the files anyway and are not bound by it (docs/operations.md says so)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cliutil import caller_of
from agent.roles import Caller
from agent.station import open_catalog
from storage.errors import UsageError
from storage.terms import now_utc

if TYPE_CHECKING:
    from agent.settings import Settings
    from storage.models import Recording
    from storage.quickread import CatalogReads, RecordingRow

Reason = Annotated[str | None, typer.Option(
    "--reason", help="why (R12: registered when the recordings are another officer's)")]
ApprovedBy = Annotated[str | None, typer.Option(
    "--approved-by", help="who approved viewing another officer's recordings")]
Approval = Annotated[str | None, typer.Option(
    "--approval", help="the approval's reference (e.g. its document number)")]


@dataclass(frozen=True)
class Approved:
    reason: str | None = None
    approved_by: str | None = None
    approval: str | None = None


def own_officers(ctx: typer.Context, catalog: CatalogReads) -> set[str] | None:
    """The officer numbers the caller may see; None: every officer's."""
    who = caller_of(ctx)
    if not who.delegated or who.sees_all:
        return None
    return catalog.officers_of(who.login)


def guard(ctx: typer.Context, settings: Settings, catalog: CatalogReads, action: str,
          recordings: Sequence[Recording | RecordingRow], given: Approved, *,
          approval_needed: bool = True) -> None:
    """Refuse what the caller may not do with ``recordings``; register what they may and
    that concerns other officers' recordings. Changes nothing for direct administrators."""
    who = caller_of(ctx)
    if not who.delegated or not recordings:
        return
    own = catalog.officers_of(who.login)
    others = [r for r in recordings if r.officer_no not in own]
    if not others:
        return
    if not who.sees_all:
        first = others[0]
        raise UsageError(f"officers see only their own recordings: recording {first.id} is "
                         f"officer {first.officer_no}'s ({who.login} is "
                         + (", ".join(sorted(own)) or "no registered officer") + ")")
    missing = [name for name, value in (("--reason", given.reason),
                                        ("--approved-by", given.approved_by),
                                        ("--approval", given.approval))
               if not (value or "").strip()]
    if approval_needed and settings.access_approval_required and missing:
        raise UsageError(f"recordings of other officers ({_ids(others)}) need an approval "
                         f"(R12): give {', '.join(missing)}")
    _register(catalog, settings, who, action, others, given)


def _register(catalog: CatalogReads, settings: Settings, who: Caller, action: str,
              others: Sequence[Recording | RecordingRow], given: Approved) -> None:
    """In ``catalog`` if it can write, else in a writer opened for it (a reader's)."""
    from storage.access import AccessLog
    from storage.catalog import Catalog
    from storage.models import AccessEntry

    writer = (catalog if isinstance(catalog, Catalog) and catalog.writer is not None
              else open_catalog(settings))
    try:
        AccessLog(writer).register(AccessEntry(
            at=now_utc(), login=who.login, roles=",".join(sorted(who.roles)), action=action,
            recordings=json.dumps([r.id for r in others]),
            officers=json.dumps(sorted({r.officer_no for r in others}), ensure_ascii=False),
            reason=(given.reason or "").strip() or None,
            approved_by=(given.approved_by or "").strip() or None,
            approval=(given.approval or "").strip() or None))
    finally:
        if writer is not catalog:
            writer.close()


def _ids(rows: Sequence[Recording | RecordingRow]) -> str:
    shown = ", ".join(str(r.id) for r in rows[:10])
    return shown + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
