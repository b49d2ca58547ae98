"""A recorder volume of real ffmpeg clips into a real vault and SQLite catalog."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import storage
from devices.media import make_clip, truncate_half
from devices.volume import FolderVolume
from ingest.dock import IngestContext
from ingest.plan import Identity
from ingest.record import IngestRecord
from ingest.verify import verify_store
from storage.catalog import Catalog, make_engine
from storage.errors import CatalogError
from storage.registry import Registry
from storage.terms import SCHEMA, LogFilter
from tests.catalogdb import raw_catalog
from tests.conftest import SHIFT_END, Clock, run_dock


def dock(station: IngestContext, root: Path, identity: Identity | None = None):  # type: ignore[no-untyped-def]
    return run_dock(station, FolderVolume(root), identity)


def test_every_file_is_stored_signed_and_catalogued(station: IngestContext, volume: Path
                                                     ) -> None:
    summary = dock(station, volume)
    rows = station.catalog.recordings()
    assert len(rows) == 6
    assert summary.count("stored") == 5 and summary.count("quarantined") == 1
    by_name = {r.source_path.rsplit("/", 1)[-1]: r for r in rows}
    clip = by_name["DSJ_ZFY0001_100231_20261120_160000.MP4"]
    source = volume / "DCIM/100MEDIA" / "DSJ_ZFY0001_100231_20261120_160000.MP4"
    assert clip.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (clip.device_no, clip.officer_no, clip.agency) == ("ZFY0001", "100231", "Test Agency")
    assert clip.recording_start.isoformat() == "2026-11-20T08:00:00+00:00"
    assert clip.duration_s is not None and abs(clip.duration_s - 4.0) < 0.1
    assert clip.deadline == clip.recording_end + timedelta(hours=24) and not clip.late
    assert by_name["DSJ_ZFY0001_100231_20261120_161000_IMP.MP4"].important
    stored = station.vault.path(clip.vault_path)
    assert stored.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o444
    assert station.key.public.verify(clip.signature, IngestRecord.from_row(clip).canonical())
    kinds = {e.kind for e in station.catalog.explanations()}
    assert kinds == {"media_truncated", "unregistered_device"}  # R13: not in the registry
    assert verify_store(station.catalog, station.vault, {station.key.key_id: station.key.public}
                        ).ok


def test_docking_again_copies_only_what_is_new(station: IngestContext, volume: Path,
                                               one_clip: Path, clock: Clock) -> None:
    dock(station, volume)
    clock.advance(minutes=5)
    again = dock(station, volume)
    assert again.count("already_held") == 6 and station.catalog.count_recordings() == 6
    shutil.copy2(one_clip, volume / one_clip.name)
    third = dock(station, volume)
    assert third.count("stored") == 1 and third.count("already_held") == 6
    assert station.catalog.count_recordings() == 7


def test_the_same_bytes_under_other_names_are_each_recorded_and_stored_once(
        station: IngestContext, volume: Path) -> None:
    dock(station, volume)
    original = next((volume / "DCIM/100MEDIA").glob("*_160000.MP4"))
    twin = volume / "DCIM/100MEDIA" / "DSJ_ZFY0001_100231_20261120_170000.MP4"
    shutil.copy(original, twin)
    shutil.copy(original, volume / "copy-of-clip.mp4")
    summary = dock(station, volume)
    first = station.catalog.recording_for("ZFY0001", "DCIM/100MEDIA/" + original.name)
    assert first is not None
    rows = [r for r in station.catalog.recordings() if r.sha256 == first.sha256]
    # Each name keeps its own row, source path and times; the vault keeps one file.
    assert sorted(r.source_path for r in rows) == sorted(
        ["DCIM/100MEDIA/" + original.name, "DCIM/100MEDIA/" + twin.name, "copy-of-clip.mp4"])
    assert {r.vault_path for r in rows} == {first.vault_path}
    by_path = {r.source_path: r for r in rows}
    assert by_path["DCIM/100MEDIA/" + twin.name].recording_start.isoformat() == (
        "2026-11-20T09:00:00+00:00")
    assert summary.count("stored") == 2 and station.catalog.count_recordings() == 8
    assert len(list(station.vault.stored_files())) == 6
    assert not list(station.vault.temporaries())
    assert verify_store(station.catalog, station.vault, {station.key.key_id: station.key.public}
                        ).ok


def test_late_docking_is_flagged_with_an_explanation(station: IngestContext, volume: Path,
                                                     clock: Clock) -> None:
    clock.advance(days=2)
    dock(station, volume)
    assert all(r.late for r in station.catalog.recordings())
    late = [e for e in station.catalog.explanations() if e.kind == "late_ingest"]
    assert len(late) == 6 and all(e.rule == "R2" and e.status == "open" for e in late)
    assert len(station.catalog.recordings(LogFilter(late=True))) == 6


def test_a_file_without_its_moov_box_is_quarantined_as_unreadable(
        station: IngestContext, tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    clip = make_clip(root / "DSJ_ZFY0002_100232_20261120_170000.MP4", 2.0, SHIFT_END,
                     faststart=False)  # the moov box comes last, so half a file has none
    truncate_half(clip)
    (root / "empty.MP4").write_bytes(b"")
    then = SHIFT_END.timestamp()  # the test's clock: file times are not implausible
    for f in root.iterdir():
        os.utime(f, (then, then))
    summary = dock(station, root)
    assert summary.failed
    assert sorted(e.kind for e in summary.explanations) == [
        "empty_file", "identity_unknown", "media_unreadable", "unregistered_device"]
    assert {r.state for r in station.catalog.recordings()} == {"quarantined"}
    assert all(r.vault_path.startswith("quarantine/") for r in station.catalog.recordings())


def test_identity_for_unnamed_files_comes_from_the_dock(station: IngestContext,
                                                        tmp_path: Path, one_clip: Path) -> None:
    root = tmp_path / "cctv"
    root.mkdir()
    shutil.copy(one_clip, root / "export 1.mp4")
    Registry(station.catalog).register("CCTV-3", usb_serial=None, model=None, officer_no=None,
                                      by="custodian")
    summary = dock(station, root, Identity(given_device="CCTV-3", given_officer="200001"))
    [row] = station.catalog.recordings()
    assert (row.device_no, row.officer_no, row.start_from) == ("CCTV-3", "200001", "metadata")
    assert not summary.failed and not summary.explanations


def test_given_values_never_rewrite_what_the_names_say(station: IngestContext,
                                                       volume: Path) -> None:
    summary = dock(station, volume, Identity(given_device="ZFY0001", given_officer="100999"))
    assert {r.officer_no for r in station.catalog.recordings()} == {"100231"}
    [conflict] = [e for e in summary.explanations if e.kind == "identity_conflict"]
    assert "officer 100231" in conflict.error and "100999" in conflict.error
    assert "6 file(s)" in conflict.error


@pytest.mark.sqlite_only
def test_the_catalog_is_sqlite_in_wal_with_full_sync_and_matches_its_migrations(
        station: IngestContext, home: Path) -> None:
    with station.catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    scripts = ScriptDirectory(str(Path(storage.__file__).with_name("migrations")))
    with raw_catalog(home) as db:
        version = db.execute("select version_num from alembic_version").fetchone()
    assert version == (scripts.get_current_head(),) == (SCHEMA,)  # what open() compares


def test_a_catalog_made_by_the_first_schema_upgrades_with_its_rows(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(storage.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.exec_driver_sql(
            "insert into dock_session (session_id, station_id, source, started_at, files_seen,"
            " files_stored, files_already_held, files_failed, bytes_stored)"
            " values ('s-old', 'st', '/media', '2026-01-01 00:00:00', 1, 1, 0, 0, 10)")
    engine.dispose()
    catalog = Catalog.open(url)
    [old] = catalog.sessions()
    assert (old.session_id, old.interrupted, old.clock_set) == ("s-old", False, False)


def test_the_writers_of_one_process_take_turns_and_a_turn_never_given_is_an_error(
        station: IngestContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon's docks write one after the other, each served as the one before it ends;
    a write that waits longer than SQLite's own busy timeout fails as SQLite would (here
    the timeout is made short), naming what it could not do, and changes nothing."""
    catalog = station.catalog
    monkeypatch.setattr(storage.catalog, "BUSY_TIMEOUT_S", 0.2)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with catalog.transaction("hold the turn"):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        before = catalog.head().size
        with pytest.raises(CatalogError, match="cannot annotate recording 1: another write "
                                               "of this process held the catalog's turn "
                                               "for 0\\.2 s"):
            catalog.annotate(1, by="x", case_no="C-1", party=None, category=None)
    finally:
        release.set()
        holder.join()
    assert catalog.head().size == before
    with catalog.transaction("after the turn came back") as db:  # served once released
        assert db is not None
