"""Signal torture: SIGTERM (and Ctrl-C) to the docking daemon at random moments.

Each cycle starts the real daemon on a store that lives across cycles, gives it
something to dock (new files in its drop folder, or a simulated recorder on the
simulated bus whose volume gained files), and signals it before, during or after
that dock. Every stop must be clean within 5 s: exit 0, status "stopped", no
traceback, every session closed and signed with the catalog's counts, every
interrupted one explained with a true account, no temporary copy or work folder
left, nothing stored twice. What a stop left undocked is docked by a later
start; at the end everything is stored exactly once and `evidock verify` is
clean.

One SIGINT cycle in ten goes to the daemon's whole process group, as a
terminal's Ctrl-C does (its ffprobe children get it too); a few cycles send a
second signal while the first stop is under way.

Two stores are stopped in turn at once, one a core, since each cycle is mostly
the ~1 s Python start of `evidock`. CI: 200 stops; `pytest --long`: 2000;
EVIDOCK_TORTURE_STOPS overrides.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.media import recorder_name
from devices.simbus import SimulatedDock
from devices.simulator import SimState, SimulatedRecorder
from tests.conftest import ZONE
from tests.torture.stores import (
    DaemonRun,
    check_cli,
    check_no_leftovers,
    check_once,
    check_sessions,
    knob,
    open_sessions,
    sha256,
    stored,
    verify_here,
)

pytestmark = pytest.mark.torture

DROP_DEVICE = "IR-2"
RECORDER = ("ZFY0001", "100231")  # the simulated recorder's identity


class Lane:
    """One store, its drop folder and its simulated recorder, stopped over and over."""

    def __init__(self, root: Path, clips: list[bytes], seed: int):
        self.root = root
        self.home, self.drop, self.bus = root / "home", root / "drop", root / "bus"
        self.volume = root / "recorder"
        for folder in (self.drop, self.volume / "DCIM" / "100MEDIA"):
            folder.mkdir(parents=True)
        self.clips = clips
        self.rng = random.Random(seed)
        self.expected: dict[tuple[str, str], str] = {}
        self.files = 0
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")},
                    "EVIDOCK_HOME": str(self.home), "EVIDOCK_TIMEZONE": "Asia/Shanghai",
                    "EVIDOCK_STATION_ID": f"station-{root.name}",
                    "EVIDOCK_AGENCY": "Test Agency", "EVIDOCK_SIMBUS_DIR": str(self.bus),
                    "EVIDOCK_DROP_FOLDERS": json.dumps(
                        [{"path": str(self.drop), "device": DROP_DEVICE}]),
                    "EVIDOCK_DROP_SETTLE_S": "0.2", "EVIDOCK_WORKERS": "2",
                    "EVIDOCK_BLOCK_SIZE_KIB": "16", "EVIDOCK_HASH_THREAD": "false"}
        self.started = datetime.now(UTC) - timedelta(hours=2)
        self.stops = self.interrupted = 0
        self.took: list[float] = []  # signal to exit, each stop
        self.starting = self.checking = 0.0  # seconds spent starting daemons, checking stores

    def content(self) -> bytes:
        """A real clip with bytes of its own after it; now and then one already given."""
        if self.expected and self.rng.random() < 0.15:
            return self.rng.choice(list(self.clips))
        return self.rng.choice(self.clips) + self.rng.randbytes(16)

    def drop_files(self) -> None:
        """New files, each written straight into the drop folder and closed."""
        for _ in range(self.rng.randint(1, 4)):
            self.files += 1
            name = f"room2-{self.files:05d}.mp4"
            data = self.content()
            (self.drop / name).write_bytes(data)
            self.expected[(DROP_DEVICE, name)] = sha256(data)

    def recorder_files(self) -> None:
        for _ in range(self.rng.randint(1, 3)):
            self.files += 1
            start = (self.started + timedelta(seconds=self.files)).astimezone(ZONE)
            rel = f"DCIM/100MEDIA/{recorder_name(*RECORDER, start, 'MP4')}"
            data = self.content()
            (self.volume / rel).write_bytes(data)
            self.expected[(RECORDER[0], rel)] = sha256(data)

    def plug(self) -> SimulatedDock:
        state = SimState(drift=timedelta(seconds=3))
        return SimulatedDock(self.bus, SimulatedRecorder(self.volume, state, zone=ZONE),
                             f"SIM-{self.root.name}").plug()

    def tidy(self) -> None:
        """Take away what is stored, as a custodian does: each start sees only the rest."""
        held = stored(self.home)
        for (device, path) in held:
            folder = self.drop if device == DROP_DEVICE else self.volume
            (folder / path).unlink(missing_ok=True)

    def cycle(self, n: int, span: float) -> None:
        began = time.monotonic()
        daemon = DaemonRun(self.home, self.env, self.root / "daemon.log")
        daemon.wait_running()
        self.starting += time.monotonic() - began
        by_recorder = self.rng.random() < 0.25
        ctrl_c = n % 10 == 9
        twice = self.rng.random() < 0.05
        when = self.rng.uniform(-0.3, 1.5 * span * (2 if by_recorder else 1))
        plugged = None
        if when < 0:  # before the dock: the files come while it is stopping
            time.sleep(self.rng.uniform(0, 0.3))
        elif by_recorder:
            self.recorder_files()
            plugged = self.plug()
        else:
            self.drop_files()
        time.sleep(max(when, 0))
        signum = signal.SIGINT if ctrl_c else signal.SIGTERM
        sent = daemon.signal(signum, group=ctrl_c)
        if when < 0:
            self.drop_files()
        if twice:
            time.sleep(self.rng.uniform(0, 0.2))
            if daemon.proc.poll() is None:
                daemon.signal(signal.SIGTERM)
        code = daemon.stopped_within(sent)
        self.took.append(time.monotonic() - sent)
        if plugged is not None:
            plugged.unplug()
        began = time.monotonic()
        assert code == 0, (n, code, daemon.log.read_text())
        assert (daemon.status() or {}).get("state") == "stopped", daemon.log.read_text()
        assert not daemon.log_problems(), daemon.log.read_text()
        check_no_leftovers(self.home)
        assert not open_sessions(self.home)
        self.interrupted = check_sessions(self.home)
        check_once(self.home, self.expected)
        if n % 20 == 19:
            verify_here(self.env)
        self.stops += 1
        self.tidy()
        self.checking += time.monotonic() - began

    def finish(self) -> None:
        """One last start docks whatever the stops left; then every file is there once."""
        daemon = DaemonRun(self.home, self.env, self.root / "daemon.log")
        daemon.wait_running()
        plugged = self.plug() if any(self.volume.rglob("*.MP4")) else None
        want = set(self.expected)
        daemon.wait_for(lambda: want <= set(stored(self.home)) and not open_sessions(
            self.home), "dock what was left", timeout=120)
        if plugged is not None:
            daemon.wait_for(lambda: not (daemon.status() or {}).get("docked"), "finish")
        code = daemon.stopped_within(daemon.signal(signal.SIGTERM))
        if plugged is not None:
            plugged.unplug()
        assert code == 0 and not daemon.log_problems(), daemon.log.read_text()
        check_no_leftovers(self.home)
        check_sessions(self.home)
        check_once(self.home, self.expected, complete=True)
        check_cli(self.home, self.expected, self.env)


def calibrate(lane: Lane) -> float:
    """How long one dock of a few dropped files takes here (seconds, at least 0.2)."""
    daemon = DaemonRun(lane.home, lane.env, lane.root / "daemon.log")
    daemon.wait_running()
    began = time.monotonic()
    lane.drop_files()
    want = set(lane.expected)
    daemon.wait_for(lambda: want <= set(stored(lane.home)) and not open_sessions(lane.home),
                    "dock the first files")
    span = time.monotonic() - began
    assert daemon.stopped_within(daemon.signal(signal.SIGTERM)) == 0
    lane.tidy()
    return max(span, 0.2)


@pytest.mark.timeout(1500)
def test_every_sigterm_and_ctrl_c_is_a_clean_stop_within_5_s(
        tmp_path: Path, recent_template: Path, long_mode: bool) -> None:
    seed = knob("SEED", 20261129)
    stops = knob("STOPS", 2000 if long_mode else 200)
    lanes_n = knob("LANES", 2)
    clips = [p.read_bytes() for p in sorted(recent_template.rglob("*.MP4"))]  # one cut short
    lanes = [Lane(tmp_path / f"lane{n}", clips, seed + n) for n in range(lanes_n)]
    began = time.monotonic()

    def work(lane: Lane, count: int) -> None:
        span = calibrate(lane)
        for n in range(count):
            lane.cycle(n, span)
        lane.finish()

    share = [stops // lanes_n + (n < stops % lanes_n) for n in range(lanes_n)]
    with ThreadPoolExecutor(lanes_n) as pool:
        for done in [pool.submit(work, lane, count) for lane, count in zip(
                lanes, share, strict=True)]:
            done.result()
    took = sorted(t for lane in lanes for t in lane.took)
    assert sum(lane.stops for lane in lanes) == stops
    print(f"\n{stops} stops in {time.monotonic() - began:.0f} s on {lanes_n} stores at once; "
          f"signal to exit: median {took[len(took) // 2]:.2f} s, slowest {took[-1]:.2f} s; "
          f"a start took {sum(lane.starting for lane in lanes) / stops:.2f} s on average, "
          f"the checks {sum(lane.checking for lane in lanes) / stops:.2f} s; "
          f"{sum(lane.interrupted for lane in lanes)} docks interrupted")
    for lane in lanes:
        shutil.rmtree(lane.root, ignore_errors=True)
