"""Small files are recorded in groups: one pending note and one insert transaction a
group, one ledger leaf a file; a stop records the group first; a kill leaves only
copies that the next start removes and the next dock copies again."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agent.settings import Settings
from agent.station import open_station
from devices.media import make_photo, recorder_name
from devices.volume import FolderVolume
from ingest.dock import DockInterrupted, IngestContext, NoProgress
from ingest.filing import GROUP_FILES
from ingest.recovery import recover
from ingest.verify import verify_store
from storage.catalog import Catalog
from storage.errors import CatalogError
from tests.conftest import SHIFT_END, ZONE, Clock, run_dock

EVIDOCK = str(Path(sys.executable).with_name("evidock"))
PHOTOS = 150


def photos(folder: Path, count: int, twins: int = 0) -> None:
    """``count`` real JPEGs with distinct bytes (each its own comment segment), named as a
    recorder names them; then ``twins`` more holding the bytes of earlier ones."""
    media = folder / "DCIM" / "100MEDIA"
    media.mkdir(parents=True)
    picture = make_photo(folder / "source.jpg").read_bytes()
    (folder / "source.jpg").unlink()
    start = SHIFT_END.astimezone(ZONE) - timedelta(hours=2)
    made: list[bytes] = []
    for n in range(count + twins):
        comment = f"photo {n}".encode()
        data = (made[n - count] if n >= count else
                picture[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
                + picture[2:])
        made.append(data)
        name = recorder_name("ZFY0001", "100231", start + timedelta(seconds=7 * n), "JPG")
        (media / name).write_bytes(data)


def sealed_copies(work: Path) -> int:
    """Copies whole and read back (made read-only) in the work folders, not yet linked.
    Folders and copies come and go while this looks: what went meanwhile is not counted."""
    if not work.is_dir():
        return 0
    count = 0
    for owner in os.listdir(work):
        if owner.startswith("."):  # a work folder being made: never holds a copy
            continue
        try:
            names = os.listdir(work / owner)
        except (FileNotFoundError, NotADirectoryError):  # removed meanwhile, or a lock file
            continue
        for name in names:
            if not name.startswith(".tmp-"):
                continue
            try:
                mode = (work / owner / name).stat().st_mode
            except FileNotFoundError:  # linked and removed, or discarded, meanwhile
                continue
            count += mode & 0o222 == 0
    return count


def leaves(station: IngestContext) -> list[dict[str, object]]:
    return [json.loads(leaf.body) for leaf in station.catalog.leaves()]


def test_small_files_are_recorded_in_groups_with_a_ledger_leaf_each(
        station: IngestContext, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    photos(volume, PHOTOS, twins=3)
    summary = run_dock(station, FolderVolume(volume))
    assert summary.count("stored") == PHOTOS + 3 and not summary.failed
    assert station.catalog.count_recordings() == PHOTOS + 3
    assert len(list(station.vault.stored_files())) == PHOTOS  # a twin shares its file
    assert not list(station.vault.temporaries())
    bodies = leaves(station)
    notes = [b for b in bodies if any(c["table"] == "pending_copy" and c["row"]
                                      for c in b["changes"])]  # type: ignore[attr-defined]
    # one note leaf a group (a twin closes its group early: at most one more)
    assert math.ceil(PHOTOS / GROUP_FILES) <= len(notes) <= math.ceil(PHOTOS / GROUP_FILES) + 1
    recorded = [b for b in bodies if b["kind"] == "recording"]
    assert len(recorded) == PHOTOS + 3
    rows = {r.id: r for r in station.catalog.recordings()}
    for body in recorded:
        changes = {(c["table"], c["key"]): c["row"]
                   for c in body["changes"]}  # type: ignore[attr-defined]
        rec_id = int(body["subject"])  # type: ignore[call-overload]
        assert changes[("recording", str(rec_id))]["sha256"] == rows[rec_id].sha256
        # its own row and the note it completes (a twin has none); nothing of another file
        assert {t for t, _ in changes} <= {"recording", "pending_copy", "device", "officer"}
        assert [k for t, k in changes if t == "recording"] == [str(rec_id)]
        assert all(row is None for (t, _), row in changes.items() if t == "pending_copy")
    assert not station.catalog.pending()
    assert verify_store(station.catalog, station.vault,
                        {station.key.key_id: station.key.public}).ok


class StopAt(NoProgress):
    """Stops the dock as file ``n`` (from 1) is about to be copied."""

    def __init__(self, n: int):
        self.n, self.started = n, 0

    def file_started(self, path: str, size: int) -> None:
        self.started += 1
        if self.started == self.n:
            raise DockInterrupted("stopped by the test")


def test_a_stop_records_the_files_waiting_in_their_group_first(
        station: IngestContext, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    photos(volume, 100)
    summary = run_dock(station, FolderVolume(volume), progress=StopAt(90))
    assert summary.interrupted
    assert station.catalog.count_recordings() == 89 == summary.count("stored")
    assert not list(station.vault.temporaries()) and not station.catalog.pending()
    [stop] = [e for e in summary.explanations if e.kind == "dock_interrupted"]
    assert "the catalog holds 89 recording(s) made by this dock" in stop.action
    again = run_dock(station, FolderVolume(volume))
    assert again.count("stored") == 11 and again.count("already_held") == 89
    assert verify_store(station.catalog, station.vault,
                        {station.key.key_id: station.key.public}).ok


def test_a_kill_while_a_group_waits_leaves_copies_the_next_start_removes(
        home: Path, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    photos(volume, 400)
    proc = subprocess.Popen([EVIDOCK, "ingest", str(volume)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    work = home / "vault" / ".work"
    waiting = 0
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        waiting = sealed_copies(work)
        if waiting >= 10:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the dock ended before a group was seen waiting"
    shown = subprocess.run([EVIDOCK, "verify"], capture_output=True, text=True, check=False)
    assert "repair" in shown.stdout + shown.stderr
    again = subprocess.run([EVIDOCK, "ingest", str(volume)], capture_output=True, text=True,
                           check=False)
    assert again.returncode == 0, again.stderr
    explained = subprocess.run([EVIDOCK, "explain", "list", "--json"], capture_output=True,
                               text=True, check=True)
    [removed] = [e for e in json.loads(explained.stdout)
                 if e["kind"] == "unfinished_copy_removed"]
    assert "stopped before recording them" in removed["error"]
    listed = subprocess.run([EVIDOCK, "log", "--json"], capture_output=True, text=True,
                            check=True)
    assert len(json.loads(listed.stdout)) == 400  # every photo once
    ok = subprocess.run([EVIDOCK, "verify"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_a_fault_kept_in_quarantine_is_explained_even_if_the_dock_stops_before_its_row(
        settings: Settings, clock: Clock, station: IngestContext, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    volume = tmp_path / "volume"
    photos(volume, 20)
    (volume / "DCIM" / "100MEDIA" / "DSJ_ZFY0001_100231_20261120_150000.JPG").write_bytes(b"")

    def lost(self: Catalog, items: object) -> None:  # the catalog goes away between the
        raise CatalogError("catalog: cannot record: the server closed the connection")
    monkeypatch.setattr(Catalog, "add_recordings", lost)  # group's note and its rows
    summary = run_dock(station, FolderVolume(volume))
    monkeypatch.undo()
    assert summary.error and "noted as pending: the next start records them" in summary.error
    assert station.catalog.count_recordings() == 0 and len(station.catalog.pending()) == 21
    assert not [e for e in station.catalog.explanations() if e.kind == "empty_file"]
    station.close()  # as the process ends: its work folder is free to recover
    st = open_station(settings)
    st.clock = clock
    recover(st)
    [empty] = [e for e in st.catalog.explanations() if e.kind == "empty_file"]
    [rec] = [r for r in st.catalog.recordings() if r.size == 0]
    assert rec.state == "quarantined" and empty.recording_id == rec.id
    assert empty.vault_path == rec.vault_path and "kept in quarantine" in empty.action
    adopted = [e for e in st.catalog.explanations() if e.kind == "copy_adopted"]
    assert len(adopted) == 21
    assert sum("in quarantine (empty_file: its explanation follows)" in e.action
               for e in adopted) == 1
    assert st.catalog.count_recordings() == 21
    assert verify_store(st.catalog, st.vault, {st.key.key_id: st.key.public}).ok
