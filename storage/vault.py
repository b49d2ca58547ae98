"""Write-once file store.

Layout under the root::

    files/<agency>/<device>/<YYYY-MM-DD>/<device>_<officer>_<start UTC>_<original stem>.<ext>
    quarantine/<same relative path>     copies that failed a check, kept for review
    .work/<owner>/lock                  held (flock) by the process writing as <owner>
    .work/<owner>/.tmp-<random>         that process's copies in progress

A vault shared by the stations of a site (setting ``shared_vault``) keeps one ``files/``
and ``quarantine/`` (a recorder may dock at any station; a vault path is the same whoever
filed it) and each station's work folders under ``stations/<station>/.work/``: a station
recovers only what its own processes left.

A file is written to a temporary file in its writer's work folder, fsynced, made
read-only, read back (each range from the disk once it is durable, while later ranges are
written: storage/readback.py), then linked to its final name (``link`` fails rather than
overwrite) and the folder is fsynced. Nothing in the vault is ever rewritten.
A work folder whose lock nobody holds belongs to a process that died: recovery
(ingest/recovery.py) finishes or removes what it left.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from storage.durable import current_umask, fsync_dir
from storage.errors import VaultError
from storage.hashing import hash_fd
from storage.readback import ReadBack

log = logging.getLogger(__name__)

FILES = "files"
QUARANTINE = "quarantine"
WORK = ".work"
_TMP_PREFIX = ".tmp-"
_LOCK = "lock"
_READ_BLOCK = 1 << 20
#: A copy is made durable every ``fsync_every`` bytes, and also once SYNC_AFTER_S has
#: passed since its last durable range with at least SYNC_AFTER_MIN bytes written since:
#: from a slow source (a recorder on USB 2) the disk is idle between ranges, and what
#: is left when the file ends (its last sync and read-back, which nothing overlaps) is
#: then a quarter second of the source's bytes, not up to ``fsync_every`` of them.
SYNC_AFTER_S = 0.25
SYNC_AFTER_MIN = 1 << 20


class FileOps(Protocol):
    """The few system calls the vault writes through; tests inject faults here."""

    def write(self, fd: int, data: bytes | memoryview) -> int: ...
    def fsync(self, fd: int) -> None: ...
    def fdatasync(self, fd: int) -> None: ...


class OsFileOps:
    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)


_UNSAFE = re.compile(r"[^\w.\-]+")


def safe_component(text: str, limit: int = 80) -> str:
    """A single path component made only of letters, digits, ``_ . -``; never ``.``/``..``."""
    text = unicodedata.normalize("NFC", text)
    cleaned = _UNSAFE.sub("_", text).strip("._") or "_"
    encoded = cleaned.encode("utf-8")[:limit]
    return encoded.decode("utf-8", "ignore") or "_"


def relative_path(
    *, agency: str, device: str, officer: str, start: datetime, original_name: str
) -> PurePosixPath:
    """Where a recording lives, fixed by what is known at ingest (start must be UTC)."""
    stem, dot, ext = original_name.rpartition(".")
    if not dot:
        stem, ext = original_name, ""
    name = "_".join(
        (
            safe_component(device, 32),
            safe_component(officer, 32),
            start.strftime("%Y%m%dT%H%M%SZ"),
            safe_component(stem, 100),
        )
    )
    if ext:
        name += "." + safe_component(ext, 10)
    return PurePosixPath(
        FILES, safe_component(agency), safe_component(device, 32), start.strftime("%Y-%m-%d"), name
    )


def _vault_error(action: str, path: Path | PurePosixPath | str, exc: OSError) -> VaultError:
    return VaultError(f"vault: cannot {action} {path}: {exc.strerror or exc}", exc.errno)


STATIONS = "stations"


def is_area_path(rel: PurePosixPath) -> bool:
    """Whether ``rel`` names a file in an area (``files/...``, ``quarantine/...``)."""
    return not (rel.is_absolute() or ".." in rel.parts or len(rel.parts) < 2
                or rel.parts[0] not in (FILES, QUARANTINE))


class Vault:
    """The write-once store under ``root``. ``station`` names this station's work subtree
    of a vault shared by the stations of a site (None: the root is this station's alone)."""

    def __init__(self, root: Path, *, fsync_every: int = 64 << 20, ops: FileOps | None = None,
                 station: str | None = None, clock: Callable[[], float] = time.monotonic):
        self.root = root
        self.base_rel = PurePosixPath(STATIONS, safe_component(station)) if station \
            else PurePosixPath()
        self.base = root.joinpath(*self.base_rel.parts)  # holds this station's work folders
        self.fsync_every = fsync_every
        self.clock = clock  # (seconds) when a range was last made durable: VaultWriter.write
        self.ops: FileOps = ops or OsFileOps()
        self._owner: str | None = None
        self._owner_fd: int | None = None

    def path(self, rel: PurePosixPath | str) -> Path:
        rel = PurePosixPath(rel)
        if not is_area_path(rel):
            raise VaultError(f"vault: {rel} is not a vault path")
        return self.root.joinpath(*rel.parts)

    @staticmethod
    def in_area(area: str, rel: PurePosixPath | str) -> PurePosixPath:
        """The vault path ``rel`` (``files/...``) would have in ``area``."""
        return PurePosixPath(area, *PurePosixPath(rel).parts[1:])

    def _make_dirs(self, folder: Path) -> None:
        """Create ``folder`` and fsync each parent whose entries changed."""
        missing: list[Path] = []
        probe = folder
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        try:
            for made in reversed(missing):
                made.mkdir(mode=0o755, exist_ok=True)
                fsync_dir(made.parent)
        except OSError as exc:
            raise _vault_error("create folder", folder, exc) from exc

    # Owners: one per writing process ----------------------------------------

    @property
    def owner(self) -> str:
        """This process's owner id, claimed on first use: a work folder and its held lock."""
        if self._owner is None:
            self._claim()
        assert self._owner is not None
        return self._owner

    def _claim(self) -> None:
        work = self.base / WORK
        self._make_dirs(work)
        owner = uuid.uuid4().hex
        staging = work / f".{owner}"  # renamed into place only once locked: never seen unlocked
        try:
            staging.mkdir(mode=0o700)
            fd = os.open(staging / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            staging.rename(work / owner)
            fsync_dir(work)
        except OSError as exc:
            raise _vault_error("claim a work folder in", work, exc) from exc
        self._owner, self._owner_fd = owner, fd

    @property
    def claimed(self) -> str | None:
        """This process's owner id if it claimed a work folder, else None (claims nothing)."""
        return self._owner

    def close(self, *, keep: bool = False) -> None:
        """Give up this process's work folder: its lock released, and the folder removed if
        empty, unless ``keep`` (the catalog notes copies of this owner, or cannot say: the
        next start's recovery finds the folder and finishes them)."""
        if self._owner is None or self._owner_fd is None:
            return
        folder = self.base / WORK / self._owner
        try:
            if not keep and not self.leftovers_of(self._owner):
                (folder / _LOCK).unlink(missing_ok=True)
                folder.rmdir()
        except (OSError, VaultError) as exc:
            log.warning("work folder %s stays for the next start to remove: %s", folder, exc)
        finally:
            os.close(self._owner_fd)
            self._owner, self._owner_fd = None, None

    def owners(self) -> list[str]:
        """Every owner with a work folder, alive or not."""
        try:
            return sorted(e.name for e in os.scandir(self.base / WORK)
                          if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _vault_error("list", self.base / WORK, exc) from exc

    def _work_of(self, owner: str) -> Path:
        """``owner``'s work folder: in this station's subtree, else another station's of a
        shared vault (owners are random ids, so at most one has it)."""
        mine = self.base / WORK / owner
        if mine.exists() or not self.base_rel.parts:
            return mine
        others = sorted((self.root / STATIONS).glob(f"*/{WORK}/{owner}"))
        return others[0] if others else mine

    def owner_alive(self, owner: str) -> bool:
        """Whether a process holds ``owner``'s lock now (ours counts as alive)."""
        if owner == self._owner:
            return True
        try:
            fd = os.open(self._work_of(owner) / _LOCK, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _vault_error("open the lock of", owner, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the lock if we took it
        return False

    def leftovers_of(self, owner: str) -> list[PurePosixPath]:
        """The temporary copies in a work folder, relative to the vault root."""
        folder = self.base / WORK / owner
        try:
            names = sorted(p.name for p in folder.iterdir() if p.name.startswith(_TMP_PREFIX))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _vault_error("list", folder, exc) from exc
        return [self.base_rel / WORK / owner / name for name in names]

    def _temporary(self, rel: PurePosixPath) -> Path:
        if rel.is_absolute() or ".." in rel.parts or not rel.name.startswith(_TMP_PREFIX):
            raise VaultError(f"vault: {rel} is not a temporary copy")
        return self.root.joinpath(*rel.parts)

    def remove_leftover(self, rel: PurePosixPath) -> None:
        """Remove a temporary copy (in a work folder, or left in an area by old versions)."""
        try:
            self._temporary(rel).unlink(missing_ok=True)
        except OSError as exc:
            raise _vault_error("remove", rel, exc) from exc

    def size_of(self, rel: PurePosixPath) -> int:
        """Size of a temporary copy; 0 if it is gone."""
        try:
            return self._temporary(rel).lstat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise _vault_error("inspect", rel, exc) from exc

    def digest_temporary(self, rel: PurePosixPath) -> tuple[str, int]:
        return self._digest(self._temporary(rel), rel)

    def unlink(self, rel: PurePosixPath) -> None:
        """Remove a name in an area: recovery, once the file has another name; a purge by
        rule, once its tombstone is recorded (storage/retention.py)."""
        path = self.path(rel)
        try:
            path.unlink()
            fsync_dir(path.parent)
        except OSError as exc:
            raise _vault_error("remove", rel, exc) from exc

    def retire_owner(self, owner: str) -> None:
        """Remove a dead owner's work folder once nothing is left in it."""
        if self.owner_alive(owner):
            raise VaultError(f"vault: owner {owner} is alive")
        folder = self.base / WORK / owner
        try:
            (folder / _LOCK).unlink(missing_ok=True)
            folder.rmdir()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _vault_error("remove", folder, exc) from exc

    # Writing -----------------------------------------------------------------

    def writer(self, rel: PurePosixPath, *, read_back: bool = False) -> VaultWriter:
        """Open a temporary file in this process's work folder; place() names it ``rel``.
        ``read_back``: each range is read back from the disk once it is durable, while
        later ones are written (readback() then only finishes the job)."""
        self.path(rel)  # refuses what is not a vault path
        folder = self.base / WORK / self.owner
        name = f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o600)
        except OSError as exc:
            raise _vault_error("create a file in", folder, exc) from exc
        check = None
        if read_back:
            try:
                check = ReadBack(os.open(folder / name, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as exc:
                os.close(fd)
                (folder / name).unlink()
                raise _vault_error("open for reading back", folder / name, exc) from exc
        return VaultWriter(self, rel, self.base_rel / WORK / self.owner / name, fd, check)

    def free_name(self, rel: PurePosixPath, taken: Callable[[str], bool]) -> PurePosixPath:
        """``rel``, or ``name~2``, ``~3``...: the first with no file and not ``taken``."""
        base, ext = rel.stem, rel.suffix
        for n in range(1, 10_000):
            candidate = rel if n == 1 else rel.with_name(f"{base}~{n}{ext}")
            if not os.path.lexists(self.path(candidate)) and not taken(str(candidate)):
                return candidate
        raise VaultError(f"vault: no free name for {rel}")

    def link(self, source: Path, rel: PurePosixPath, *, sync: bool = True) -> None:
        """Give ``source`` the name ``rel``; VaultError(EEXIST) if it is taken. The name is
        durable when this returns, or (``sync=False``) once sync_folders() had its folder."""
        final = self.path(rel)
        self._make_dirs(final.parent)
        try:
            os.link(source, final)
        except OSError as exc:
            raise _vault_error("link", rel, exc) from exc
        if sync:
            self.sync_folders([rel])

    def sync_folders(self, names: Iterable[PurePosixPath]) -> None:
        """Make the names given in the folders of ``names`` durable: one fsync a folder."""
        folders = {rel.parent: rel for rel in names}
        for rel in folders.values():
            try:
                fsync_dir(self.path(rel).parent)
            except OSError as exc:
                raise _vault_error("sync folder of", rel, exc) from exc

    # Reading -----------------------------------------------------------------

    def digest(self, rel: PurePosixPath | str) -> tuple[str, int]:
        """SHA-256 and size of a stored file, read from the disk rather than the cache."""
        return self._digest(self.path(rel), rel)

    def _digest(self, path: Path, rel: PurePosixPath | str) -> tuple[str, int]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise _vault_error("open", rel, exc) from exc
        try:
            # The copy was fsynced, so its cached pages are clean: drop them and
            # read back what the disk holds.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            # Serial: with nothing to write, thread hand-offs cost more than they save
            # (measured: 1435 MB/s serial against 840 MB/s threaded).
            return hash_fd(fd, block_size=_READ_BLOCK)
        except OSError as exc:
            raise _vault_error("read back", rel, exc) from exc
        finally:
            os.close(fd)

    def stored_files(self) -> Iterator[PurePosixPath]:
        """Every file in the vault's areas except unfinished temporary files."""
        for area in (FILES, QUARANTINE):
            for folder, _dirs, names in os.walk(self.root / area):
                for name in names:
                    if not name.startswith(_TMP_PREFIX):
                        yield PurePosixPath(Path(folder, name).relative_to(self.root).as_posix())

    def temporaries(self) -> Iterator[PurePosixPath]:
        """Every temporary copy: in every work folder, and any left in the areas."""
        for owner in self.owners():
            yield from self.leftovers_of(owner)
        yield from self.legacy_temporaries()

    def legacy_temporaries(self) -> Iterator[PurePosixPath]:
        """Temporary files left in the areas by versions that wrote them beside the target."""
        for area in (FILES, QUARANTINE):
            for folder, _dirs, names in os.walk(self.root / area):
                for name in names:
                    if name.startswith(_TMP_PREFIX):
                        yield PurePosixPath(Path(folder, name).relative_to(self.root).as_posix())


class VaultWriter:
    """A file being written into the vault: write(), seal(), readback(), then place() or
    discard(). Until placed it is a temporary file in the writer's work folder."""

    def __init__(self, vault: Vault, rel: PurePosixPath, tmp: PurePosixPath, fd: int,
                 check: ReadBack | None = None):
        self.vault = vault
        self.rel = rel
        self.tmp = tmp  # relative to the vault root
        self.fd: int | None = fd
        self.written = 0
        self._since_sync = 0
        self._synced_at = vault.clock()
        self._check = check  # reads back the ranges made durable (Vault.writer(read_back))

    @property
    def tmp_file(self) -> Path:
        return self.vault.root.joinpath(*self.tmp.parts)

    def write(self, data: bytes | memoryview) -> None:
        assert self.fd is not None, "write after seal or discard"
        view = memoryview(data)
        try:
            while view:
                n = self.vault.ops.write(self.fd, view)
                view = view[n:]
                self.written += n
                self._since_sync += n
            if self._since_sync >= self.vault.fsync_every or (
                    self._since_sync >= SYNC_AFTER_MIN
                    and self.vault.clock() - self._synced_at >= SYNC_AFTER_S):
                self.vault.ops.fdatasync(self.fd)
                self._since_sync = 0
                self._synced_at = self.vault.clock()
                if self._check is not None:
                    self._check.durable(self.written)
        except OSError as exc:
            raise _vault_error("write", self.rel, exc) from exc

    def seal(self) -> None:
        """Make the temporary file durable and read-only."""
        fd = self.fd
        assert fd is not None, "seal after seal or discard"
        try:
            self.vault.ops.fsync(fd)
            os.fchmod(fd, 0o444 & ~current_umask())  # read-only; for whom: the umask
        except OSError as exc:
            raise _vault_error("sync", self.rel, exc) from exc
        finally:
            os.close(fd)
            self.fd = None

    def readback(self) -> tuple[str, int]:
        """SHA-256 and size of the sealed copy, read from the disk."""
        check, self._check = self._check, None
        if check is None:
            return self.vault._digest(self.tmp_file, self.rel)
        try:
            return check.result()
        except OSError as exc:
            raise _vault_error("read back", self.rel, exc) from exc

    def place(self, rel: PurePosixPath, *, sync: bool = True) -> None:
        """Link the sealed copy to ``rel`` (VaultError EEXIST if taken), then drop the
        temporary name. ``sync=False``: the caller syncs the folder (Vault.sync_folders)
        and then calls done(); the temporary name stays until then."""
        self.vault.link(self.tmp_file, rel, sync=sync)
        if sync:
            self._remove_tmp()

    def done(self) -> None:
        """The copy's name in the vault is durable: drop the temporary name."""
        self._remove_tmp()

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._check is not None:  # not read back: stop reading
            self._check.cancel()
            self._check = None
        try:
            self.tmp_file.unlink(missing_ok=True)
        except OSError as exc:
            # Called on the way out of a failure: keep that failure; recovery removes the
            # temporary file when this process is gone.
            log.warning("could not remove unfinished vault file %s: %s", self.tmp, exc)


def is_taken(exc: VaultError) -> bool:
    return exc.errno == errno.EEXIST
