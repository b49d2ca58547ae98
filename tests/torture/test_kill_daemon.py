"""Crash torture: SIGKILL the docking daemon at random moments of real docks.

Each cycle starts the daemon (its start repairs what the last one left), lets it
finish what the killed one was docking (the drop folder's files are found again
at start; the simulated recorder is plugged in again), checks the store, then
gives it new files (dropped, or on the recorder) and kills it at a random
moment: mostly mid-dock, sometimes during its own start-up repair. After every
completed dock: every file stored exactly once with its digest, no temporary
file, every session closed and signed with the catalog's counts, every killed
session marked interrupted and explained once with a true account; `evidock
verify` clean with nothing waiting for repair every tenth cycle and at the end.

CI: 30 kills; `pytest --long`: 2000; EVIDOCK_TORTURE_KILLS overrides.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.torture.stores import (
    DaemonRun,
    check_cli,
    check_no_leftovers,
    check_once,
    check_sessions,
    knob,
    open_sessions,
    stored,
    verify_here,
)
from tests.torture.test_stop_daemon import Lane, calibrate

pytestmark = pytest.mark.torture


def idle(daemon: DaemonRun, lane: Lane) -> bool:
    status = daemon.status() or {}
    return (status.get("state") == "running" and not status.get("docked")
            and set(lane.expected) <= set(stored(lane.home)) and not open_sessions(lane.home))


def only_live_work(lane: Lane) -> None:
    """While a daemon runs and docks nothing: no temporary file, one work folder (its own)."""
    vault = lane.home / "vault"
    assert not list(vault.rglob(".tmp-*")), list(vault.rglob(".tmp-*"))
    folders = [p for p in (vault / ".work").iterdir() if p.is_dir()]
    assert len(folders) <= 1, folders


@pytest.mark.timeout(900)
def test_sigkill_of_the_daemon_loses_nothing_and_leaves_a_true_record(
        tmp_path: Path, recent_template: Path, long_mode: bool) -> None:
    seed = knob("SEED", 20261130)
    kills = knob("KILLS", 2000 if long_mode else 30)
    clips = [p.read_bytes() for p in sorted(recent_template.rglob("*.MP4"))]
    lane = Lane(tmp_path / "store", clips, seed)
    rng = lane.rng
    began = time.monotonic()
    span = calibrate(lane)
    killed: set[str] = set()
    during_start = 0
    for n in range(kills):
        daemon = DaemonRun(lane.home, lane.env, lane.root / "daemon.log")
        if rng.random() < 0.15:  # kill its start: the repair of the last kill, cut short
            time.sleep(rng.uniform(0.3, 1.5))
            daemon.kill()
            killed |= open_sessions(lane.home)
            during_start += 1
            continue
        daemon.wait_running()
        plugged = lane.plug() if any(lane.volume.rglob("*.MP4")) else None
        daemon.wait_for(lambda d=daemon: idle(d, lane), "finish the killed dock", timeout=120)
        if plugged is not None:
            plugged.unplug()
        only_live_work(lane)
        check_sessions(lane.home, killed)
        check_once(lane.home, lane.expected, complete=True)
        if n % 10 == 9:
            verify_here(lane.env)
        lane.tidy()
        by_recorder = rng.random() < 0.3
        if by_recorder:
            lane.recorder_files()
            plugged = lane.plug()
        else:
            lane.drop_files()
            plugged = None
        time.sleep(rng.uniform(0, span * (2 if by_recorder else 1.2)))
        daemon.kill()
        if plugged is not None:
            plugged.unplug()
        killed |= open_sessions(lane.home)
    daemon = DaemonRun(lane.home, lane.env, lane.root / "daemon.log")
    daemon.wait_running()
    plugged = lane.plug() if any(lane.volume.rglob("*.MP4")) else None
    daemon.wait_for(lambda: idle(daemon, lane), "dock what was left", timeout=120)
    assert daemon.stopped_within(daemon.signal(signal.SIGTERM)) == 0, daemon.log.read_text()
    if plugged is not None:
        plugged.unplug()
    check_no_leftovers(lane.home)
    interrupted = check_sessions(lane.home, killed)
    check_once(lane.home, lane.expected, complete=True)
    check_cli(lane.home, lane.expected, lane.env)
    print(f"\n{kills} kills ({during_start} during start-up) in "
          f"{time.monotonic() - began:.0f} s; {len(killed)} sessions killed open, "
          f"{interrupted} interrupted in all; {len(lane.expected)} files")
