"""The next file is copied while the one before it is read back, checked and recorded, so
the recorder is read without pause; one read of the recorder at a time; a dock that ends
meanwhile discards that copy at its next block."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from devices.media import recorder_name
from devices.volume import FolderVolume, SourceEntry, SourceFile
from ingest.dock import DockInterrupted, IngestContext, NoProgress
from ingest.filing import GROUP_FILE_BYTES
from ingest.verify import verify_store
from tests.conftest import SHIFT_END, ZONE, run_dock

FILES = 4
SIZE = GROUP_FILE_BYTES + (3 << 20)  # each file recorded on its own, several blocks long


def clips(folder: Path) -> list[str]:
    media = folder / "DCIM" / "100MEDIA"
    media.mkdir(parents=True)
    names = []
    for n in range(FILES):
        name = recorder_name("ZFY0001", "100231", SHIFT_END.astimezone(ZONE).replace(
            minute=n), "MP4")
        (media / name).write_bytes(os.urandom(SIZE))  # not media: kept in quarantine
        names.append(name)
    return names


class Watched(FolderVolume):
    """A recorder's volume that notes which thread opens each file, how many read at once,
    and how many bytes each read gives; ``hold`` makes reads after a file's first block
    wait (up to 10 s) until it is set."""

    def __init__(self, root: Path, hold: set[str] | None = None):
        super().__init__(root)
        self.opened: list[tuple[str, str]] = []  # (file name, thread name)
        self.bytes: dict[str, int] = {}
        self.reading = 0
        self.most_at_once = 0
        self.hold = hold or set()
        self.released = threading.Event()
        self.lock = threading.Lock()

    def open(self, entry: SourceEntry) -> SourceFile:
        with self.lock:
            self.opened.append((Path(entry.path).name, threading.current_thread().name))
            self.reading += 1
            self.most_at_once = max(self.most_at_once, self.reading)
        return WatchedFile(self, super().open(entry))


class WatchedFile(SourceFile):
    """A source file of a Watched volume (the same file, its reads counted)."""

    def __init__(self, volume: Watched, real: SourceFile):
        self.__dict__.update(real.__dict__)
        self.volume, self.name = volume, Path(real.entry.path).name

    def read(self, size: int) -> bytes:
        if self.name in self.volume.hold and self.volume.bytes.get(self.name, 0):
            self.volume.released.wait(10)
        block = super().read(size)
        self.volume.bytes[self.name] = self.volume.bytes.get(self.name, 0) + len(block)
        return block

    def close(self) -> None:
        with self.volume.lock:
            self.volume.reading -= 1
        super().close()


def test_the_next_file_is_copied_while_the_one_before_is_checked(
        station: IngestContext, tmp_path: Path) -> None:
    names = clips(tmp_path / "volume")
    volume = Watched(tmp_path / "volume")
    summary = run_dock(station, volume)
    assert summary.count("quarantined") == FILES and not summary.count("failed")
    assert [n for n, _ in volume.opened] == names  # each once, in order
    assert [t for _, t in volume.opened][1:] == ["copy-ahead"] * (FILES - 1)
    assert volume.most_at_once == 1  # one read of the recorder at a time
    assert not list(station.vault.temporaries())
    assert verify_store(station.catalog, station.vault,
                        {station.key.key_id: station.key.public}).ok


class StopAtSecond(NoProgress):
    def __init__(self, volume: Watched):
        self.volume, self.started = volume, 0

    def file_started(self, path: str, size: int) -> None:
        self.started += 1
        if self.started == 2:
            self.volume.released.set()  # the copy ahead may read on: it must stop itself
            raise DockInterrupted("stopped by the test")


def test_a_dock_that_stops_discards_the_copy_made_ahead_at_its_next_block(
        station: IngestContext, tmp_path: Path) -> None:
    names = clips(tmp_path / "volume")
    volume = Watched(tmp_path / "volume", hold={names[1]})
    summary = run_dock(station, volume, progress=StopAtSecond(volume))
    assert summary.interrupted
    assert station.catalog.count_recordings() == 1 == summary.count("quarantined")
    assert (names[1], "copy-ahead") in volume.opened
    assert volume.bytes[names[1]] < SIZE  # stopped at its next block, not read to the end
    assert not list(station.vault.temporaries()) and not station.catalog.pending()
    again = run_dock(station, Watched(tmp_path / "volume"))
    assert again.count("quarantined") == FILES - 1
    assert verify_store(station.catalog, station.vault,
                        {station.key.key_id: station.key.public}).ok
