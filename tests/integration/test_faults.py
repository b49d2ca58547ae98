"""Storage faults become written explanations; the evidence stays on the recorder."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.settings import Settings
from agent.station import open_station
from devices.volume import FolderVolume
from ingest.dock import IngestContext
from ingest.verify import verify_store
from storage.vault import OsFileOps
from tests.conftest import Clock, run_dock

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="mounting a tmpfs needs root; CI runs as root")


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                   check=True)


@pytest.fixture
def small_vault(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "vault"
    mount_tmpfs(where, "256k")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def station_on(settings: Settings, vault: Path, clock: Clock) -> IngestContext:
    ctx = open_station(settings.model_copy(update={"vault_root": vault}))
    ctx.clock = clock
    return ctx


def keys(ctx: IngestContext) -> dict[str, object]:
    return {ctx.key.key_id: ctx.key.public}


@pytest.mark.root
@needs_root
def test_a_full_vault_leaves_files_on_the_recorder_with_explanations(
        settings: Settings, clock: Clock, volume: Path, small_vault: Path) -> None:
    ctx = station_on(settings, small_vault, clock)
    summary = run_dock(ctx, FolderVolume(volume))
    full = [e for e in summary.explanations if e.kind == "vault_full"]
    stored = ctx.catalog.count_recordings()
    assert full and stored >= 1 and stored + len(full) == 6
    assert all("No space left" in e.error and "did not clear this file" in e.action
               and "stays on the recorder" not in e.action for e in full)
    assert summary.failed
    assert not list(ctx.vault.temporaries())
    assert verify_store(ctx.catalog, ctx.vault, keys(ctx)).ok  # type: ignore[arg-type]
    # Space is added; the next dock stores exactly what is missing.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_vault)], check=True)
    clock.advance(minutes=10)
    again = run_dock(ctx, FolderVolume(volume))
    assert again.count("stored") + again.count("quarantined") == len(full)
    assert ctx.catalog.count_recordings() == 6


@pytest.mark.root
@needs_root
def test_a_read_only_vault_stores_nothing_and_says_so(
        settings: Settings, clock: Clock, volume: Path, small_vault: Path) -> None:
    ctx = station_on(settings, small_vault, clock)
    (small_vault / "files").mkdir()
    subprocess.run(["mount", "-o", "remount,ro,size=64m", str(small_vault)], check=True)
    summary = run_dock(ctx, FolderVolume(volume))
    [why] = [e for e in summary.explanations if e.rule == "R3"]
    assert why.kind == "vault_read_only" and "Read-only file system" in why.error
    assert "the catalog holds 0 recording(s) made by this dock" in why.action
    assert ctx.catalog.count_recordings() == 0
    [dock] = ctx.catalog.sessions()
    assert dock.finished_at is not None and dock.files_stored == 0
    subprocess.run(["mount", "-o", "remount,rw", str(small_vault)], check=True)
    assert run_dock(ctx, FolderVolume(volume)).count("stored") == 5


class FaultyOps(OsFileOps):
    """The vault's system calls, failing or corrupting as a test asks."""

    def __init__(self, *, fail_write: int | None = None, fail_fsync: int | None = None,
                 corrupt_attempts: int = 0):
        self.fail_write = fail_write
        self.fail_fsync = fail_fsync  # the n-th seal of a copy fails
        self.fsyncs = 0
        self.corrupt_attempts = corrupt_attempts  # copies of the first file written badly
        self.writes = 0
        self.seen: set[str] = set()
        self.victim: bytes | None = None  # the first file's first block
        self.corrupted = 0
        self.lock = threading.Lock()  # the next file is copied while one is checked

    def write(self, fd: int, data: bytes | memoryview) -> int:
        with self.lock:
            self.writes += 1
            if self.writes == self.fail_write:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            tmp = os.readlink(f"/proc/self/fd/{fd}")  # each copy attempt has its own name
            first_block = tmp not in self.seen
            self.seen.add(tmp)
            if first_block and self.victim is None:
                self.victim = bytes(data)
            bad = (first_block and bytes(data) == self.victim
                   and self.corrupted < self.corrupt_attempts)
            self.corrupted += bad
        if bad:
            flipped = bytearray(data)
            flipped[0] ^= 0xFF
            return os.write(fd, flipped)
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        with self.lock:
            self.fsyncs += 1
            failing = self.fsyncs == self.fail_fsync
        if failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)


@pytest.mark.parametrize(("ops", "discarded"), [
    (FaultyOps(fail_write=3), "the partial copy was discarded"),
    # the seal (the sync after the last byte) runs while the next file is read
    (FaultyOps(fail_fsync=2), "the copy, which could not be made durable, was discarded")],
    ids=["write", "seal"])
def test_an_io_error_on_one_file_is_explained_and_does_not_stop_the_others(
        station: IngestContext, volume: Path, ops: FaultyOps, discarded: str) -> None:
    station.vault.ops = ops
    summary = run_dock(station, FolderVolume(volume))
    [eio] = [e for e in summary.explanations if e.kind == "vault_io_error"]
    assert "Input/output error" in eio.error
    assert eio.action.startswith(discarded)
    assert station.catalog.count_recordings() == 5
    assert not list(station.vault.temporaries())
    assert verify_store(station.catalog, station.vault, keys(station)).ok  # type: ignore[arg-type]


def test_a_bad_copy_is_discarded_and_copied_again(station: IngestContext,
                                                  volume: Path) -> None:
    station.vault.ops = FaultyOps(corrupt_attempts=1)
    summary = run_dock(station, FolderVolume(volume))
    [bad] = [e for e in summary.explanations if e.kind == "digest_mismatch"]
    assert "copying again" in bad.action and bad.vault_path is None
    assert station.catalog.count_recordings() == 6
    assert not list(station.vault.temporaries())
    assert verify_store(station.catalog, station.vault, keys(station)).ok  # type: ignore[arg-type]


def test_a_copy_bad_twice_is_left_on_the_recorder(station: IngestContext, volume: Path) -> None:
    station.vault.ops = FaultyOps(corrupt_attempts=2)
    summary = run_dock(station, FolderVolume(volume))
    bad = [e for e in summary.explanations if e.kind == "digest_mismatch"]
    assert len(bad) == 2 and "did not clear this file" in bad[1].action
    assert station.catalog.count_recordings() == 5
    quarantined = [p for p in station.vault.stored_files() if p.parts[0] == "quarantine"]
    assert len(quarantined) == 1  # the truncated clip; bad copies are never kept as evidence
    assert verify_store(station.catalog, station.vault, keys(station)).ok  # type: ignore[arg-type]
