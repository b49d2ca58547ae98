"""Docking into the station's offline store while the site catalog is out of reach, and
replaying it into the site: every file once, the dock's own times, the site's checks.

The site here is the station's own catalog (SQLite, or PostgreSQL under
--catalog=postgres); what makes a dock go offline (a server that cannot be reached) is
tested end to end in tests/e2e/test_site.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from agent.offline import RETIRED, offline_folder, open_offline, replay_offline, waiting
from agent.settings import Settings
from devices.media import ShiftPlan, record_shift
from devices.simulator import SimState
from devices.volume import FolderVolume
from ingest.dock import IngestContext
from ingest.explain import dock_not_started
from ingest.verify import verify_store
from storage.models import Explanation, Recording
from storage.spool import Spool
from tests.conftest import SHIFT_END, ZONE, Clock, run_dock
from tests.integration.test_faults import mount_tmpfs, needs_root, station_on
from tests.integration.test_pipeline import dock, kinds, log_with_an_interruption, recorder

WHY = "cannot reach the catalog postgresql://evidock@db:5432/site: connection refused"


@contextmanager
def offline_store(settings: Settings, clock: Clock) -> Iterator[IngestContext]:
    """The offline store, as a dock that cannot reach the site catalog opens it."""
    store = open_offline(settings, WHY)
    store.clock = clock
    try:
        yield store
    finally:
        store.close()


def keys_of(station: IngestContext) -> dict[str, object]:
    return {station.key.key_id: station.key.public}


def test_an_offline_dock_is_replayed_once_with_its_own_times_and_the_sites_checks(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    with offline_store(settings, clock) as store:
        with recorder(volume, SimState(events=list(log_with_an_interruption())),
                      clock) as sim:
            offline = dock(store, sim, clear=True)
        held = store.catalog.recordings()
    assert "CLR" not in sim.commands  # the site does not hold the files yet: not cleared
    assert offline.cleared is not None and "docked offline" in offline.cleared
    # what only the site can judge is not judged offline
    assert kinds(offline) == ["docked_offline", "media_truncated"]
    assert len(held) == 6 and waiting(settings) == 1

    clock.advance(hours=30)  # the site comes back long after the 24-hour deadline
    told: list[Explanation] = []
    station.on_explanation = told.append  # (agent/alerts.py tells supervisors)
    done = replay_offline(settings, station)
    assert done is not None and done.sessions == 1 and not done.left
    assert "docked_offline" in [e.kind for e in told]  # told when the site took it (R3)
    assert done.retired is not None and done.retired.parent.name == RETIRED
    assert not offline_folder(settings).exists() and (done.retired / "catalog.db").exists()
    assert waiting(settings) is None

    rows = station.catalog.recordings()
    assert sorted((r.source_path, r.sha256, r.ingested_at, r.state) for r in rows) == sorted(
        (r.source_path, r.sha256, r.ingested_at, r.state) for r in held)
    assert not any(r.late for r in rows)  # judged by when the station first held them
    found = station.catalog.explanations()
    assert sorted(e.kind for e in found) == [
        "docked_offline", "media_truncated", "recording_interrupted", "unregistered_device"]
    [outage] = [e for e in found if e.kind == "docked_offline"]
    assert outage.error == WHY
    assert "carried into the site catalog by its replay" in outage.action
    assert outage.occurred_at == offline.started_at  # its own time, not the replay's
    [cut] = [e for e in found if e.kind == "recording_interrupted"]
    assert cut.recording_id is not None  # linked to the replayed recording
    [session] = [s for s in station.catalog.sessions() if s.session_id == rows[0].session_id]
    assert session.source.startswith(f"replay of offline dock {offline.session_id}")
    assert session.clock_drift_s is not None and session.device_log is not None
    report = verify_store(station.catalog, station.vault, keys_of(station))  # type: ignore[arg-type]
    assert report.ok, report.problems

    with recorder(volume, SimState(), clock) as sim:  # the next dock, into the site
        again = dock(station, sim)
    assert {o.status for o in again.outcomes} == {"already_held"}
    assert len(station.catalog.recordings()) == 6


def test_a_replay_cut_short_and_run_again_stores_and_explains_nothing_twice(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
    first = replay_offline(settings, station)
    assert first is not None and first.retired is not None
    # as if the replay had crashed after its commits and before noting them
    shutil.copytree(first.retired, offline_folder(settings))
    (offline_folder(settings) / "replayed.json").unlink()
    second = replay_offline(settings, station)
    assert second is not None and second.sessions == 1 and second.retired is not None
    assert len(station.catalog.recordings()) == 6
    assert [e.kind for e in station.catalog.explanations()].count("docked_offline") == 1
    replays = [s for s in station.catalog.sessions() if s.source.startswith("replay of")]
    assert len(replays) == 2 and replays[1].files_already_held == 6


def test_an_offline_copy_or_record_altered_before_its_replay_is_not_stored_but_said(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
        rows = [r for r in store.catalog.recordings() if r.state == "stored"]
        copy = store.vault.path(rows[0].vault_path)
    copy.chmod(0o600)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    with sqlite3.connect(offline_folder(settings) / "catalog.db") as db:
        db.execute("UPDATE recording SET officer_no = '999999' WHERE id = ?", (rows[1].id,))
    done = replay_offline(settings, station)
    assert done is not None and not done.left  # explained, kept offline: nothing to retry
    altered = [e for e in station.catalog.explanations() if e.kind == "offline_copy_altered"]
    assert sorted(e.source_path for e in altered) == sorted(r.source_path for r in rows[:2])
    assert any(f"its signed record says {rows[0].sha256}" in e.error for e in altered)
    assert any("fails its signature check" in e.error for e in altered)
    assert all("the altered copy stays in the station's offline store" in e.action
               for e in altered)
    held = {r.source_path for r in station.catalog.recordings()}
    assert not held & {r.source_path for r in rows[:2]}  # nothing stands for the originals
    again = run_dock(station, FolderVolume(volume))  # so the recorder's next dock stores them
    assert sorted(o.path for o in again.outcomes if o.status == "stored") == sorted(
        r.source_path for r in rows[:2])
    assert {r.sha256 for r in station.catalog.recordings()} >= {r.sha256 for r in rows[:2]}


def test_files_the_site_already_holds_are_not_stored_again(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    run_dock(station, FolderVolume(volume))  # the site has them (docked at another station, say)
    with offline_store(settings, clock) as store:
        offline = run_dock(store, FolderVolume(volume))  # the offline store cannot know that
    assert offline.files_stored == 6
    done = replay_offline(settings, station)
    assert done is not None and done.sessions == 1
    assert len(station.catalog.recordings()) == 6


def test_a_dock_holding_the_offline_store_keeps_a_replay_out(
        station: IngestContext, settings: Settings, clock: Clock) -> None:
    with offline_store(settings, clock):
        assert replay_offline(settings, station) is None  # tried again later
    assert waiting(settings) == 0  # nothing docked into it: nothing waits


def test_the_replay_keeps_the_offline_docks_plan_whatever_the_sites_patterns(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
        held = store.catalog.recordings()
    # a daemon's station has no model's patterns; the offline dock had its recorder's
    plain = replace(station, options=replace(station.options, patterns=()))
    done = replay_offline(settings, plain)
    assert done is not None and done.sessions == 1

    def planned(r: Recording) -> tuple[object, ...]:
        return (r.source_path, r.device_no, r.officer_no, r.recording_start, r.start_from,
                r.important, r.clock_offset_s, r.deadline)

    assert sorted(map(planned, station.catalog.recordings())) == sorted(map(planned, held))
    assert all(r.device_no != "UNKNOWN" for r in held)


def test_a_copy_quarantined_offline_for_how_it_was_read_is_quarantined_again_so(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
        [kept] = [r for r in store.catalog.recordings() if r.state == "quarantined"]
    # as the offline dock records a file that changed on the recorder while it was read
    with sqlite3.connect(offline_folder(settings) / "catalog.db") as db:
        db.execute("UPDATE explanation SET kind = 'source_changed', error = 'it changed' "
                   "WHERE recording_id = ?", (kept.id,))
    assert replay_offline(settings, station) is not None
    [again] = [r for r in station.catalog.recordings() if r.source_path == kept.source_path]
    assert again.state == "quarantined" and again.sha256 == kept.sha256
    [why] = [e for e in station.catalog.explanations() if e.recording_id == again.id]
    assert why.kind == "source_changed"
    assert why.error.startswith("quarantined by the offline dock: it changed; the copy holds")


def test_what_waits_in_the_spool_waits_for_the_site_not_the_offline_store(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    spool = Spool(settings.home / "spool")
    spool.keep(dock_not_started("/media/a", "the server is down", clock()))
    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
        assert [e.kind for e in store.catalog.explanations()].count("catalog_error") == 0
    assert spool.waiting_count() == 1
    station.spool = spool
    station.replay_spool()  # as the site's next writing start does
    assert [e.kind for e in station.catalog.explanations()] == ["catalog_error"]


def test_a_replay_stopped_with_the_daemon_waits_for_the_next_start(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
    calls = []

    def stopping() -> bool:  # the stop comes as the second file is being copied
        calls.append(1)
        return len(calls) > 3

    cut = replay_offline(settings, station, stopping)
    assert cut is not None and cut.sessions == 0 and cut.left and cut.retired is None
    assert waiting(settings) == 1
    [replay] = [s for s in station.catalog.sessions() if s.source.startswith("replay of")]
    assert replay.interrupted and replay.finished_at is not None
    again = replay_offline(settings, station)
    assert again is not None and again.sessions == 1 and again.retired is not None
    assert len(station.catalog.recordings()) == 6
    kinds_made = [e.kind for e in station.catalog.explanations()]
    assert kinds_made.count("docked_offline") == kinds_made.count("unregistered_device") == 1


@pytest.fixture
def full_site_vault(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "site-vault"
    mount_tmpfs(where, "256k")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.mark.root
@needs_root
def test_a_replay_into_a_full_vault_waits_offline_and_says_so(
        settings: Settings, clock: Clock, volume: Path, full_site_vault: Path) -> None:
    small_vault = full_site_vault
    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
    site = station_on(settings, small_vault, clock)
    try:
        first = replay_offline(settings, site)
        assert first is not None and first.sessions == 0 and first.left
        assert waiting(settings) == 1  # nothing is lost: the offline store keeps it all
        full = [e for e in site.catalog.explanations() if e.kind == "vault_full"]
        assert full and all("stays in the station's offline store" in e.action
                            and "recorder" not in e.action for e in full)
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_vault)], check=True)
        again = replay_offline(settings, site)
        assert again is not None and again.sessions == 1 and again.retired is not None
        assert site.catalog.count_recordings() == 6
    finally:
        site.close()


def test_a_recorder_docked_offline_is_cleared_at_its_first_dock_after_the_replay(
        station: IngestContext, settings: Settings, tmp_path: Path, clock: Clock) -> None:
    volume = tmp_path / "sound-recorder"
    record_shift(volume, ShiftPlan(truncated=False), SHIFT_END, ZONE)
    with offline_store(settings, clock) as store, recorder(volume, SimState(), clock) as sim:
        dock(store, sim, clear=True)
    assert "CLR" not in sim.commands
    assert replay_offline(settings, station) is not None
    with recorder(volume, SimState(), clock) as sim:
        after = dock(station, sim, clear=True)
    assert {o.status for o in after.outcomes} == {"already_held"}
    assert "CLR" in sim.commands and after.cleared is not None
    assert not [p for p in volume.rglob("*") if p.is_file()]


def test_an_offline_copy_gone_before_its_replay_is_said_and_left_to_the_recorder(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
        [gone, *_] = [r for r in store.catalog.recordings() if r.state == "stored"]
        store.vault.path(gone.vault_path).unlink()
    done = replay_offline(settings, station)
    assert done is not None and done.sessions == 1 and done.retired is not None
    [said] = [e for e in station.catalog.explanations() if e.source_path == gone.source_path]
    assert said.kind == "unreadable_source" and "cannot be read" in said.error
    assert said.action == ("not stored in the site catalog; the offline dock did not clear "
                           "the recorder: if the file is still on it, its next dock copies it")
    assert gone.source_path not in {r.source_path for r in station.catalog.recordings()}


def test_status_and_replay_check_say_how_many_offline_docks_wait(
        station: IngestContext, settings: Settings, volume: Path, clock: Clock) -> None:
    from typer.testing import CliRunner

    from agent.status import write_status
    from cli import app

    with offline_store(settings, clock) as store:
        run_dock(store, FolderVolume(volume))
    write_status(settings.run_dir, {
        "state": "running", "pid": os.getpid(), "station": "station-1",
        "started_at": "2026-11-20T10:00:00+00:00", "updated_at": "2026-11-20T10:00:00+00:00",
        "docked": [], "recent": []})
    shown = CliRunner().invoke(app, ["status"])
    assert "docks waiting in the offline store for the site catalog: 1" in shown.stdout
    checked = CliRunner().invoke(app, ["replay", "--check"])
    assert checked.exit_code == 0 and checked.stdout.strip() == (
        "offline docks waiting for the site catalog: 1")
    assert waiting(settings) == 1  # --check changed nothing
    assert replay_offline(settings, station) is not None
    assert json.loads(CliRunner().invoke(app, ["status", "--json"]).stdout)["offline_docks"] == 0
