"""Crash torture: SIGKILL `evidock ingest` at random moments of real docks.

After each kill the next run starts (and so repairs); when a run completes, the
store must hold every file exactly once, verify clean, keep no temporary file,
and give every session a true, signed account; then a fresh store
begins. Two stores are tortured at once. CI runs 200 kills; `pytest --long`
runs 2000.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SHIFT_END

EVIDOCK = str(Path(sys.executable).with_name("evidock"))
# Read now: the `home` fixture clears every EVIDOCK_* variable before a test runs.
SEED = int(os.environ.get("EVIDOCK_TORTURE_SEED", "20261123"))
KILLS = os.environ.get("EVIDOCK_TORTURE_KILLS")
pytestmark = pytest.mark.torture


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVIDOCK, *args], capture_output=True, text=True, check=False,
                          timeout=300, env=env)


def make_volume(root: Path, template: Path, rng: random.Random) -> dict[str, str]:
    """The shift's clips plus small files, some the same bytes under other names."""
    shutil.copytree(template, root)
    extra = root / "DCIM" / "101MEDIA"
    extra.mkdir(parents=True)
    then = SHIFT_END.timestamp()
    clips = sorted(root.rglob("*.MP4"))
    # Real media with a few trailing bytes of their own: 12 distinct contents, each
    # under two names (the same bytes twice).
    blobs = [clips[n % len(clips)].read_bytes() + rng.randbytes(1 + n) for n in range(12)]
    for n in range(24):
        name = f"DSJ_ZFY0001_100231_20261120_{12 + n // 60:02d}{n % 60:02d}00.MP4"
        (extra / name).write_bytes(blobs[n % len(blobs)])
    for f in root.rglob("*"):
        if f.is_file():
            os.utime(f, (then, then))
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in root.rglob("*") if f.is_file()}


def check_store(home: Path, sources: dict[str, str], killed: set[str],
                env: dict[str, str] | None = None) -> None:
    """Every file once, `evidock verify` clean, no leftovers, every session truly closed."""
    verified = run("verify", "--json", env=env)
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["ok"], report
    assert not report["awaiting_repair"], report
    assert not list((home / "vault").rglob(".tmp-*"))
    db = sqlite3.connect(home / "catalog.db")
    try:
        rows = db.execute("select source_path, sha256 from recording").fetchall()
        sessions = db.execute("select session_id, finished_at, signature, files_stored "
                              "from dock_session").fetchall()
        for session_id, finished, signature, stored in sessions:
            assert finished is not None and signature, session_id
            (count,) = db.execute("select count(*) from recording where session_id = ?",
                                  (session_id,)).fetchone()
            assert stored == count, (session_id, stored, count)
        explained = {s for (s,) in db.execute(
            "select session_id from explanation where kind = 'dock_interrupted'")}
    finally:
        db.close()
    paths = [path for path, _ in rows]
    assert sorted(paths) == sorted(sources), set(sources) ^ set(paths)  # each exactly once
    for path, sha256 in rows:
        assert sha256 == sources[path], path
    missing = {s for s in killed if s in {row[0] for row in sessions}} - explained
    assert not missing, f"killed sessions without a dock_interrupted explanation: {missing}"


def open_sessions(home: Path) -> set[str]:
    db = sqlite3.connect(home / "catalog.db")
    try:
        if not db.execute("select 1 from sqlite_master where name = 'dock_session'").fetchall():
            return set()  # killed before the schema's one transaction committed
        return {s for (s,) in db.execute(
            "select session_id from dock_session where finished_at is null")}
    finally:
        db.close()


@dataclass
class Lane:
    """One store and one volume, killed over and over by its own thread."""

    home: Path
    volume: Path
    sources: dict[str, str]
    rng: random.Random
    kills: int = 0
    rounds: int = 0
    killed: set[str] = field(default_factory=set)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "EVIDOCK_HOME": str(self.home)}

    def torture(self, kills: int, startup: float, span: float) -> None:
        """Kill, restart, kill again... until a run completes; check; then a fresh store.

        Each run is killed at a random moment between the end of start-up (before it
        nothing is written) and the length of a full run; a run that finishes first
        ends the round and the store is checked. So kills land in the copy, in the
        repairs a restart makes, and in the closing of sessions.
        """
        while self.kills < kills:
            shutil.rmtree(self.home, ignore_errors=True)
            self.rounds += 1
            while True:
                proc = subprocess.Popen([EVIDOCK, "ingest", str(self.volume), "--json"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        env=self.env)
                assert proc.stderr is not None
                # Two lanes share the cores, so a run takes longer than alone; once the
                # lane has its kills, the round runs to its end.
                moment = self.rng.uniform(startup * 0.8, 1.5 * span)
                try:
                    proc.wait(timeout=moment if self.kills < kills else 300)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    proc.stderr.close()
                    self.kills += 1
                    if (self.home / "catalog.db").exists():
                        self.killed |= open_sessions(self.home)
                    continue
                err = proc.stderr.read().decode("utf-8", "replace")
                proc.stderr.close()
                assert proc.returncode in (0, 1), (self.rounds, err)
                break
            check_store(self.home, self.sources, self.killed, self.env)


@pytest.mark.timeout(1800)
def test_sigkill_at_random_moments_loses_nothing_and_leaves_a_true_record(
        home: Path, template_volume: Path, tmp_path: Path, long_mode: bool) -> None:
    seed = SEED
    kills = int(KILLS or (2000 if long_mode else 200))
    lanes = []
    for n in range(2):  # two stores at once: the machine's two cores stay busy
        rng = random.Random(seed + n)
        volume = tmp_path / f"volume-{n}"
        lanes.append(Lane(tmp_path / f"home-{n}", volume,
                          make_volume(volume, template_volume, rng), rng))
    started = time.monotonic()
    assert run("--help").returncode == 0
    startup = time.monotonic() - started  # nothing is written before the command runs
    started = time.monotonic()
    first = run("ingest", str(lanes[0].volume), "--json", env=lanes[0].env)
    span = time.monotonic() - started  # one full run
    assert first.returncode in (0, 1), first.stderr
    assert span < 60, f"a full ingest took {span:.1f} s"
    check_store(lanes[0].home, lanes[0].sources, set(), lanes[0].env)
    with ThreadPoolExecutor(len(lanes)) as pool:
        for done in [pool.submit(lane.torture, kills // len(lanes), startup, span)
                     for lane in lanes]:
            done.result()
    print(f"{sum(lane.kills for lane in lanes)} kills in "
          f"{sum(lane.rounds for lane in lanes)} rounds, {time.monotonic() - started:.0f} s")
    for lane in lanes:
        assert lane.rounds >= lane.kills // 10, f"{lane.kills} kills in {lane.rounds} rounds"
