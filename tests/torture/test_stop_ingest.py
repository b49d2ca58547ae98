"""Signal torture: SIGTERM and Ctrl-C to `evidock ingest` at random moments.

Ctrl-C is sent as a terminal sends it: SIGINT to the whole process group, so
the ffprobe that evidock runs gets it too. After each stop, before anything
else runs (no repair): exit code 143 for SIGTERM, 130 for SIGINT; the file in
hand finished or discarded; no open session, no temporary file, no work
folder, `verify` clean with nothing waiting for repair; every session closed
and signed with the catalog's counts, an interrupted one explained with a true
account; nothing stored twice. After every three signals a run goes undisturbed
and must store the rest, each file exactly once; then the store starts afresh.

A signal that lands before `evidock ingest` has set its handlers (the first
second of Python start-up) ends the process as the signal's default does; that
is allowed only if the run wrote nothing.

CI: 20 signals; `pytest --long`: 2000; EVIDOCK_TORTURE_SIGNALS overrides.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devices.media import recorder_name
from tests.conftest import ZONE
from tests.torture.stores import (
    EVIDOCK,
    check_cli,
    check_no_leftovers,
    check_once,
    check_sessions,
    check_states,
    knob,
    open_sessions,
    run,
    sha256,
    states,
    verify_here,
)

pytestmark = pytest.mark.torture
DEVICE = "ZFY0001"


def make_volume(root: Path, template: Path, rng: random.Random) -> dict[tuple[str, str], str]:
    """The shift's files and 24 more real clips (one of them cut short), each with bytes
    of its own after it but the last, which repeats the first's bytes under its own name."""
    shutil.copytree(template, root)
    clips = [p.read_bytes() for p in sorted(root.rglob("*.MP4"))]
    folder = root / "DCIM" / "101MEDIA"
    folder.mkdir()
    start = datetime(2026, 11, 20, 9, 0, tzinfo=ZONE)
    first = b""
    for n in range(24):
        name = recorder_name(DEVICE, "100231", start + timedelta(minutes=n), "MP4")
        data = first if n == 23 else clips[n % len(clips)] + rng.randbytes(1 + n)
        first = first or data
        (folder / name).write_bytes(data)
    return {(DEVICE, f.relative_to(root).as_posix()): sha256(f.read_bytes())
            for f in root.rglob("*") if f.is_file()}


@pytest.mark.timeout(900)
def test_sigterm_and_ctrl_c_stop_ingest_cleanly_and_the_next_run_stores_the_rest(
        home: Path, recent_template: Path, tmp_path: Path, long_mode: bool) -> None:
    seed = knob("SEED", 20261201)
    signals = knob("SIGNALS", 2000 if long_mode else 20)
    rng = random.Random(seed)
    volume = tmp_path / "volume"
    expected = make_volume(volume, recent_template, rng)
    env = {**os.environ, "EVIDOCK_BLOCK_SIZE_KIB": "16", "EVIDOCK_HASH_THREAD": "false"}
    started = time.monotonic()
    boot = run("config", "show", "--json", env=env)
    assert boot.returncode == 0, boot.stderr
    booting = time.monotonic() - started  # Python start-up, before any handler is set
    started = time.monotonic()
    first = run("ingest", str(volume), "--json", env=env)
    span = time.monotonic() - started
    assert first.returncode in (0, 1), first.stderr
    check_once(home, expected, complete=True)
    truth = states(home)  # what an undisturbed run stores and what it quarantines
    sent = {signal.SIGTERM: 0, signal.SIGINT: 0}
    early = interrupted = 0
    began = time.monotonic()
    n = 0
    while n < signals:
        shutil.rmtree(home, ignore_errors=True)  # each group of stops begins on an empty store
        for _ in range(3):
            if n >= signals:
                break
            signum = signal.SIGINT if n % 2 else signal.SIGTERM
            before = _sessions(home)
            proc = subprocess.Popen([EVIDOCK, "ingest", str(volume), "--json"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
            if rng.random() < 0.2:  # while it starts
                time.sleep(rng.uniform(0, booting))
            else:  # while it docks (or, now and then, just after)
                while _sessions(home) == before and proc.poll() is None:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0, max(span - booting, 0.2)))
            if signum == signal.SIGINT:
                os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C
            else:
                proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
            code = proc.returncode
            sent[signum] += 1
            n += 1
            if code == -signum:  # before the handlers were set: nothing may have been written
                assert _sessions(home) == before, err
                assert _before_evidock_ran(err), err
                early += 1
            elif code in (0, 1):  # after the exit code was decided: the run was whole
                assert not json.loads(out)["interrupted"], out
            else:
                assert code == 128 + signum, (code, err)
                if out:
                    summary = json.loads(out)
                    interrupted += summary["interrupted"]
            assert "Traceback" not in err or code == -signal.SIGINT, err
            if not (home / "catalog.db").exists():
                continue
            assert not open_sessions(home)
            check_no_leftovers(home)  # nothing waiting for repair: no temporary, no work folder
            check_sessions(home)
            check_once(home, expected)
            check_states(home, truth)
            verify_here(env)
        done = run("ingest", str(volume), "--json", env=env)
        assert done.returncode in (0, 1), done.stderr
        assert not json.loads(done.stdout)["interrupted"]
        check_sessions(home)
        check_once(home, expected, complete=True)
        check_states(home, truth)
        if n % 9 == 0 or n >= signals:
            check_cli(home, expected, env)
    print(f"\n{signals} signals ({sent[signal.SIGTERM]} SIGTERM, {sent[signal.SIGINT]} "
          f"SIGINT to the group) in {time.monotonic() - began:.0f} s; {interrupted} docks "
          f"interrupted, {early} before the handlers were set")


def _sessions(home: Path) -> set[str]:
    if not (home / "catalog.db").exists():
        return set()
    db = sqlite3.connect(home / "catalog.db")
    try:
        return {s for (s,) in db.execute("select session_id from dock_session")}
    except sqlite3.OperationalError:  # made a moment ago: no tables yet
        return set()
    finally:
        db.close()


def _before_evidock_ran(err: str) -> bool:
    """Python's own KeyboardInterrupt traceback can show only if Ctrl-C came while the
    interpreter itself was starting, before evidock's entry point ran (agent/entry.py)."""
    if "Traceback" not in err:
        return True
    root = str(Path(__file__).parents[2])
    frames = [line for line in err.splitlines() if line.strip().startswith("File ")]
    return err.rstrip().endswith("KeyboardInterrupt") and not any(
        root in line and "/.venv/" not in line and "agent/entry.py" not in line
        for line in frames)
