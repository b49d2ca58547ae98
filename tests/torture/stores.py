"""What the signal and crash suites check of a store after each stop, and how they run
evidock as a process.

The per-cycle checks read the catalog with sqlite3 and the vault with the file
system: cheap enough for hundreds of cycles. `evidock verify` and `evidock log`
themselves (a process start each) run every few cycles and at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVIDOCK = str(Path(sys.executable).with_name("evidock"))
HELD = re.compile(r"the catalog holds (\d+) recording\(s\) made by this dock")
LISTED = re.compile(r"of the (\d+) file\(s\) listed on the volume, (\d+) were already held and "
                    r"(\d+) were not stored by this dock")
SIGNAL_EXIT_S = 5.0  # the bound: signal to exit
# Read at collection: the `home` fixture clears every EVIDOCK_* variable before a test runs.
_OVERRIDES = {k: v for k, v in os.environ.items() if k.startswith("EVIDOCK_TORTURE_")}


def knob(name: str, default: int) -> int:
    """EVIDOCK_TORTURE_<name> if set when the tests were collected, else ``default``."""
    return int(_OVERRIDES.get(f"EVIDOCK_TORTURE_{name}", default))


def run(*args: str, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVIDOCK, *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=env)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(home: Path) -> dict[tuple[str, str], list[str]]:
    """(device, source path) -> the SHA-256 of each recording row naming it."""
    db = sqlite3.connect(home / "catalog.db")
    try:
        rows = db.execute("select device_no, source_path, sha256 from recording").fetchall()
    finally:
        db.close()
    found: dict[tuple[str, str], list[str]] = {}
    for device, path, digest in rows:
        found.setdefault((device, path), []).append(digest)
    return found


def check_once(home: Path, expected: dict[tuple[str, str], str], *,
               complete: bool = False) -> None:
    """No file stored twice, none stored that was not there, every digest right; with
    ``complete``, every expected file stored."""
    found = stored(home)
    for key, digests in found.items():
        assert key in expected, f"stored, but never on any volume: {key}"
        assert digests == [expected[key]], (key, digests, expected[key])
    if complete:
        missing = set(expected) - set(found)
        assert not missing, f"not stored: {sorted(missing)[:5]} ({len(missing)})"


def states(home: Path) -> dict[tuple[str, str], str]:
    """(device, source path) -> stored or quarantined."""
    db = sqlite3.connect(home / "catalog.db")
    try:
        return {(device, path): state for device, path, state in db.execute(
            "select device_no, source_path, state from recording")}
    finally:
        db.close()


def check_states(home: Path, truth: dict[tuple[str, str], str]) -> None:
    """Each file kept as an undisturbed run keeps it: a stop never sends a good file to
    quarantine (say, because the ffprobe checking it was stopped too)."""
    for key, state in states(home).items():
        assert state == truth[key], (key, state, truth[key])


def open_sessions(home: Path) -> set[str]:
    if not (home / "catalog.db").exists():
        return set()
    db = sqlite3.connect(home / "catalog.db")
    try:
        return {s for (s,) in db.execute(
            "select session_id from dock_session where finished_at is null")}
    finally:
        db.close()


def check_sessions(home: Path, killed: frozenset[str] | set[str] = frozenset()) -> int:
    """Every session closed and signed, its counts the catalog's, every interrupted one
    explained once with the catalog's true account. Returns how many were interrupted."""
    db = sqlite3.connect(home / "catalog.db")
    try:
        sessions = db.execute(
            "select session_id, finished_at, signature, summary_json, files_stored, "
            "files_seen, files_already_held, interrupted from dock_session").fetchall()
        counts = dict(db.execute(
            "select session_id, count(*) from recording group by session_id").fetchall())
        explained: dict[str, list[str]] = {}
        for session, action in db.execute(
                "select session_id, action from explanation where kind = 'dock_interrupted'"):
            explained.setdefault(session, []).append(action)
    finally:
        db.close()
    interrupted = 0
    for sid, finished, signature, summary, files, seen, held, was_cut in sessions:
        count = counts.get(sid, 0)
        assert finished is not None and signature and summary, f"session {sid} left open"
        assert files == count == json.loads(summary)["files_stored"], (sid, files, count)
        if sid in killed:
            assert was_cut, f"killed session {sid} not marked interrupted"
        if not was_cut:
            continue
        interrupted += 1
        assert len(explained.get(sid, [])) == 1, (sid, explained.get(sid))
        [account] = explained[sid]
        held_now = HELD.search(account)
        assert held_now and int(held_now.group(1)) == count, (sid, count, account)
        if seen:
            listed = LISTED.search(account)
            assert listed, account
            assert (int(listed.group(1)), int(listed.group(2))) == (seen, held), (
                sid, seen, held, account)
            assert int(listed.group(3)) == max(seen - count - held, 0), account
        assert "did not clear" in account, account
    return interrupted


def check_no_leftovers(home: Path) -> None:
    """No temporary copy anywhere in the vault, and no work folder of a finished process."""
    vault = home / "vault"
    assert not list(vault.rglob(".tmp-*")), list(vault.rglob(".tmp-*"))
    work = vault / ".work"
    if work.exists():
        folders = [p.name for p in work.iterdir() if p.is_dir()]
        assert not folders, f"work folders left: {folders}"


def check_cli(home: Path, expected: dict[tuple[str, str], str], env: dict[str, str]) -> None:
    """`evidock log` holds every file exactly once; `evidock verify` is clean and finds
    nothing waiting for repair."""
    rows = json.loads(run("log", "--json", env=env).stdout)
    keys = [(r["device"], r["source_path"]) for r in rows]
    assert sorted(keys) == sorted(expected), set(keys) ^ set(expected)
    for r in rows:
        assert r["sha256"] == expected[(r["device"], r["source_path"])], r
    verified = run("verify", "--json", env=env)
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["ok"], report
    assert not report["awaiting_repair"], report


def verify_here(env: dict[str, str]) -> None:
    """The same check as `evidock verify`, without a process start: clean, nothing
    waiting for repair."""
    from agent.settings import load_settings
    from agent.station import open_station, trusted_keys
    from ingest.verify import verify_store

    settings = load_settings(environ=env)
    station = open_station(settings, create=False)
    try:
        report = verify_store(station.catalog, station.vault, trusted_keys(settings))
    finally:
        station.close()
    assert report.ok, report.problems
    assert not report.repairs, report.repairs


@dataclass
class DaemonRun:
    """`evidock daemon` as a process in a session of its own (so that a whole-group
    signal reaches it and its children as a terminal's Ctrl-C does)."""

    home: Path
    env: dict[str, str]
    log: Path

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen([EVIDOCK, "-v", "daemon", "--no-udev"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
                                     start_new_session=True)

    def status(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.home / "run" / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if data.get("pid") == self.proc.pid else None

    def wait_for(self, test: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not test():
            assert self.proc.poll() is None, f"daemon ended ({what}):\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"daemon did not {what}:\n{self.log.read_text()}"
            time.sleep(0.02)

    def wait_running(self) -> None:
        self.wait_for(lambda: (self.status() or {}).get("state") == "running", "start")

    def signal(self, signum: int, *, group: bool = False) -> float:
        """Send ``signum`` (to the whole process group with ``group``); the time sent."""
        sent = time.monotonic()
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)
        return sent

    def stopped_within(self, sent: float, bound: float = SIGNAL_EXIT_S) -> int:
        """Wait for the exit; assert it came within ``bound`` of ``sent``; the exit code."""
        try:
            code = self.proc.wait(timeout=bound + 30)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no exit 30 s after the bound:\n{self.log.read_text()}") \
                from exc
        took = time.monotonic() - sent
        assert took < bound, f"exit took {took:.2f} s:\n{self.log.read_text()}"
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log_problems(self) -> list[str]:
        """Tracebacks and critical lines in its log: none is expected after a clean stop."""
        text = self.log.read_text(errors="replace")
        return [line for line in text.splitlines()
                if "Traceback" in line or "CRITICAL" in line or "Error:" in line]
