"""Stopping a dock, in-process: what the signal suites found, each pinned down here.

Real simulated recorders on ptys, real vaults and catalogs; only the moment of
the stop is chosen by the test.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from agent.daemon import Daemon
from agent.settings import DropFolder, Settings
from agent.worker import RecorderWorker
from devices.events import RecorderInfo
from devices.simulator import SimState, SimulatedRecorder
from devices.source import CheckedLink, DockedRecorder
from ingest.dock import DockInterrupted, IngestContext, NoProgress
from ingest.pipeline import Dock
from tests.conftest import ZONE


def serial_face(sim: SimulatedRecorder) -> RecorderInfo:
    return RecorderInfo(usb_serial="SIM-1", vendor="1209", product="e5d1",
                        model="evidock-sim-serial", tty=sim.port)


def test_a_silent_recorder_is_let_go_at_once_when_the_station_stops(
        settings: Settings, station: IngestContext, volume: Path) -> None:
    """Each step waits up to 3 x 2 s for a recorder that says nothing; a stop used to wait
    that out (5.6 s measured, beyond the 5 s a stop may take)."""
    with SimulatedRecorder(volume, SimState(behaviour="silent"), zone=ZONE) as sim:
        worker = RecorderWorker(settings, station, serial_face(sim), mounter=None)
        thread = threading.Thread(target=worker.run)
        thread.start()
        deadline = time.monotonic() + 10
        while worker.state != "talking" and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # well inside the first reply's 2 s timeout
        asked = time.monotonic()
        worker.cancel("the station is stopping")
        assert worker.wait(timeout=1.0), "the worker did not stop within 1 s"
        took = time.monotonic() - asked
        thread.join()
    assert took < 0.5, took
    assert worker.state == "interrupted" and worker.summary is not None
    [why] = [e for e in station.catalog.explanations() if e.kind == "dock_interrupted"]
    assert "stopping" in why.error and "holds 0 recording(s)" in why.action
    [session] = station.catalog.sessions()
    assert session.finished_at is not None and session.interrupted


class StopAfterFiles(NoProgress):
    """Asks the dock to stop once its last file is done: between copying and clearing."""

    def __init__(self, files: int):
        self.left = files
        self.checked_after = 0

    def file_done(self, path: str, status: str) -> None:
        self.left -= 1

    def check(self) -> None:
        if self.left <= 0:
            self.checked_after += 1
            raise DockInterrupted("the station is stopping")


def test_a_dock_told_to_stop_after_its_last_file_does_not_begin_clearing(
        station: IngestContext, volume: Path) -> None:
    sorted(volume.rglob("*.MP4"))[-1].unlink()  # the clip cut short: the rest may be cleared
    files = sum(1 for p in volume.rglob("*") if p.is_file())
    with SimulatedRecorder(volume, SimState(), zone=ZONE) as sim:
        storage = RecorderInfo(usb_serial="SIM-1", vendor="1209", product="e5d1",
                               model="evidock-sim-serial", volume_path=str(volume))
        source = DockedRecorder(serial_face(sim), serial=True, baudrate=115200,
                                password="000000", sets_clock=False, can_clear=True,
                                wait_storage=lambda: storage, mounter=None,
                                mount_dir=volume.parent / "mnt")
        progress = StopAfterFiles(files)
        summary = Dock(station, source, clear=True, progress=progress).run()
    assert progress.checked_after == 1 and summary.interrupted
    assert station.catalog.count_recordings() == files  # every file stored: clearable
    assert "CLR" not in sim.commands and station.catalog.clearings() == []
    assert all(p.is_file() for p in volume.rglob("*.MP4"))
    [why] = [e for e in summary.explanations if e.kind == "dock_interrupted"]
    assert "did not clear the recorder" in why.action


def test_a_drop_file_ready_as_the_daemon_stops_is_left_for_the_next_start(
        settings: Settings, station: IngestContext, tmp_path: Path, one_clip: Path) -> None:
    """The last status tick after the stop used to hand it to the pool, already shut:
    RuntimeError, a traceback and exit 1 instead of a clean stop."""
    drop = tmp_path / "drop"
    drop.mkdir()
    daemon = Daemon(settings.model_copy(update={
        "drop_folders": [DropFolder(path=drop, device="IR-2")],
        "runtime_dir": tmp_path / "run"}), station, [])
    assert daemon.drops is not None
    daemon.drops.start()
    clip = drop / "room2.mp4"
    clip.write_bytes(one_clip.read_bytes())
    daemon.drops._touch(clip, closed=True)  # its writer closed it: ready at the next tick
    daemon.request_stop()
    assert daemon.shutdown() == []
    assert station.catalog.sessions() == [] and clip.exists()


def test_ctrl_c_in_any_command_exits_130(home: Path, monkeypatch: pytest.MonkeyPatch,
                                         recent_volume: Path) -> None:
    """A Ctrl-C reaches commands other than ingest and the daemon as KeyboardInterrupt;
    click made that "Aborted!" and exit 1, which reads as a failure."""
    assert CliRunner().invoke(cli.app, ["ingest", str(recent_volume), "--json"]).exit_code in (
        0, 1)

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ingest.verify.verify_store", interrupted)  # (cli imports it in verify)
    result = CliRunner().invoke(cli.app, ["verify"])
    assert result.exit_code == 130 and "stopped by Ctrl-C" in result.output


class Silent:
    """A link on which nothing ever arrives."""

    def __init__(self) -> None:
        self.reads: list[float] = []

    def write(self, data: bytes) -> None:
        return None

    def read(self, size: int, timeout: float) -> bytes:
        self.reads.append(timeout)
        time.sleep(timeout)
        return b""

    def close(self) -> None:
        return None


def test_a_checked_link_waits_in_slices_and_lets_a_stop_through() -> None:
    stop_at = time.monotonic() + 0.3

    def check() -> None:
        if time.monotonic() >= stop_at:
            raise DockInterrupted("stop")

    link = Silent()
    began = time.monotonic()
    with pytest.raises(DockInterrupted):
        CheckedLink(link, check, every=0.05).read(100, 5.0)
    assert time.monotonic() - began < 0.5 and max(link.reads) <= 0.05
    link = Silent()
    assert CheckedLink(link, lambda: None, every=0.05).read(100, 0.2) == b""  # times out
    assert 0.19 <= sum(link.reads) <= 0.3
