"""SIGTERM and Ctrl-C to evidock as a process: what the signal suites found, pinned down.

The daemon and `evidock ingest` run in sessions of their own, so a signal to the
process group reaches them and their children as a terminal's Ctrl-C does. A
stand-in ffprobe (a shell script first on PATH) marks the moment of a media
check: one that hangs, one that delivers the Ctrl-C itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from devices.simbus import SimulatedDock
from devices.simulator import SimState, SimulatedRecorder
from tests.conftest import ZONE
from tests.torture.stores import (
    EVIDOCK,
    DaemonRun,
    check_no_leftovers,
    check_sessions,
    open_sessions,
    run,
    stored,
)


def daemon_env(home: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "EVIDOCK_SIMBUS_DIR": str(tmp_path / "bus"),
            "EVIDOCK_DROP_FOLDERS": json.dumps([{"path": str(tmp_path / "drop"),
                                                 "device": "IR-2"}]),
            "EVIDOCK_DROP_SETTLE_S": "0.2", **extra}


def stand_in_ffprobe(folder: Path, body: str) -> str:
    """A PATH with an `ffprobe` first that runs ``body`` (sh)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ffprobe"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def explanations(home: Path, kind: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(home / "catalog.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("select * from explanation where kind = ?",
                                            (kind,))]
    finally:
        db.close()


def test_a_silent_recorder_and_a_queued_one_do_not_hold_up_a_stop(
        home: Path, tmp_path: Path, recent_volume: Path) -> None:
    """A silent recorder's conversation waited out each reply's timeouts (3 x 2 s a step)
    before seeing the stop; a recorder waiting for a free worker was then begun only to be
    interrupted. Now: the talk stops at once, the waiting one is not begun."""
    env = daemon_env(home, tmp_path, EVIDOCK_WORKERS="1")
    daemon = DaemonRun(home, env, tmp_path / "daemon.log")
    daemon.wait_running()
    silent = SimulatedDock(tmp_path / "bus", SimulatedRecorder(
        recent_volume, SimState(behaviour="silent"), zone=ZONE), "SIM-S").plug()
    waiting = SimulatedDock(tmp_path / "bus", SimulatedRecorder(
        recent_volume, SimState(), zone=ZONE), "SIM-Q")

    def states() -> dict[str, str]:
        return {d["usb_serial"]: d["state"] for d in (daemon.status() or {}).get("docked", [])}

    try:
        daemon.wait_for(lambda: states().get("SIM-S") == "talking", "talk to SIM-S")
        waiting.plug()
        daemon.wait_for(lambda: states().get("SIM-Q") == "queued", "queue SIM-Q")
        time.sleep(0.5)
        assert daemon.stopped_within(daemon.signal(signal.SIGTERM), 2.0) == 0
    finally:
        silent.unplug()
        waiting.unplug()
    recent = {r["usb_serial"]: r for r in (daemon.status() or {})["recent"]}
    assert recent["SIM-S"]["state"] == "interrupted"
    assert recent["SIM-Q"]["state"] == "not docked" and "not docked" in daemon.log.read_text()
    [why] = explanations(home, "dock_interrupted")
    assert why["session_id"] == recent["SIM-S"]["session"] and "stopping" in why["error"]
    db = sqlite3.connect(home / "catalog.db")
    assert db.execute("select usb_serial from dock_session").fetchall() == [("SIM-S",)]
    db.close()
    check_sessions(home)
    check_no_leftovers(home)


def test_sigterm_mid_copy_of_a_drop_folder_file_interrupts_that_dock(
        home: Path, tmp_path: Path) -> None:
    """Drop-folder docks could not be interrupted: a stop waited for the whole batch."""
    env = daemon_env(home, tmp_path, EVIDOCK_BLOCK_SIZE_KIB="16", EVIDOCK_HASH_THREAD="false")
    daemon = DaemonRun(home, env, tmp_path / "daemon.log")
    daemon.wait_running()
    big = tmp_path / "drop" / "interview.mp4"
    with big.open("wb") as out:
        for _ in range(32):
            out.write(os.urandom(8 << 20))  # 256 MiB
    daemon.wait_for(lambda: any(p.stat().st_size > 0 for p in (home / "vault").rglob(".tmp-*")),
                    "start copying")
    assert daemon.stopped_within(daemon.signal(signal.SIGTERM)) == 0, daemon.log.read_text()
    [why] = explanations(home, "dock_interrupted")
    assert why["source_path"] == big.name and "was discarded" in why["action"]
    assert stored(home) == {}
    check_no_leftovers(home)
    check_sessions(home)
    again = DaemonRun(home, env, tmp_path / "daemon.log")  # finds the file again and docks it
    again.wait_running()
    again.wait_for(lambda: ("IR-2", big.name) in stored(home) and not open_sessions(home),
                   "dock it at the next start")
    assert again.stopped_within(again.signal(signal.SIGTERM)) == 0


def test_a_dock_that_cannot_stop_in_time_is_left_to_the_next_start(
        home: Path, tmp_path: Path, one_clip: Path) -> None:
    """A media check that hangs (here, the stand-in ffprobe) held a stop without bound. Now
    the daemon exits 1 within 5 s, saying which dock it left; that session stays open with
    its copy, and the next start closes it with a true account."""
    checking = tmp_path / "checking"
    path = stand_in_ffprobe(tmp_path / "bin", f'touch "{checking}"\nexec sleep 60')
    env = daemon_env(home, tmp_path, PATH=path)
    daemon = DaemonRun(home, env, tmp_path / "daemon.log")
    try:
        daemon.wait_running()
        shutil.copy(one_clip, tmp_path / "drop" / "room2.mp4")
        daemon.wait_for(checking.exists, "check the clip")
        code = daemon.stopped_within(daemon.signal(signal.SIGTERM))
    finally:
        with suppress(ProcessLookupError):
            os.killpg(daemon.proc.pid, signal.SIGKILL)  # the stand-in, still asleep
    log = daemon.log.read_text()
    assert code == 1 and "CRITICAL" in log and "did not stop within 4 s" in log, log
    assert "room2.mp4" in log and "the next start closes the session" in log
    [left] = open_sessions(home)
    report = json.loads(run("verify", "--json", env=env).stdout)
    assert report["ok"] and {p["kind"] for p in report["awaiting_repair"]} == {
        "open_session", "unfinished_file"}, report
    env["PATH"] = os.environ["PATH"]
    again = DaemonRun(home, env, tmp_path / "daemon.log")
    again.wait_running()
    again.wait_for(lambda: ("IR-2", "room2.mp4") in stored(home) and not open_sessions(home),
                   "dock it at the next start")
    assert again.stopped_within(again.signal(signal.SIGTERM)) == 0
    [closed] = [e for e in explanations(home, "dock_interrupted") if e["session_id"] == left]
    assert "closed at the next start" in closed["action"]
    assert "holds 0 recording(s)" in closed["action"]
    check_sessions(home)
    check_no_leftovers(home)
    verified = json.loads(run("verify", "--json", env=env).stdout)
    assert verified["ok"] and not verified["awaiting_repair"], verified


def test_ctrl_c_during_a_media_check_discards_that_copy_and_quarantines_nothing(
        home: Path, tmp_path: Path, recent_volume: Path) -> None:
    """A terminal's Ctrl-C reaches ffprobe too; its death was recorded as the file being
    unreadable media, and a good clip went to quarantine. The stand-in ffprobe sends the
    Ctrl-C to its process group, as a terminal would, at the moment of the check."""
    path = stand_in_ffprobe(tmp_path / "bin", "kill -INT 0\nsleep 5")
    env = {**os.environ, "PATH": path}
    proc = subprocess.Popen([EVIDOCK, "ingest", str(recent_volume), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] and "Traceback" not in err
    assert [k for k in ("media_unreadable", "media_mismatch", "media_truncated")
            if explanations(home, k)] == []
    [why] = explanations(home, "dock_interrupted")
    assert why["source_path"].endswith(".MP4") and "was discarded" in why["action"]
    check_no_leftovers(home)  # nothing for a repair to do
    check_sessions(home)
    report = json.loads(run("verify", "--json").stdout)
    assert report["ok"] and not report["awaiting_repair"], report
    done = run("ingest", str(recent_volume), "--json")
    assert done.returncode == 1 and not json.loads(done.stdout)["interrupted"]  # the cut clip
    assert len(explanations(home, "media_truncated")) == 1  # only the clip cut short
    assert len(stored(home)) == sum(1 for p in recent_volume.rglob("*") if p.is_file())


def test_ctrl_c_to_the_daemon_during_a_media_check_quarantines_nothing(
        home: Path, tmp_path: Path, one_clip: Path) -> None:
    """The same for the daemon, whose docks run in threads while the signal's handler
    runs in the main thread: the dock must see the stop, not a verdict on the clip."""
    env = daemon_env(home, tmp_path, PATH=stand_in_ffprobe(tmp_path / "bin",
                                                           "kill -INT 0\nsleep 5"))
    daemon = DaemonRun(home, env, tmp_path / "daemon.log")
    daemon.wait_running()
    shutil.copy(one_clip, tmp_path / "drop" / "room2.mp4")
    daemon.wait_for(lambda: daemon.proc.poll() is not None, "stop", timeout=30)
    assert daemon.proc.returncode == 0 and not daemon.log_problems(), daemon.log.read_text()
    assert stored(home) == {} and explanations(home, "media_unreadable") == []
    [why] = explanations(home, "dock_interrupted")
    assert why["source_path"] == "room2.mp4" and "was discarded" in why["action"]
    check_sessions(home)
    check_no_leftovers(home)
    env["PATH"] = os.environ["PATH"]
    again = DaemonRun(home, env, tmp_path / "daemon.log")
    again.wait_running()
    again.wait_for(lambda: ("IR-2", "room2.mp4") in stored(home) and not open_sessions(home),
                   "dock it at the next start")
    assert again.stopped_within(again.signal(signal.SIGTERM)) == 0
    db = sqlite3.connect(home / "catalog.db")
    assert db.execute("select state from recording").fetchall() == [("stored",)]
    db.close()


def test_signals_during_the_exit_do_not_change_how_it_ended(
        home: Path, tmp_path: Path, recent_volume: Path) -> None:
    """A second SIGTERM while the daemon exited killed it (the interpreter's exit restores
    the default action): a clean stop was seen as death by signal."""
    daemon = DaemonRun(home, daemon_env(home, tmp_path), tmp_path / "daemon.log")
    daemon.wait_running()
    sent = daemon.signal(signal.SIGTERM)
    while daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)  # (does nothing once it is reaped)
        time.sleep(0.002)
    assert daemon.stopped_within(sent) == 0, daemon.log.read_text()
    assert not daemon.log_problems()
    env = {**os.environ, "EVIDOCK_BLOCK_SIZE_KIB": "16", "EVIDOCK_HASH_THREAD": "false"}
    proc = subprocess.Popen([EVIDOCK, "ingest", str(recent_volume), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((home / "vault").rglob(".tmp-*")):  # the dock is copying
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    while proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.002)
    out, err = proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert json.loads(out)["interrupted"] and "Traceback" not in err
    check_sessions(home)
    check_no_leftovers(home)


LOADING_CLI_GETS_CTRL_C = """
import importlib.abc, importlib.util, os, signal, sys, time

class CtrlCWhileLoading(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "cli" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):  # the second of imports, with a Ctrl-C in it
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

sys.meta_path.insert(0, CtrlCWhileLoading())
from agent.entry import main
main()
"""


def test_ctrl_c_while_evidock_loads_ends_it_quietly() -> None:
    """A Ctrl-C in the second of imports printed Python's KeyboardInterrupt traceback. Here
    the loading of `cli` is a stand-in that gets the Ctrl-C half-way."""
    done = subprocess.run([sys.executable, "-c", LOADING_CLI_GETS_CTRL_C], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGINT and done.stderr == "", done.stderr
