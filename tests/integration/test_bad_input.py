"""A hostile or broken volume never escapes the vault and never stops the run; the CLI
meets bad input (ids, dates, homes, keys, recorder text) with clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.settings import Settings
from agent.status import write_status
from cli import app
from devices.errors import SourceError, VolumeError
from devices.volume import FolderVolume, SourceEntry, SourceFile
from ingest.dock import IngestContext, NoProgress, Summary
from ingest.plan import Identity
from ingest.verify import verify_store
from storage.models import Explanation, Officer, now_utc
from storage.registry import Registry
from storage.text import shown
from tests.conftest import run_dock

GBK_NAME = "执法记录.MP4".encode("gbk")


def vault_is_contained(station: IngestContext) -> None:
    root = station.vault.root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            assert not path.is_symlink()
            assert path.resolve().is_relative_to(root)
    assert not list(station.vault.temporaries())


def test_hostile_names_links_and_special_files(station: IngestContext, tmp_path: Path,
                                               one_clip: Path) -> None:
    root = tmp_path / "hostile"
    (root / "...").mkdir(parents=True)
    data = one_clip.read_bytes()
    hostile = [b"..MP4", b"a..b.MP4", b"..\\..\\etc\\passwd", b"evil\nname.MP4", b"-rf.MP4",
               GBK_NAME, b"\xff\xfe\xfd.bin", b"x" * 250 + b".MP4", b".../deep.MP4"]
    for i, raw in enumerate(hostile):
        # distinct contents, so no file is set aside as a duplicate of another
        Path(os.fsdecode(os.fsencode(root) + b"/" + raw)).write_bytes(data + bytes([i]))
    (root / "passwd-link").symlink_to("/etc/passwd")
    (root / "etc-dir").symlink_to("/etc", target_is_directory=True)
    (root / "loop").symlink_to("loop")
    os.mkfifo(root / "pipe.MP4")
    summary = run_dock(station, FolderVolume(root))

    rows = station.catalog.recordings()
    assert len(rows) == len(hostile)
    assert {r.sha256 for r in rows} == {hashlib.sha256(data + bytes([i])).hexdigest()
                                        for i in range(len(hostile))}
    paths = {r.source_path for r in rows}
    assert "执法记录.MP4" in paths and "evil\nname.MP4" in paths
    assert "\\xff\\xfe\\xfd.bin" in paths  # undecodable bytes kept visibly, not dropped
    skipped = sorted((e.source_path, e.kind) for e in summary.explanations
                     if e.kind in {"symlink", "special_file"})
    assert skipped == [("etc-dir", "symlink"), ("loop", "symlink"),
                       ("passwd-link", "symlink"), ("pipe.MP4", "special_file")]
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    assert all(r.sha256 != passwd for r in rows)
    vault_is_contained(station)
    for row in rows:
        assert "\n" not in row.vault_path and ".." not in row.vault_path.split("/")


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root; CI runs as root")
def test_device_nodes_are_skipped_and_explained(station: IngestContext, tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    os.mknod(root / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: endless
    summary = run_dock(station, FolderVolume(root))
    assert [(e.kind, e.error) for e in summary.explanations] == [
        ("special_file", "character device")]
    assert station.catalog.count_recordings() == 0


class Hook(NoProgress):
    """Does something to the volume at a chosen moment of the copy."""

    def __init__(self, on_begin: object = None, on_first_block: object = None) -> None:
        self.on_begin = on_begin
        self.on_first_block = on_first_block
        self.fired = False

    def begin(self, files: int, total_bytes: int) -> None:
        if callable(self.on_begin):
            self.on_begin()

    def advance(self, nbytes: int) -> None:
        if not self.fired and callable(self.on_first_block):
            self.fired = True
            self.on_first_block()


def small_blocks(station: IngestContext) -> IngestContext:
    station.options = dataclasses.replace(station.options, block_size=4096)
    return station


def first_clip(volume: Path) -> Path:
    return sorted((volume / "DCIM/100MEDIA").glob("*.MP4"))[0]


def only_problem(summary: Summary) -> tuple[str, str]:
    [exp] = [e for e in summary.explanations
             if e.kind not in ("media_truncated", "unregistered_device")]
    return exp.kind, exp.action


def test_a_file_growing_during_the_copy_is_kept_aside_and_copied_again_next_time(
        station: IngestContext, volume: Path) -> None:
    clip = first_clip(volume)
    grow = Hook(on_first_block=lambda: clip.open("ab").write(b"more"))
    summary = run_dock(small_blocks(station), FolderVolume(volume), progress=grow)
    kind, action = only_problem(summary)
    assert kind == "source_changed" and "kept in quarantine" in action
    assert "stays on the recorder" not in action
    [kept] = [r for r in station.catalog.recordings() if r.source_path.endswith(clip.name)]
    assert kept.state == "quarantined" and kept.size == clip.stat().st_size  # what was read
    assert not list(station.vault.temporaries())
    again = run_dock(station, FolderVolume(volume))
    assert again.count("stored") == 1 and station.catalog.count_recordings() == 7


def test_a_file_deleted_during_the_copy_is_explained(station: IngestContext, volume: Path
                                                     ) -> None:
    clip = first_clip(volume)
    original = hashlib.sha256(clip.read_bytes()).hexdigest()
    summary = run_dock(small_blocks(station), FolderVolume(volume),
                       progress=Hook(on_first_block=clip.unlink))
    assert only_problem(summary)[0] == "source_vanished"
    # The whole file was read before it vanished: that copy is the only one left, so it
    # is kept (quarantined) with an explanation, not thrown away.
    assert station.catalog.count_recordings() == 6
    [kept] = [r for r in station.catalog.recordings() if r.state == "quarantined"
              and r.source_path.endswith(clip.name)]
    assert kept.sha256 == original and kept.vault_path.startswith("quarantine/")
    [exp] = [e for e in summary.explanations if e.kind == "source_vanished"]
    assert "stays on the recorder" not in exp.action and exp.recording_id == kept.id


def test_a_file_gone_or_swapped_for_a_link_before_its_turn(station: IngestContext,
                                                           volume: Path) -> None:
    clips = sorted((volume / "DCIM/100MEDIA").glob("*.MP4"))

    def meddle() -> None:
        clips[0].unlink()
        clips[1].unlink()
        clips[1].symlink_to("/etc/passwd")

    summary = run_dock(station, FolderVolume(volume), progress=Hook(on_begin=meddle))
    kinds = sorted(e.kind for e in summary.explanations
                   if e.kind not in ("media_truncated", "unregistered_device"))
    assert kinds == ["source_changed", "source_vanished"]
    assert station.catalog.count_recordings() == 4


class FailingVolume(FolderVolume):
    """A volume whose medium fails when one file is read (a bad flash block)."""

    def __init__(self, root: Path, bad: str):
        super().__init__(root)
        self.bad = bad

    def open(self, entry: SourceEntry) -> SourceFile:
        source = super().open(entry)
        if entry.name == self.bad:
            def broken(size: int) -> bytes:
                raise SourceError(f"read error in {entry.path} at byte 0: Input/output error")
            source.read = broken  # type: ignore[method-assign]
        return source


def test_an_unreadable_source_file_does_not_stop_the_rest(station: IngestContext,
                                                          volume: Path) -> None:
    bad = first_clip(volume).name
    summary = run_dock(station, FailingVolume(volume, bad))
    assert only_problem(summary)[0] == "unreadable_source"
    assert summary.failed and station.catalog.count_recordings() == 5
    keys = {station.key.key_id: station.key.public}
    assert verify_store(station.catalog, station.vault, keys).ok


def test_a_volume_that_is_not_there_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match="mount the recorder volume first"):
        FolderVolume(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(VolumeError):
        FolderVolume(tmp_path / "file")


# The CLI on bad input: clear errors, no tracebacks, nothing created, nothing forged ---------

cli_runner = CliRunner()


def evidock(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process, as a user would; exceptions are not caught for us."""
    result = cli_runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", [["show"], ["annotate", "--case", "x", "--by", "me"]])
def test_an_id_beyond_sqlite_integers_is_not_found(station: IngestContext,
                                                   command: list[str]) -> None:
    for rec_id in ("99999999999999999999999", str(2**63), str(2**63 - 1)):
        code, out, err = evidock(command[0], rec_id, *command[1:])
        assert code == 2 and f"no recording with id {rec_id}" in err and out == ""
        assert "Traceback" not in err


@pytest.mark.parametrize(("zone", "args", "count"), [
    ("Asia/Shanghai", ["--since", "0001-01-01"], 6),  # east: before year 1 in UTC
    ("Asia/Shanghai", ["--until", "0001-01-01"], 0),
    ("Asia/Shanghai", ["--since", "0001-01-01T00:00+05:00"], 6),
    ("Asia/Shanghai", ["--until", "9999-12-31"], 6),
    ("Asia/Shanghai", ["--since", "9999-12-31"], 0),
    ("America/New_York", ["--until", "9999-12-31T23:59"], 6),  # west: after year 9999
    ("America/New_York", ["--since", "9999-12-31T23:59"], 0),
    ("America/New_York", ["--since", "0001-01-01", "--until", "9999-12-31T23:59"], 6),
    ("", ["--since", "0001-01-01", "--until", "9999-12-31T23:59:59"], 6),  # the local zone
    ("", ["--until", "0001-01-01"], 0),
])
def test_log_dates_at_the_ends_of_the_calendar(station: IngestContext, volume: Path,
                                               monkeypatch: pytest.MonkeyPatch, zone: str,
                                               args: list[str], count: int) -> None:
    run_dock(station, FolderVolume(volume))
    monkeypatch.setenv("EVIDOCK_TIMEZONE", zone)
    code, out, err = evidock("log", "--json", *args)
    assert code == 0, err
    assert len(json.loads(out)) == count and "Traceback" not in err


READ_ONLY = [["device", "list"], ["officer", "list"], ["device", "show", "D1"],
             ["keys", "export-public"], ["log"], ["log", "--json"], ["show", "1"],
             ["explanations"], ["status"], ["verify"]]


@pytest.mark.parametrize("exists", [False, True], ids=["missing-home", "empty-home"])
@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_never_create_a_store(home: Path, args: list[str],
                                                 exists: bool) -> None:
    if exists:
        home.mkdir()
    code, out, err = evidock(*args)
    assert code == 2 and f"no evidock store at {home}" in err and out == ""
    assert "Traceback" not in err
    if exists:
        assert list(home.iterdir()) == []  # no catalog, no key, no vault, no run folder
    else:
        assert not home.exists()


def test_a_half_store_without_its_key_reads_but_is_never_given_a_new_key(
        station: IngestContext, settings: Settings) -> None:
    settings.key_file.chmod(0o600)
    settings.key_file.unlink()  # a catalog without its key: not silently given a new one
    before = sorted(p.name for p in settings.home.rglob("*"))
    code, _, err = evidock("keys", "export-public")
    assert code == 2 and str(settings.key_file) in err and "does not exist" in err
    for reading in (["device", "list"], ["log"], ["explanations"]):  # need no private key
        code, _, err = evidock(*reading)
        assert code == 0, err
    code, _, err = evidock("checkpoint")  # a writer signs: it names the missing key
    assert code == 2 and str(settings.key_file) in err
    assert not settings.key_file.exists()
    assert sorted(p.name for p in settings.home.rglob("*")) == before


@pytest.mark.parametrize("command", [["checkpoint"], ["keys", "show"],
                                     ["device", "register", "D1", "--by", "c"]])
@pytest.mark.parametrize(("damage", "message"), [
    ("empty", "is empty"),
    ("garbled", "is damaged"),
    ("folder", "is not a regular file"),
])
def test_a_damaged_station_key_is_a_clear_error(station: IngestContext, settings: Settings,
                                                command: list[str], damage: str,
                                                message: str) -> None:
    key = settings.key_file
    key.chmod(0o600)
    if damage == "folder":
        # Tests run as root, where chmod 000 does not stop reading; a folder in the key's
        # place is a key file that cannot be read as one (the permission branch itself is
        # covered in tests/unit by an open() that raises PermissionError).
        key.unlink()
        key.mkdir(mode=0o700)
    else:
        key.write_bytes(b"" if damage == "empty" else b"-----BEGIN PRIVATE KEY-----\nxx\n")
        key.chmod(0o400)
    code, out, err = evidock(*command)
    assert code == 1 and f"station key {key} {message}" in err and out == ""
    assert "Traceback" not in err and ("restore the key" in err or "chmod" in err)
    assert key.is_dir() if damage == "folder" else key.stat().st_size < 100  # left as it was


EVIL = "\x1b[2J\n"  # clear the screen, then forge a new line


def _assert_escaped(text: str, *fragments: str) -> None:
    assert "\x1b" not in text and "\u202e" not in text
    for fragment in fragments:
        assert shown(fragment) in text, fragment


def test_recorder_text_is_escaped_on_the_terminal_and_exact_in_json(
        station: IngestContext, settings: Settings, tmp_path: Path, one_clip: Path) -> None:
    device, officer, name = f"D{EVIL}1", f"O{EVIL}1", f"Evil{EVIL}Name"
    registry = Registry(station.catalog)
    registry.add_officer(Officer(officer_no=officer, name=name, unit_no="U1", role="officer"),
                         by="test")
    registry.register(device, usb_serial=f"S{EVIL}1", model=None, officer_no=officer,
                      by="test")
    root = tmp_path / "evil-volume"
    root.mkdir()
    clip = f"clip{EVIL}\u202eevil.MP4"
    (root / clip).write_bytes(one_clip.read_bytes())
    run_dock(station, FolderVolume(root), given=Identity(given_device=device,
                                                         given_officer=officer))
    [rec] = station.catalog.recordings()
    station.catalog.add_explanation(Explanation(
        kind="late_ingest", rule="R2", device_no=device, source_path=clip, recording_id=rec.id,
        occurred_at=now_utc(), error=f"recorder said {EVIL}[OK] all fine", action="explain"))
    assert (rec.device_no, rec.officer_no, rec.source_path) == (device, officer, clip)

    code, out, _ = evidock("log", "--device", device)
    assert code == 0
    # the table folds long cells over lines; what matters is no raw escape gets through
    assert "\x1b" not in out and "\u202e" not in out and "\\x1b" in out
    code, out, _ = evidock("show", str(rec.id))
    assert code == 0
    _assert_escaped(out, device, officer, clip)
    assert r'"recorder said \u001b[2J\n[OK] all fine"' in out  # its explanations, as JSON
    assert all(line.split(" ", 1)[0].isidentifier() for line in out.splitlines())
    code, out, _ = evidock("explanations")
    assert code == 0
    _assert_escaped(out, device, clip, f"recorder said {EVIL}[OK] all fine")
    assert all(line.startswith(("#", "    -> ")) for line in out.splitlines())
    for args in (["device", "list"], ["officer", "list"]):
        code, out, _ = evidock(*args)
        assert code == 0 and "\x1b" not in out and "\\x1b" in out, args
    code, out, _ = evidock("device", "show", device)
    assert code == 0
    _assert_escaped(out, device, officer, f"S{EVIL}1")

    # --json stays exact: JSON's own escaping keeps the terminal safe
    code, out, _ = evidock("log", "--json")
    assert code == 0 and "\x1b" not in out
    [row] = json.loads(out)
    assert (row["device"], row["officer"], row["source_path"]) == (device, officer, clip)
    code, out, _ = evidock("officer", "list", "--json")
    assert {o["name"] for o in json.loads(out)} >= {name}
    code, out, _ = evidock("explanations", "--json", "--kind", "late_ingest")
    assert [e["error"] for e in json.loads(out)] == [f"recorder said {EVIL}[OK] all fine"]
    code, out, _ = evidock("show", str(rec.id), "--json")
    assert json.loads(out)["source_path"] == clip


def test_status_escapes_what_recorders_said(station: IngestContext, settings: Settings) -> None:
    row = {"usb_serial": f"S{EVIL}1", "device": f"D{EVIL}1", "state": "copying",
           "files_done": 1, "files_total": 2, "bytes_done": 5, "bytes_total": 10,
           "error": f"reply {EVIL}garbled"}
    write_status(settings.run_dir, {
        "state": "running", "pid": os.getpid(), "station": "station-1",
        "started_at": "2026-11-20T10:00:00+00:00", "updated_at": "2026-11-20T10:00:00+00:00",
        "docked": [row], "recent": []})
    code, out, err = evidock("status")
    assert code == 0, err
    _assert_escaped(out, f"S{EVIL}1", f"D{EVIL}1", f"reply {EVIL}garbled")
    assert len(out.splitlines()) == 5  # header, docked:, one row, recent: none, faults: none
    code, out, _ = evidock("status", "--json")
    assert json.loads(out)["docked"] == [row]
    station.catalog.close()
    for leftover in settings.home.glob("catalog.db-*"):
        leftover.unlink()
    (settings.home / "catalog.db").write_bytes(b"not a catalog")  # unreadable to this user
    code, out, err = evidock("status")
    assert code == 0 and "open storage faults and violations (R3): unknown (" in out, err
