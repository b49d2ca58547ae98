"""A copy read back while it is written (storage/readback.py through Vault.writer)."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path, PurePosixPath

import pytest

import storage.readback as readback
from storage.errors import VaultError
from storage.readback import PAGE
from storage.vault import SYNC_AFTER_MIN, SYNC_AFTER_S, OsFileOps, Vault

REL = PurePosixPath("files/a/b/clip.mp4")


class CountingOps(OsFileOps):
    """Real system calls; remembers how much of the file was durable at each moment, and
    flips one byte of the ``corrupt``-th write (what a bad disk or controller would do)."""

    def __init__(self, corrupt: int | None = None):
        self.durable = 0
        self.written = 0
        self.writes = 0
        self.corrupt = corrupt

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self.writes += 1
        if self.writes == self.corrupt:
            bad = bytearray(data)
            bad[len(bad) // 2] ^= 0x01
            data = bad
        n = os.write(fd, data)
        self.written += n
        return n

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)
        self.durable = self.written

    def fsync(self, fd: int) -> None:
        os.fsync(fd)
        self.durable = self.written


def _vault(tmp_path: Path, ops: OsFileOps, every: int = 64 << 10) -> Vault:
    return Vault(tmp_path / "vault", fsync_every=every, ops=ops)


def _pieces(seed: int, total: int) -> list[bytes]:
    """Random bytes in pieces of random sizes, most not a page long."""
    rng = random.Random(seed)
    out, left = [], total
    while left:
        n = min(left, rng.choice([1, 100, PAGE - 1, PAGE + 1, 10_000, 70_001]))
        out.append(rng.randbytes(n))
        left -= n
    return out


@pytest.mark.parametrize("total", [0, 1, PAGE, 3 * PAGE + 5, 1_000_003])
def test_a_copy_reads_back_as_written(tmp_path: Path, total: int) -> None:
    vault = _vault(tmp_path, CountingOps())
    pieces = _pieces(total, total)
    w = vault.writer(REL, read_back=True)
    for piece in pieces:
        w.write(piece)
    w.seal()
    assert w.readback() == (hashlib.sha256(b"".join(pieces)).hexdigest(), total)
    w.place(REL)
    assert vault.path(REL).read_bytes() == b"".join(pieces)


def test_a_byte_changed_on_its_way_to_the_disk_in_any_range_is_seen(tmp_path: Path) -> None:
    pieces = _pieces(7, 2_000_000)
    right = hashlib.sha256(b"".join(pieces)).hexdigest()
    for corrupt in (1, len(pieces) // 2, len(pieces)):
        vault = _vault(tmp_path / str(corrupt), CountingOps(corrupt=corrupt))
        w = vault.writer(REL, read_back=True)
        for piece in pieces:
            w.write(piece)
        w.seal()
        again, size = w.readback()
        assert size == 2_000_000 and again != right, f"write {corrupt} of {len(pieces)}"
        w.discard()


def test_only_durable_ranges_are_read_and_each_from_the_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every byte read back was durable when read, and its page was dropped from the
    cache after it became durable and before it was read (so it came from the disk)."""
    ops = CountingOps()
    events: list[tuple[str, int, int, int]] = []  # (call, offset, length, durable then)
    lock = threading.Lock()
    real_fadvise, real_preadv = os.posix_fadvise, os.preadv

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        with lock:
            events.append(("drop", offset, length, ops.durable))
        real_fadvise(fd, offset, length, advice)

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        n = real_preadv(fd, buffers, offset)
        with lock:
            events.append(("read", offset, n, ops.durable))
        return n

    monkeypatch.setattr(readback.os, "posix_fadvise", fadvise)
    monkeypatch.setattr(readback.os, "preadv", preadv)
    vault = _vault(tmp_path, ops, every=50_000)
    pieces = _pieces(3, 3_000_001)
    w = vault.writer(REL, read_back=True)
    for piece in pieces:
        w.write(piece)
    w.seal()
    assert w.readback()[1] == 3_000_001
    drops = [e for e in events if e[0] == "drop"]
    reads = [e for e in events if e[0] == "read" and e[2]]
    assert len(drops) > 10, "read back while written: many ranges"
    assert sum(n for _c, _o, n, _d in reads) == 3_000_001
    for _c, offset, n, durable in reads:
        assert offset + n <= durable
        before = [d for d in events[:events.index((_c, offset, n, durable))] if d[0] == "drop"]
        _c2, start, length, _d = before[-1]
        assert start % PAGE == 0 and start <= offset
        assert length == 0 or offset + n <= start + length
    for _c, start, length, durable in drops:
        assert length == 0 or start + length <= durable


def test_a_file_grown_behind_the_writer_does_not_read_back_equal(tmp_path: Path) -> None:
    vault = _vault(tmp_path, CountingOps())
    w = vault.writer(REL, read_back=True)
    w.write(b"x" * 300_000)
    w.seal()
    os.chmod(w.tmp_file, 0o600)
    with open(w.tmp_file, "ab") as f:
        f.write(b"more")
    assert w.readback()[1] == 300_004


def test_a_discarded_copy_stops_reading_back_and_leaves_nothing(tmp_path: Path) -> None:
    vault = _vault(tmp_path, CountingOps(), every=4096)
    assert vault.owner  # its lock is held from here on
    fds = len(os.listdir("/proc/self/fd"))
    w = vault.writer(REL, read_back=True)
    for piece in _pieces(5, 5_000_000):
        w.write(piece)
    w.discard()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert not [t for t in threading.enumerate() if t.name == "read-back"]
    assert not list(vault.temporaries())


def test_a_copy_that_cannot_be_read_back_is_a_vault_error(tmp_path: Path) -> None:
    vault = _vault(tmp_path, CountingOps())
    w = vault.writer(REL, read_back=True)
    w.write(b"abc")
    w.seal()
    folder = os.open(tmp_path, os.O_RDONLY)
    os.dup2(folder, w._check._fd)  # type: ignore[union-attr]  # the reading side: EISDIR
    os.close(folder)
    with pytest.raises(VaultError, match="read back"):
        w.readback()
    w.discard()


def test_a_slow_copy_is_made_durable_every_quarter_second_as_well(tmp_path: Path) -> None:
    """From a source slower than the disk, ranges are made durable (and read back) by time
    too, so little is left to sync and read back when the file ends."""
    now = [100.0]
    ops = CountingOps()
    vault = Vault(tmp_path / "vault", fsync_every=64 << 20, ops=ops, clock=lambda: now[0])
    w = vault.writer(REL, read_back=True)
    half = os.urandom(SYNC_AFTER_MIN // 2)
    w.write(half)
    now[0] += SYNC_AFTER_S
    assert ops.durable == 0  # not yet a minimum's worth since the last range
    w.write(half)
    assert ops.durable == SYNC_AFTER_MIN  # a minimum's worth and the time: durable
    w.write(half + half)
    now[0] += SYNC_AFTER_S / 2
    w.write(b"x")
    assert ops.durable == SYNC_AFTER_MIN  # enough bytes, too soon
    now[0] += SYNC_AFTER_S / 2
    w.write(b"y")
    assert ops.durable == 2 * SYNC_AFTER_MIN + 2
    w.write(b"z" * 100)
    now[0] += 60
    w.write(b"z")
    assert ops.durable == 2 * SYNC_AFTER_MIN + 2  # long since, but too few bytes
    w.seal()
    body = half * 4 + b"xy" + b"z" * 101
    assert w.readback() == (hashlib.sha256(body).hexdigest(), len(body))
