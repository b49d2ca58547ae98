"""A recorder volume that is already mounted: listing and reading its files safely.

Names are handled as bytes, so non-UTF-8 (GBK) names survive. Nothing is ever
followed through a symbolic link: each path component is opened relative to
its parent with O_NOFOLLOW, so a volume cannot lead the reader out of itself.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from devices.errors import SourceChanged, SourceError, SourceVanished, VolumeError

MAX_DEPTH = 32
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def display_name(raw: bytes) -> tuple[str, str]:
    """Text for a raw name and the encoding it was read in: utf-8, gbk, or escaped bytes."""
    for encoding in ("utf-8", "gbk"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", "backslashreplace"), "bytes"


@dataclass(frozen=True)
class SourceEntry:
    """A regular file on the volume as it was when listed."""

    raw_path: bytes  # relative, components joined by b"/"
    path: str  # the same as text (see display_name)
    encoding: str
    size: int
    mtime_ns: int
    inode: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SkippedEntry:
    """Something on the volume that is not ingested, and why."""

    path: str
    kind: str  # "symlink", "special_file", "too_deep", "unreadable_folder"
    detail: str


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


class FolderVolume:
    """A mounted recorder volume (or any folder) read without following links."""

    def __init__(self, root: Path):
        self.root = root
        if not root.is_dir():
            raise VolumeError(f"{root} is not a folder; mount the recorder volume first")
        try:
            os.close(os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW))
        except OSError as exc:
            raise VolumeError(f"cannot open {root}: {exc.strerror}") from exc

    @property
    def label(self) -> str:
        return str(self.root)

    def scan(self) -> tuple[list[SourceEntry], list[SkippedEntry]]:
        files: list[SourceEntry] = []
        skipped: list[SkippedEntry] = []
        fd = os.open(self.root, _DIR_FLAGS & ~os.O_NOFOLLOW)
        try:
            self._walk(fd, b"", 0, files, skipped)
        finally:
            os.close(fd)
        files.sort(key=lambda e: e.raw_path)
        return files, skipped

    def _walk(self, dir_fd: int, prefix: bytes, depth: int,
              files: list[SourceEntry], skipped: list[SkippedEntry]) -> None:
        try:
            names = sorted(os.listdir(dir_fd))
        except OSError as exc:  # a failing medium, or a volume that went away
            if depth == 0:
                raise VolumeError(f"cannot list {self.root}: {exc.strerror}") from exc
            folder = display_name(prefix.rstrip(b"/"))[0]
            skipped.append(SkippedEntry(folder, "unreadable_folder", str(exc.strerror)))
            return
        for name in names:
            raw_name = os.fsencode(name)
            raw = prefix + raw_name
            text, encoding = display_name(raw)
            try:
                st = os.stat(raw_name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # vanished between listing and stat: it was never seen
            if stat.S_ISLNK(st.st_mode):
                target = display_name(os.readlink(raw_name, dir_fd=dir_fd))[0]
                skipped.append(SkippedEntry(text, "symlink", f"symbolic link to {target!r}"))
            elif stat.S_ISDIR(st.st_mode):
                if depth >= MAX_DEPTH:
                    skipped.append(SkippedEntry(text, "too_deep", f"deeper than {MAX_DEPTH}"))
                    continue
                try:
                    sub = os.open(raw_name, _DIR_FLAGS, dir_fd=dir_fd)
                except OSError as exc:
                    skipped.append(SkippedEntry(text, "unreadable_folder", str(exc.strerror)))
                    continue
                try:
                    self._walk(sub, raw + b"/", depth + 1, files, skipped)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode):
                files.append(SourceEntry(raw, text, encoding, st.st_size, st.st_mtime_ns,
                                         st.st_ino))
            else:
                skipped.append(SkippedEntry(text, "special_file", _kind_of(st.st_mode)))

    def open(self, entry: SourceEntry) -> SourceFile:
        parts = entry.raw_path.split(b"/")
        dir_fd = os.open(self.root, _DIR_FLAGS & ~os.O_NOFOLLOW)
        try:
            for part in parts[:-1]:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = next_fd
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError as exc:
            raise SourceVanished(f"{entry.path} is no longer on the volume") from exc
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise SourceChanged(f"{entry.path} was replaced by a link") from exc
            raise SourceError(f"cannot open {entry.path}: {exc.strerror}") from exc
        finally:
            os.close(dir_fd)
        return SourceFile(entry, fd)


class SourceFile:
    """An open source file. read() until b""; then finish() confirms it did not change."""

    def __init__(self, entry: SourceEntry, fd: int):
        self.entry = entry
        self.fd = fd
        self.read_bytes = 0
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_ino != entry.inode:
            os.close(fd)
            raise SourceChanged(f"{entry.path} is not the file that was listed")
        os.set_blocking(fd, True)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def read(self, size: int) -> bytes:
        try:
            data = os.read(self.fd, size)
        except OSError as exc:
            raise SourceError(
                f"read error in {self.entry.path} at byte {self.read_bytes}: {exc.strerror}"
            ) from exc
        self.read_bytes += len(data)
        return data

    def finish(self) -> None:
        """Raise SourceChanged if the file changed while it was read."""
        st = os.fstat(self.fd)
        e = self.entry
        if st.st_nlink == 0:
            raise SourceVanished(f"{e.path} was deleted while it was copied")
        if (st.st_size, st.st_mtime_ns, self.read_bytes) != (e.size, e.mtime_ns, e.size):
            raise SourceChanged(
                f"{e.path} changed while it was copied: listed {e.size} bytes, "
                f"read {self.read_bytes}, now {st.st_size} bytes"
            )

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

