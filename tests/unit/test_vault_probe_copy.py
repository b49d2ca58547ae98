from __future__ import annotations

import hashlib
import io
import stat
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest

from ingest.explain import KINDS, vault_fault_kind
from ingest.probe import parse_probe
from storage.errors import VaultError
from storage.hashing import hash_stream
from storage.vault import Vault, is_taken, relative_path, safe_component


@pytest.mark.parametrize(("raw", "expected"), [
    ("..", "_"), ("../../etc/passwd", "etc_passwd"), ("/abs/path", "abs_path"),
    ("a\nb", "a_b"), ("执法仪", "执法仪"), ("x\\y", "x_y"), (".hidden", "hidden"), ("", "_"),
])
def test_safe_component_never_leaves_its_folder(raw: str, expected: str) -> None:
    assert safe_component(raw) == expected


def test_relative_path_keeps_device_officer_and_start() -> None:
    rel = relative_path(agency="Test Agency", device="ZFY1", officer="100231",
                        start=datetime(2026, 11, 20, 1, 30, tzinfo=UTC),
                        original_name="DSJ_ZFY1_100231_20261120_093000.MP4")
    assert rel == PurePosixPath("files/Test_Agency/ZFY1/2026-11-20/"
                                "ZFY1_100231_20261120T013000Z_DSJ_ZFY1_100231_20261120_093000.MP4")


def test_vault_paths_outside_the_areas_are_refused(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    for bad in ("../x", "/etc/passwd", "files/../../x", "other/x"):
        with pytest.raises(VaultError):
            vault.path(bad)


def _store(vault: Vault, rel: PurePosixPath, data: bytes) -> PurePosixPath:
    w = vault.writer(rel)
    w.write(data)
    w.seal()
    assert w.readback() == (hashlib.sha256(data).hexdigest(), len(data))
    placed = vault.free_name(rel, lambda _name: False)
    w.place(placed)
    return placed


def test_placed_copies_are_read_only_and_never_overwritten(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    rel = PurePosixPath("files/a/b/c.mp4")
    assert _store(vault, rel, b"one") == rel
    assert _store(vault, rel, b"two") == PurePosixPath("files/a/b/c~2.mp4")
    assert vault.path(rel).read_bytes() == b"one"
    assert stat.S_IMODE(vault.path(rel).stat().st_mode) == 0o444
    assert vault.digest(rel) == (hashlib.sha256(b"one").hexdigest(), 3)
    assert not list(vault.temporaries())
    w = vault.writer(rel)
    w.write(b"three")
    w.seal()
    with pytest.raises(VaultError) as taken:
        w.place(rel)  # link() refuses an existing name: nothing is replaced
    assert is_taken(taken.value) and vault.path(rel).read_bytes() == b"one"
    w.discard()
    assert sorted(map(str, vault.stored_files())) == ["files/a/b/c.mp4", "files/a/b/c~2.mp4"]


def test_a_taken_name_in_the_catalog_is_skipped(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    rel = PurePosixPath("quarantine/a/x.mp4")
    assert vault.free_name(rel, lambda name: name == str(rel)) == PurePosixPath(
        "quarantine/a/x~2.mp4")


def test_discard_leaves_nothing(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    w = vault.writer(PurePosixPath("files/x/y.bin"))
    w.write(b"partial")
    w.discard()
    assert not list(vault.stored_files()) and not list(vault.temporaries())


def test_a_dead_writers_work_folder_is_seen_as_dead(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    w = vault.writer(PurePosixPath("files/x/y.bin"))
    w.write(b"partial")
    owner = vault.owner
    other = Vault(tmp_path)
    assert other.owner_alive(owner)  # this process holds the lock
    assert other.leftovers_of(owner) == [w.tmp]
    vault.close()  # as if the writer died: its lock is released
    assert not other.owner_alive(owner)
    other.remove_leftover(w.tmp)
    other.retire_owner(owner)
    assert owner not in other.owners()


@pytest.mark.parametrize("threaded", [True, False])
def test_copy_hashes_exactly_the_bytes_it_writes(threaded: bool) -> None:
    data = bytes(range(256)) * 5000
    sink = io.BytesIO()
    seen: list[int] = []
    digest, n = hash_stream(io.BytesIO(data), sink, block_size=4096, threaded=threaded,
                            on_bytes=seen.append)
    assert (digest, n) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sink.getvalue() == data and sum(seen) == len(data)


def test_probe_counts_expose_a_truncated_stream() -> None:
    info = parse_probe({
        "format": {"format_name": "mov", "duration": "4.0",
                   "tags": {"creation_time": "2026-11-20T01:30:00.000000Z"}},
        "streams": [{"codec_type": "video", "codec_name": "h264", "nb_frames": "100",
                     "nb_read_packets": "45"},
                    {"codec_type": "audio", "codec_name": "aac", "nb_frames": "174",
                     "nb_read_packets": "174"}],
    })
    assert info.creation_time == datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
    assert [s.kind for s in info.truncated_streams] == ["video"]


def test_vault_errno_maps_to_an_explanation_kind() -> None:
    import errno
    assert vault_fault_kind(errno.ENOSPC) == "vault_full"
    assert vault_fault_kind(errno.EROFS) == "vault_read_only"
    assert vault_fault_kind(errno.EIO) == "vault_io_error"
    assert vault_fault_kind(None) == "vault_error"
    assert all(rule in {"R2", "R3", "R4", "R5", "R6", "R13", "R15"} for rule, _ in KINDS.values())


class FullDisk:
    def __init__(self) -> None:
        self.calls = 0

    def write(self, data: bytes | memoryview) -> None:
        self.calls += 1
        if self.calls == 3:
            raise OSError(28, "No space left on device")


def test_a_writer_error_stops_reading_and_is_raised_without_hanging() -> None:
    source = io.BytesIO(b"x" * (4096 * 1000))
    with pytest.raises(OSError, match="No space"):
        hash_stream(source, FullDisk(), block_size=4096, threaded=True)
    assert source.tell() < 4096 * 1000  # it stopped reading soon after the failure
