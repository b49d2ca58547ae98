"""The daemon as a real process, docking simulated recorders on the simulated bus."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.media import ShiftPlan, record_shift
from devices.simbus import POLL_S, SimulatedDock
from devices.simulator import SimIdentity, SimState, SimulatedRecorder
from storage.catalog import Catalog
from tests.conftest import ZONE

EVIDOCK = str(Path(sys.executable).with_name("evidock"))


class DaemonProcess:
    def __init__(self, home: Path, bus: Path, env: dict[str, str], *, udev: bool = False):
        self.home, self.bus = home, bus
        self.log = home.parent / "daemon.log"
        command = [EVIDOCK, "-v", "daemon", "--udev" if udev else "--no-udev"]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("w"))
        self.wait(lambda s: s["state"] == "running", "start")

    def status(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.home / "run" / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data

    def wait(self, test: Callable[[dict[str, Any]], bool], what: str,
             timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and test(status):
                return status
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        raise AssertionError(f"daemon did not {what}: {self.status()}\n{self.log.read_text()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture
def daemon(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    bus = tmp_path / "bus"
    env = {**os.environ, "EVIDOCK_SIMBUS_DIR": str(bus), "EVIDOCK_WORKERS": "2"}
    proc = DaemonProcess(home, bus, env)
    yield proc
    if proc.proc.poll() is None:
        proc.stop()


def recorder(bus: Path, volume: Path, serial: str, device: str) -> SimulatedDock:
    state = SimState(identity=SimIdentity(device=device), drift=timedelta(seconds=40),
                     battery=51)
    return SimulatedDock(bus, SimulatedRecorder(volume, state, zone=ZONE), serial)


def done(serial: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: any(r["usb_serial"] == serial and r["state"] in ("done", "interrupted",
                                                                       "failed")
                         for r in s["recent"])


def entry(status: dict[str, Any], serial: str) -> dict[str, Any]:
    return next(r for r in status["recent"] if r["usb_serial"] == serial)


def evidock_json(*args: str) -> Any:
    done_ = subprocess.run([EVIDOCK, *args, "--json"], capture_output=True, text=True,
                           check=False, timeout=60)
    return json.loads(done_.stdout)


def test_two_recorders_at_once_then_sigterm(daemon: DaemonProcess, recent_volume: Path,
                                            tmp_path: Path) -> None:
    second = tmp_path / "second"
    # Only clips: ffmpeg's test photo and tone are the same bytes in every shift, and the
    # second copy of the same bytes is (rightly) set aside as a duplicate.
    record_shift(second, ShiftPlan(device="ZFY0002", officer="100232", truncated=False,
                                   photo=False, audio=False),
                 datetime.now(UTC) - timedelta(hours=2), ZONE)
    a = recorder(daemon.bus, recent_volume, "SIM-A", "ZFY0001").plug()
    b = recorder(daemon.bus, second, "SIM-B", "ZFY0002").plug()
    both = daemon.wait(lambda s: done("SIM-A")(s) and done("SIM-B")(s), "dock both")
    a.unplug()
    b.unplug()
    for serial, files in (("SIM-A", 6), ("SIM-B", 3)):
        got = entry(both, serial)
        assert got["state"] == "done" and got["files_done"] == got["files_total"] == files
        assert got["battery_pct"] == 51 and 38 <= got["clock_drift_s"] <= 42
    shown = evidock_json("status")
    assert shown["state"] == "running" and {r["usb_serial"] for r in shown["recent"]} == {
        "SIM-A", "SIM-B"}
    # the truncated clip on SIM-A is an open storage fault (R3): status shows it
    assert [e["kind"] for e in shown["attention"]] == ["media_truncated"]
    rows = evidock_json("log")
    assert {r["device"] for r in rows} == {"ZFY0001", "ZFY0002"} and len(rows) == 9
    # The recorder's identity names officer 100231 (张伟); the second recorder's files name
    # 100232: the file names win, the registry has no name for 100232, and the
    # disagreement is explained rather than silently rewritten.
    assert {(r["officer"], r["officer_name"]) for r in rows} == {("100231", "张伟"),
                                                                 ("100232", None)}
    [conflict] = [e for e in evidock_json("explanations", "--kind", "identity_conflict")]
    assert "officer 100232" in conflict["error"] and "100231" in conflict["error"]
    assert a.recorder.commands[:9] == ["ATH", "VER", "GID", "GTM", "STM", "BAT", "STO", "LOG",
                                       "MSC"]
    assert daemon.stop() == 0
    assert daemon.status()["state"] == "stopped"  # type: ignore[index]
    stopped = subprocess.run([EVIDOCK, "status"], capture_output=True, text=True, check=False)
    assert stopped.returncode == 1 and "not running" in stopped.stderr
    assert subprocess.run([EVIDOCK, "verify"], capture_output=True, check=False).returncode == 0


def test_a_recorder_pulled_mid_copy_is_explained_and_resumed_next_dock(
        home: Path, tmp_path: Path, recent_volume: Path) -> None:
    bus = tmp_path / "bus"
    env = {**os.environ, "EVIDOCK_SIMBUS_DIR": str(bus), "EVIDOCK_BLOCK_SIZE_KIB": "16",
           "EVIDOCK_HASH_THREAD": "false"}
    daemon = DaemonProcess(home, bus, env)
    big = recent_volume / "DCIM" / "100MEDIA" / "DSJ_ZFY0001_100231_20261122_000000.MP4"
    with big.open("wb") as out:
        for _ in range(48):
            out.write(os.urandom(8 << 20))  # 384 MiB: long enough to pull it out mid-copy
    first = recorder(bus, recent_volume, "SIM-P", "ZFY0001").plug()
    daemon.wait(lambda s: any(r["bytes_done"] > 0 and r["current"] == big.relative_to(
        recent_volume).as_posix() for r in s["docked"]), "start copying the big file")
    first.unplug()
    status = daemon.wait(done("SIM-P"), "notice the unplug")
    assert entry(status, "SIM-P")["state"] == "interrupted"
    assert not list((home / "vault").rglob(".tmp-*"))  # the partial copy was discarded
    assert big.name not in {Path(r["source_path"]).name for r in evidock_json("log")}
    session = entry(status, "SIM-P")["session"]
    [why] = evidock_json("explanations", "--session", session, "--kind", "dock_interrupted")
    assert why["source_path"].endswith(big.name) and "removed" in why["error"]
    stored = len(evidock_json("log"))
    assert "was discarded" in why["action"] and "stay on the recorder" not in why["action"]
    assert f"the catalog holds {stored} recording(s) made by this dock" in why["action"]

    again = recorder(bus, recent_volume, "SIM-P", "ZFY0001").plug()
    status = daemon.wait(lambda s: sum(r["usb_serial"] == "SIM-P" for r in s["recent"]) == 2,
                         "dock again")
    again.unplug()
    latest = status["recent"][0]
    assert latest["state"] == "done" and latest["session"] != session
    rows = evidock_json("log")
    assert big.name in {Path(r["source_path"]).name for r in rows} and len(rows) == 7
    assert daemon.stop() == 0


def test_systemd_notify_ready_watchdog_and_stopping(home: Path, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(30)
        env = {**os.environ, "EVIDOCK_SIMBUS_DIR": str(tmp_path / "bus"),
               "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "600000"}
        daemon = DaemonProcess(home, tmp_path / "bus", env)
        got = [sock.recv(4096).decode() for _ in range(4)]
        assert got[0] == "READY=1" and got[1].startswith("STATUS=")
        assert got[2:] == ["WATCHDOG=1", "WATCHDOG=1"]  # every WatchdogSec/2 = 0.3 s
        assert daemon.stop() == 0
        rest = []
        while "STOPPING=1" not in rest:
            rest.append(sock.recv(4096).decode())


def test_drop_folder_files_are_ingested_once_complete(home: Path, tmp_path: Path,
                                                      one_clip: Path) -> None:
    drop = tmp_path / "cctv-exports"
    conf = tmp_path / "evidock.toml"
    conf.write_text(f'[[drop_folders]]\npath = "{drop}"\ndevice = "CCTV-3"\n'
                    'officer = "200001"\n')
    env = {**os.environ, "EVIDOCK_CONFIG": str(conf), "EVIDOCK_SIMBUS_DIR": str(tmp_path / "b")}
    daemon = DaemonProcess(home, tmp_path / "b", env)
    data = one_clip.read_bytes()
    with (drop / "room2-0930.mp4").open("wb") as out:  # written in two halves, slowly
        out.write(data[: len(data) // 2])
        out.flush()
        time.sleep(1.0)
        assert evidock_json("log") == []  # not while it is being written
        out.write(data[len(data) // 2:])
    deadline = time.monotonic() + 30
    while not (rows := evidock_json("log")) and time.monotonic() < deadline:
        time.sleep(0.2)
    [row] = rows
    assert (row["device"], row["officer"], row["source_path"]) == (
        "CCTV-3", "200001", "room2-0930.mp4")
    assert row["size"] == len(data)
    assert daemon.stop() == 0


def test_clearing_after_ingest_happens_only_when_everything_is_verified(
        home: Path, tmp_path: Path, recent_volume: Path) -> None:
    bus = tmp_path / "bus"
    env = {**os.environ, "EVIDOCK_SIMBUS_DIR": str(bus), "EVIDOCK_CLEAR_AFTER_INGEST": "true"}
    daemon = DaemonProcess(home, bus, env)
    first = recorder(bus, recent_volume, "SIM-C", "ZFY0001").plug()
    daemon.wait(done("SIM-C"), "dock")
    first.unplug()
    assert "CLR" not in first.recorder.commands  # a damaged (quarantined) file: never cleared
    [damaged] = [r["source_path"] for r in evidock_json("log") if r["state"] == "quarantined"]
    (recent_volume / damaged).unlink()  # the truncated clip: the custodian deals with it
    time.sleep(4 * POLL_S)  # the bus sees the recorder gone before it is plugged again
    again = recorder(bus, recent_volume, "SIM-C", "ZFY0001").plug()
    daemon.wait(lambda s: sum(r["usb_serial"] == "SIM-C" for r in s["recent"]) == 2, "dock")
    again.unplug()
    summaries = [json.loads(d.summary_json or "{}").get("cleared") for d in Catalog.open(
        evidock_json("config", "show")["catalog_url"]).sessions()]
    assert "CLR" in again.recorder.commands, summaries
    assert not [p for p in recent_volume.rglob("*") if p.is_file()]
    assert len(evidock_json("log")) == 6
    catalog = Catalog.open(evidock_json("config", "show")["catalog_url"])
    [clearing] = catalog.clearings()
    assert clearing.outcome == "cleared" and len(json.loads(clearing.files_json)) == 5
    # A recorder with a file that cannot be stored is not cleared.
    (recent_volume / "pipe").mkdir()
    os.mkfifo(recent_volume / "pipe" / "clip.MP4")
    (recent_volume / "new.MP4").write_bytes(b"fresh evidence")
    second = recorder(bus, recent_volume, "SIM-C", "ZFY0001").plug()
    daemon.wait(lambda s: sum(r["usb_serial"] == "SIM-C" for r in s["recent"]) == 3, "dock")
    second.unplug()
    assert "CLR" not in second.recorder.commands
    assert (recent_volume / "new.MP4").exists()
    assert daemon.stop() == 0


def test_a_recorder_with_the_wrong_password_is_explained_not_ingested(
        daemon: DaemonProcess, recent_volume: Path) -> None:
    state = SimState(password="654321")  # the model's configured password is 000000
    dock = SimulatedDock(daemon.bus, SimulatedRecorder(recent_volume, state, zone=ZONE),
                         "SIM-W").plug()
    status = daemon.wait(done("SIM-W"), "give up on it")
    dock.unplug()
    assert entry(status, "SIM-W")["state"] == "failed"
    assert "wrong password" in entry(status, "SIM-W")["error"]
    [why] = evidock_json("explanations", "--kind", "dock_failed")
    assert "SIM-W" in why["error"] and "holds 0 recording(s)" in why["action"]
    assert "did not clear the recorder" in why["action"]
    assert evidock_json("log") == []
    assert dock.recorder.commands == ["ATH"]


def test_sigterm_mid_copy_interrupts_the_dock_with_an_explanation(
        home: Path, tmp_path: Path, recent_volume: Path) -> None:
    bus = tmp_path / "bus"
    env = {**os.environ, "EVIDOCK_SIMBUS_DIR": str(bus), "EVIDOCK_BLOCK_SIZE_KIB": "16",
           "EVIDOCK_HASH_THREAD": "false"}
    daemon = DaemonProcess(home, bus, env)
    big = recent_volume / "DCIM" / "100MEDIA" / "DSJ_ZFY0001_100231_20261122_000000.MP4"
    with big.open("wb") as out:
        for _ in range(24):
            out.write(os.urandom(8 << 20))
    dock = recorder(bus, recent_volume, "SIM-T", "ZFY0001").plug()
    daemon.wait(lambda s: any(r["bytes_done"] > 0 and (r["current"] or "").endswith(big.name)
                              for r in s["docked"]), "start copying the big file")
    assert daemon.stop() == 0
    dock.unplug()
    [why] = evidock_json("explanations", "--kind", "dock_interrupted")
    assert "stopping" in why["error"] and why["source_path"].endswith(big.name)
    assert not list((home / "vault").rglob(".tmp-*"))
    assert big.name not in {Path(r["source_path"]).name for r in evidock_json("log")}
    assert subprocess.run([EVIDOCK, "verify"], capture_output=True, check=False).returncode == 0
