"""A hostile or broken volume never escapes the vault and never stops the run."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from pathlib import Path

import pytest

from devices.errors import SourceError, VolumeError
from devices.volume import FolderVolume, SourceEntry, SourceFile
from ingest.dock import IngestContext, NoProgress, Summary
from ingest.verify import verify_store
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
