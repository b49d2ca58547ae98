"""The dock pipeline with a simulated recorder on a real pty: odd replies, the device log,
clearing, and recovery of what a crashed process left in a real vault and catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from agent.settings import Settings
from agent.station import open_station
from devices.events import RecorderInfo
from devices.media import ShiftPlan, record_shift
from devices.protocol import DeviceEvent
from devices.simulator import SimState, SimulatedRecorder
from devices.source import DockedRecorder
from ingest.dock import IngestContext, Summary
from ingest.pipeline import Dock
from ingest.record import IngestRecord
from ingest.recovery import recover
from ingest.verify import verify_store
from storage.models import LoggedDeviceEvent
from tests.conftest import SHIFT_END, ZONE, Clock

# Where the tests' recordings sit on the recorder's own (local, naive) clock.
LOCAL_END = SHIFT_END.astimezone(ZONE).replace(tzinfo=None)


@contextmanager
def recorder(volume: Path, state: SimState, clock: Clock | None = None
             ) -> Iterator[SimulatedRecorder]:
    """A recorder whose clock runs with ``clock`` (the station's) plus the state's drift."""
    sim = SimulatedRecorder(volume, state, zone=ZONE, **(
        {"now": lambda: clock().astimezone(ZONE)} if clock else {})).start()
    try:
        yield sim
    finally:
        sim.stop()


def dock(station: IngestContext, sim: SimulatedRecorder, *, clear: bool = False,
         sets_clock: bool = True, pulled_at_storage: bool = False) -> Summary:
    """Dock ``sim``; ``pulled_at_storage``: its port goes as its volume appears."""
    info = RecorderInfo(usb_serial="SIM-1", vendor="1209", product="e5d1",
                        model="evidock-sim-serial", tty=sim.port)
    storage = RecorderInfo(usb_serial="SIM-1", vendor="1209", product="e5d1",
                           model="evidock-sim-serial", volume_path=str(sim.volume))

    def wait_storage() -> RecorderInfo:
        if pulled_at_storage:
            sim.unplug()
        return storage

    source = DockedRecorder(info, serial=True, baudrate=115200, password="000000",
                            sets_clock=sets_clock, can_clear=clear, wait_storage=wait_storage,
                            mounter=None, mount_dir=sim.volume.parent / "mnt")
    return Dock(station, source, clear=clear).run()


def kinds(summary: Summary) -> list[str]:
    return sorted(e.kind for e in summary.explanations)


@pytest.mark.parametrize(("command", "reply"), [
    ("BAT", b"OK|150"), ("BAT", b"OK"), ("BAT", b"OK|-5"), ("GTM", b"OK"),
    ("STM", b"ER|RO|clock locked"), ("LOG", b"ER|NOCMD|unknown command"),
    ("GID", b"OK|device=../x|officer=1"), ("VER", None), ("STO", b"OK|free=9|total=1"),
])
def test_one_odd_reply_is_explained_and_the_dock_goes_on(
        station: IngestContext, volume: Path, command: str, reply: bytes | None) -> None:
    with recorder(volume, SimState(overrides={command: reply})) as sim:
        summary = dock(station, sim)
    [odd] = [e for e in summary.explanations if e.kind == "recorder_step_failed"]
    assert odd.error.startswith(f"{command}: ") and "the dock went on" in odd.action
    assert summary.error is None and station.catalog.count_recordings() == 6
    assert "MSC" in sim.commands


def test_the_drift_is_on_record_before_the_clock_is_set_even_if_the_dock_then_fails(
        station: IngestContext, volume: Path, clock: Clock) -> None:
    state = SimState(drift=timedelta(seconds=300), overrides={"MSC": b"ER|BUSY|recording"})
    sim = SimulatedRecorder(volume, state, zone=ZONE, now=lambda: clock().astimezone(ZONE))
    with sim:
        summary = dock(station, sim)
    [session] = station.catalog.sessions()
    assert session.clock_drift_s is not None and 295 < session.clock_drift_s < 305
    assert session.clock_set and session.finished_at is not None
    [failed] = [e for e in summary.explanations if e.kind == "dock_failed"]
    assert "refused to switch" in failed.error and "holds 0 recording(s)" in failed.action
    assert station.catalog.count_recordings() == 0


def test_a_wrong_password_ends_the_dock_with_a_true_account(station: IngestContext,
                                                            volume: Path) -> None:
    with recorder(volume, SimState(password="654321")) as sim:
        summary = dock(station, sim)
    assert sim.commands == ["ATH"] and kinds(summary) == ["dock_failed"]
    assert "did not clear the recorder" in summary.explanations[0].action


def log_with_an_interruption() -> list[DeviceEvent]:
    return [DeviceEvent(LOCAL_END - timedelta(hours=2, minutes=1), "record_start"),
            DeviceEvent(LOCAL_END - timedelta(hours=2) + timedelta(seconds=2), "low_battery",
                        "9%"),
            DeviceEvent(LOCAL_END - timedelta(hours=1), "record_stop")]


def test_a_logged_interruption_is_explained_once_across_docks_and_linked(
        station: IngestContext, volume: Path, clock: Clock) -> None:
    with recorder(volume, SimState(events=list(log_with_an_interruption()))) as sim:
        first = dock(station, sim)
    [cut] = [e for e in first.explanations if e.kind == "recording_interrupted"]
    assert cut.recording_id is not None  # the 08:00 UTC clip runs through 08:00:02
    held = station.catalog.recording(cut.recording_id)
    assert held.recording_start <= SHIFT_END - timedelta(hours=2) + timedelta(seconds=2)
    clock.advance(minutes=10)
    with recorder(volume, SimState(events=list(log_with_an_interruption()))) as sim:
        again = dock(station, sim)
    assert "recording_interrupted" not in kinds(again)
    assert len([e for e in station.catalog.explanations()
                if e.kind == "recording_interrupted"]) == 1


def test_a_recorder_is_cleared_only_when_every_file_is_stored_and_verified(
        station: IngestContext, volume: Path) -> None:
    with recorder(volume, SimState()) as sim:
        summary = dock(station, sim, clear=True)
    assert "CLR" not in sim.commands  # the truncated clip is quarantined: never cleared
    assert summary.cleared is not None and "quarantined" in summary.cleared
    damaged = next(r for r in station.catalog.recordings() if r.state == "quarantined")
    (volume / damaged.source_path).unlink()
    with recorder(volume, SimState()) as sim:
        summary = dock(station, sim, clear=True)
    assert "CLR" in sim.commands and not [p for p in volume.rglob("*") if p.is_file()]
    [clearing] = station.catalog.clearings()
    assert clearing.outcome == "cleared" and len(json.loads(clearing.files_json)) == 5


def test_a_clear_that_gets_no_answer_is_recorded_as_unknown(station: IngestContext,
                                                            volume: Path) -> None:
    damaged = sorted((volume / "DCIM/100MEDIA").glob("*_163000.MP4"))
    for path in damaged:
        path.unlink()
    with recorder(volume, SimState(overrides={"CLR": None})) as sim:
        summary = dock(station, sim, clear=True)
    [clearing] = station.catalog.clearings()
    assert clearing.outcome == "unknown" and "clear_failed" in kinds(summary)


# Recovery: what a killed process leaves, made for real by a child process.

CRASH = """
import os, sys
from pathlib import PurePosixPath
from agent.settings import load_settings
from agent.station import open_station
from storage.models import DockSession, PendingCopy, now_utc
st = open_station(load_settings())
st.catalog.start_session(DockSession(session_id="s-dead", station_id=st.station_id,
    source="killed", started_at=now_utc(), owner=st.vault.owner, files_seen=3))
w = st.vault.writer(PurePosixPath("files/A/D1/2026-11-20/leftover.bin"))
w.write(b"half a copy")
if sys.argv[1] == "pending":
    good = st.vault.writer(PurePosixPath("files/A/D1/2026-11-20/good.bin"))
    good.write(b"verified bytes")
    good.seal()
    st.catalog.add_pending(PendingCopy(owner=st.vault.owner, session_id="s-dead",
        tmp_path=str(good.tmp), vault_path="files/A/D1/2026-11-20/good.bin",
        row_json=sys.stdin.read(), created_at=now_utc()))
    if sys.argv[2] == "placed":
        st.vault.link(good.tmp_file, PurePosixPath("files/A/D1/2026-11-20/good.bin"))
os._exit(9)  # as if killed: nothing is cleaned up
"""


def signed_row(station: IngestContext) -> str:
    import hashlib

    from ingest.record import IngestRecord
    from storage.models import Recording, row_json
    sha = hashlib.sha256(b"verified bytes").hexdigest()
    t = SHIFT_END
    record = IngestRecord(station=station.station_id, agency=station.agency, session="s-dead",
                          device="D1", officer="O1", source_path="DCIM/good.bin", size=14,
                          sha256=sha, recording_start=t, recording_end=t, ingested_at=t,
                          deadline=t + timedelta(hours=24),
                          vault_path="files/A/D1/2026-11-20/good.bin")
    return row_json(Recording(
        session_id="s-dead", station_id=station.station_id, agency=station.agency,
        device_no="D1", officer_no="O1", source_path="DCIM/good.bin", source_size=14,
        source_mtime_ns=0, size=14, sha256=sha, signature=station.key.sign(record.canonical()),
        key_id=station.key.key_id, recording_start=t, recording_end=t, start_from="mtime",
        ingested_at=t, deadline=t + timedelta(hours=24),
        vault_path="files/A/D1/2026-11-20/good.bin"))


@pytest.mark.parametrize("placed", ["placed", "not-placed"])
def test_recovery_adopts_a_verified_copy_removes_leftovers_and_closes_the_session(
        settings: Settings, station: IngestContext, placed: str) -> None:
    child = subprocess.run([sys.executable, "-c", CRASH, "pending", placed],
                           input=signed_row(station), text=True, check=False,
                           env={**os.environ}, cwd=Path(__file__).parents[2])
    assert child.returncode == 9
    keys = {station.key.key_id: station.key.public}
    before = verify_store(station.catalog, station.vault, keys)
    assert before.ok and {p.kind for p in before.repairs} >= {"unfinished_file", "open_session"}
    done = recover(station)
    assert len(done) == 3, done
    [row] = station.catalog.recordings()
    assert row.source_path == "DCIM/good.bin" and row.session_id == "s-dead"
    assert station.vault.digest(row.vault_path) == (row.sha256, 14)
    got = {e.kind: e for e in station.catalog.explanations(session_id="s-dead")}
    assert set(got) == {"copy_adopted", "unfinished_copy_removed", "dock_interrupted"}
    assert "holds 1 recording(s) made by this dock" in got["dock_interrupted"].action
    [dead] = station.catalog.sessions()
    assert dead.finished_at is not None and dead.signature and dead.files_stored == 1
    after = verify_store(station.catalog, station.vault, keys)
    assert after.ok and not after.repairs
    assert not list(station.vault.temporaries()) and not station.catalog.pending()


def test_every_writing_start_recovers_and_reading_commands_change_nothing(
        settings: Settings, station: IngestContext) -> None:
    child = subprocess.run([sys.executable, "-c", CRASH, "leftover", "-"], check=False,
                           cwd=Path(__file__).parents[2])
    assert child.returncode == 9
    assert list(station.vault.temporaries())
    again = open_station(settings)  # as `evidock ingest` or the daemon start
    try:
        assert not list(again.vault.temporaries())
        [closed] = again.catalog.sessions()
        assert closed.finished_at is not None
    finally:
        again.close()


def test_an_unknown_usb_volume_is_docked_only_if_it_looks_like_a_recorder(
        settings: Settings, station: IngestContext, volume: Path, tmp_path: Path) -> None:
    from agent.worker import RecorderWorker
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "holiday.jpg").write_bytes(b"\xff\xd8 not a recorder")
    for root, expect in ((stick, "ignored"), (volume, "done")):
        info = RecorderInfo(usb_serial=f"U-{root.name}", vendor="abcd", product="1234",
                            model="unknown", volume_path=str(root))
        worker = RecorderWorker(settings, station, info, mounter=None)
        worker.run()
        assert worker.state == expect, worker.error
    assert station.catalog.count_recordings() == 6
    assert [e.kind for e in station.catalog.explanations()].count("unknown_model") == 1


def test_a_storage_only_model_cannot_be_set_to_clear(tmp_path: Path) -> None:
    from agent.settings import load_settings
    from storage.errors import ConfigError
    conf = tmp_path / "evidock.toml"
    conf.write_text('clear_after_ingest = true\n[[models]]\nname = "x"\nusb_vendor = "abcd"\n'
                    'usb_product = "0001"\ntransport = "storage"\n')
    with pytest.raises(ConfigError, match="command port"):
        load_settings(conf, {})


def test_a_recovery_killed_before_closing_explains_the_dock_once(
        settings: Settings, station: IngestContext, monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.run([sys.executable, "-c", CRASH, "leftover", "-"], check=False,
                           cwd=Path(__file__).parents[2])
    assert child.returncode == 9

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt  # as a SIGKILL after the explanation, before the close

    with monkeypatch.context() as patch:
        patch.setattr(station.catalog, "finish_session", killed)
        with pytest.raises(KeyboardInterrupt):
            recover(station)
    recover(station)  # the next start
    [dock] = station.catalog.sessions()
    assert dock.finished_at is not None
    kinds = [e.kind for e in station.catalog.explanations(session_id=dock.session_id)]
    assert kinds.count("dock_interrupted") == 1, kinds


TEN_YEARS = timedelta(days=3652)


def test_a_recorder_clock_ten_years_behind_is_corrected_with_its_own_times_kept(
        station: IngestContext, tmp_path: Path, clock: Clock) -> None:
    """Its names, metadata and log say 2016; the station knows the shift ended an hour ago."""
    volume = tmp_path / "recorder"
    record_shift(volume, ShiftPlan(), SHIFT_END - TEN_YEARS, ZONE)
    events = [DeviceEvent(e.at - TEN_YEARS, e.kind, e.detail)
              for e in log_with_an_interruption()]
    state = SimState(drift=-TEN_YEARS, events=list(events))
    sim = SimulatedRecorder(volume, state, zone=ZONE, now=lambda: clock().astimezone(ZONE))
    with sim:
        summary = dock(station, sim)
    assert summary.error is None
    found = kinds(summary)
    assert "clock_drift" in found and "late_ingest" not in found
    assert "implausible_time" not in found
    offset = int(-TEN_YEARS.total_seconds())
    rows = station.catalog.recordings()
    assert len(rows) == 6
    for row in rows:
        assert row.clock_offset_s == offset and row.record_version == 2
        assert SHIFT_END - timedelta(hours=2) <= row.recording_start <= SHIFT_END
        assert row.deadline == row.recording_end + timedelta(hours=24) and not row.late
        record = IngestRecord.from_row(row)
        signed = json.loads(record.canonical())
        assert signed["recorder_start"].startswith("2016-") and signed["clock_offset_s"] == offset
        assert station.key.public.verify(row.signature, record.canonical())
    assert {r.start_from for r in rows} >= {"filename"}
    [cut] = [e for e in summary.explanations if e.kind == "recording_interrupted"]
    assert cut.recording_id is not None and "the recorder's clock said 2016-" in cut.error
    [logged] = [e for e in station.catalog.rows(LoggedDeviceEvent) if e.kind == "low_battery"]
    assert logged.at.year == 2016 and logged.clock_offset_s == offset  # as the recorder said
    report = verify_store(station.catalog, station.vault, {station.key.key_id: station.key.public})
    assert report.ok, report.problems



def readiness_of(station: IngestContext) -> dict[str, object]:
    [session] = station.catalog.sessions()
    assert session.ready_json is not None
    found: dict[str, object] = json.loads(session.ready_json)
    return found


def test_after_its_dock_a_recorder_is_asked_again_and_a_full_one_is_not_ready(
        station: IngestContext, volume: Path, clock: Clock) -> None:
    used = sum(p.stat().st_size for p in volume.rglob("*") if p.is_file())
    with recorder(volume, SimState(capacity=used + 4096, battery=9), clock) as sim:
        summary = dock(station, sim)
    assert sim.commands[-4:] == ["ATH", "BAT", "STO", "GTM"]  # after MSC, as CLR would be
    ready = readiness_of(station)
    assert ready["storage_free"] == 4096 and ready["battery_pct"] == 9
    assert ready["unknown"] == [] and abs(float(ready["clock_drift_s"])) < 2  # type: ignore
    [not_ready] = [e for e in summary.explanations if e.kind == "not_ready"]
    assert not_ready.rule == "R13" and "% free (4,096 of" in not_ready.error
    assert "battery" not in not_ready.error  # not checked unless ready_min_battery_pct is set


def test_a_clock_left_unset_is_not_ready_and_a_battery_threshold_applies(
        station: IngestContext, volume: Path, clock: Clock) -> None:
    station.options = replace(station.options, ready_min_battery_pct=50.0)
    state = SimState(drift=timedelta(seconds=300), battery=20)
    sim = SimulatedRecorder(volume, state, zone=ZONE, now=lambda: clock().astimezone(ZONE))
    with sim:
        summary = dock(station, sim, sets_clock=False)
    [not_ready] = [e for e in summary.explanations if e.kind == "not_ready"]
    assert "clock still +300 s" in not_ready.error and "battery 20 %, below 50 %" in not_ready.error
    assert "storage" not in not_ready.error


def test_a_recorder_taken_away_after_its_copy_is_not_a_fault(
        station: IngestContext, volume: Path) -> None:
    with recorder(volume, SimState()) as sim:
        summary = dock(station, sim, pulled_at_storage=True)
    assert summary.error is None and station.catalog.count_recordings() == 6
    assert "not_ready" not in kinds(summary)
    ready = readiness_of(station)
    assert ready["battery_pct"] is None and ready["unknown"]
