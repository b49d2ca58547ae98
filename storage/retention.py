"""Retention (R8) and long-term holds (R9): what may be purged, and purging it.

A recording may be purged once its retention has run out and no unreleased hold
names it or its case. Its retention runs from its end for the longest of the
classes that apply to it: ``default``, its category's, and ``case`` when it is
in a case (settings ``retention_days``). An attachment (sidecar) follows its
recording. Purging records the tombstone first (the row keeps its digest and
signed record, with who, when, why and the approval), then removes the file,
once no unpurged row names it; a purge stopped in between is finished by the
next purge or the next start, and ``verify`` knows a tombstone's file is gone
by rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath

from sqlmodel import Session, col, select

from storage.catalog import Catalog
from storage.errors import NotFound, UsageError, VaultError
from storage.models import Hold, Recording
from storage.terms import HoldReason as HoldReason  # re-exported (storage/terms.py says why)
from storage.vault import Vault


@dataclass(frozen=True)
class Due:
    """A recording's retention: until when, by which class, and what holds it."""

    recording: Recording
    until: datetime
    by: str  # the class that gives the longest retention
    holds: tuple[int, ...]  # unreleased holds on it or its case

    def purgeable(self, now: datetime) -> bool:
        return self.recording.purged_at is None and not self.holds and now >= self.until


def retention(rec: Recording, main: Recording | None, days: Mapping[str, float]
              ) -> tuple[datetime, str]:
    """Until when ``rec`` is kept, and the class that says so (``main``: its recording)."""
    about = main or rec
    classes = ["default"]
    if about.category is not None and about.category in days:
        classes.append(about.category)
    if about.case_no and "case" in days:
        classes.append("case")
    longest = max(classes, key=lambda name: days[name])
    return about.recording_end + timedelta(days=days[longest]), longest


class Retention:
    def __init__(self, catalog: Catalog, days: Mapping[str, float]):
        self.catalog = catalog
        self.days = days

    # Holds ---------------------------------------------------------------------

    def hold(self, *, recording_id: int | None, case_no: str | None, reason: str, note: str,
             by: str, now: datetime) -> Hold:
        _given(by=by, note=note)
        if (recording_id is None) == (case_no is None):
            raise UsageError("name one recording ID or one --case")
        if reason not in set(HoldReason):
            raise UsageError(f"--reason must be one of {', '.join(HoldReason)}, not {reason!r}")
        with self.catalog.transaction("place a hold") as db:
            if recording_id is not None:
                rec = db.get(Recording, recording_id)
                if rec is None:
                    raise NotFound(f"no recording with id {recording_id}")
                if rec.purged_at is not None:
                    raise UsageError(f"recording {recording_id} was purged on "
                                     f"{rec.purged_at:%Y-%m-%d}; nothing is left to hold")
            elif db.exec(select(Recording.id).where(Recording.case_no == case_no)).first() \
                    is None:
                raise NotFound(f"no recording is annotated with case {case_no}")
            placed = Hold(recording_id=recording_id, case_no=case_no, reason=reason,
                          note=note.strip(), placed_by=by.strip(), placed_at=now)
            db.add(placed)
            db.flush()
            self.catalog.append_event(db, "hold", str(placed.id), {
                "recording": recording_id, "case": case_no, "reason": reason, "by": by})
        return placed

    def release(self, hold_id: int, *, note: str, by: str, now: datetime) -> Hold:
        _given(by=by, note=note)
        with self.catalog.transaction(f"release hold {hold_id}") as db:
            found = db.get(Hold, hold_id)
            if found is None:
                raise NotFound(f"no hold with id {hold_id}")
            if found.released_at is not None:
                raise UsageError(f"hold {hold_id} was released on {found.released_at:%Y-%m-%d}")
            found.released_at, found.released_by, found.release_note = now, by.strip(), \
                note.strip()
            db.add(found)
            self.catalog.append_event(db, "hold-release", str(hold_id), {"by": by})
        return found

    def holds(self, *, released: bool = False) -> Sequence[Hold]:
        query = select(Hold)
        if not released:
            query = query.where(col(Hold.released_at).is_(None))
        with self.catalog.reading() as db:
            return db.exec(query.order_by(col(Hold.id))).all()

    # What is due ----------------------------------------------------------------

    def due(self) -> list[Due]:
        """Every recording's retention, oldest end first."""
        rows = {r.id: r for r in self.catalog.recordings()}
        active = self.holds()
        on_recording: dict[int, list[int]] = {}
        on_case: dict[str, list[int]] = {}
        for h in active:
            assert h.id is not None
            if h.recording_id is not None:
                on_recording.setdefault(h.recording_id, []).append(h.id)
            if h.case_no is not None:
                on_case.setdefault(h.case_no, []).append(h.id)
        found = []
        for rec in rows.values():
            main = rows.get(rec.attached_to) if rec.attached_to is not None else None
            until, by = retention(rec, main, self.days)
            holds: list[int] = []
            for about in (rec, main):
                if about is not None and about.id is not None:
                    holds += on_recording.get(about.id, [])
                    holds += on_case.get(about.case_no or "", [])
            found.append(Due(rec, until, by, tuple(sorted(set(holds)))))
        return sorted(found, key=lambda d: (d.until, d.recording.id or 0))

    # Purging --------------------------------------------------------------------

    def purge(self, chosen: Sequence[Due], vault: Vault, *, by: str, approved_by: str,
              approval: str, now: datetime) -> list[int]:
        """Tombstone each of ``chosen`` (each must be purgeable now), then remove the files
        no unpurged row names. Returns the ids purged."""
        _given(by=by, approved_by=approved_by, approval=approval)
        if by.strip() == approved_by.strip():
            raise UsageError("--approved-by must be a second person, not --by")
        for d in chosen:
            if not d.purgeable(now):
                raise UsageError(_not_purgeable(d, now))
        done: list[int] = []
        for d in chosen:
            rec = d.recording
            why = (f"retention ({d.by}, {self.days[d.by]:g} days from its end) ran out on "
                   f"{d.until:%Y-%m-%d %H:%M:%S} UTC; no hold")
            with self.catalog.transaction(f"purge recording {rec.id}") as db:
                row = db.get(Recording, rec.id)
                assert row is not None
                if self._changed(db, row, d, now):  # a hold or a case since it was chosen
                    raise UsageError(
                        f"recording {rec.id} is no longer due (held, or its retention changed, "
                        f"since the purge began); not purged"
                        + (f"; purged before it: {', '.join(map(str, done))}" if done else ""))
                row.purged_at, row.purged_by, row.purge_approved_by = now, by.strip(), \
                    approved_by.strip()
                row.purge_approval, row.purge_why = approval.strip(), why
                db.add(row)
                self.catalog.append_event(db, "purge", str(rec.id), {
                    "sha256": rec.sha256, "vault_path": rec.vault_path,
                    "signature": rec.signature, "by": by, "approved_by": approved_by,
                    "approval": approval, "why": why})
            assert rec.id is not None
            done.append(rec.id)
        try:
            finish_purges(self.catalog, vault)
        except VaultError as exc:
            raise VaultError(f"recording(s) {', '.join(map(str, done))} are recorded as "
                             f"purged, but a file could not be removed yet ({exc}); the next "
                             "start or purge removes it") from exc
        return done

    def _changed(self, db: Session, row: Recording, d: Due, now: datetime) -> bool:
        """Whether ``row`` stopped being due since ``d`` was worked out (in ``db``)."""
        main = db.get(Recording, row.attached_to) if row.attached_to is not None else None
        about = [r for r in (row, main) if r is not None]
        held = db.exec(select(Hold.id).where(col(Hold.released_at).is_(None)).where(
            col(Hold.recording_id).in_([r.id for r in about])
            | col(Hold.case_no).in_([r.case_no for r in about if r.case_no]))).first()
        until, _ = retention(row, main, self.days)
        return held is not None or until != d.until or now < until


def finish_purges(catalog: Catalog, vault: Vault) -> list[str]:
    """Remove each purged recording's file that no unpurged row names (a purge stopped
    between its tombstone and the file finishes here). Returns the vault paths removed."""
    kept = select(Recording.vault_path).where(col(Recording.purged_at).is_(None))
    query = select(Recording.vault_path).where(
        col(Recording.purged_at).is_not(None), col(Recording.vault_path).not_in(kept))
    with catalog.reading() as db:
        gone = sorted(set(db.exec(query)))
    removed = []
    for rel in gone:
        if vault.path(rel).exists():  # (gone: that purge had finished)
            vault.unlink(PurePosixPath(rel))
            removed.append(rel)
    return removed


def _not_purgeable(d: Due, now: datetime) -> str:
    rec = d.recording
    if rec.purged_at is not None:
        return f"recording {rec.id} was already purged"
    if d.holds:
        return (f"recording {rec.id} is held (hold {', '.join(map(str, d.holds))}); "
                "release the hold first")
    return (f"recording {rec.id} is kept until {d.until:%Y-%m-%d %H:%M:%S} UTC "
            f"(class {d.by}); it is {now:%Y-%m-%d %H:%M:%S} UTC")


def _given(**values: str) -> None:
    for name, value in values.items():
        if not value.strip():
            raise UsageError(f"--{name.replace('_', '-')} is empty")
