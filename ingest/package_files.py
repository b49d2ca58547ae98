"""The files of an evidence package: read, hashed and accounted for (docs/export-format.md).

Part of the package check (ingest/package_verify.py): each problem goes to the
``problem`` callback with its kind, the file and the detail. Files are opened
without following links and never written.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ingest.package import DOCUMENTS, FIXED_FILES, MANIFEST, name_problem
from storage.hashing import hash_fd

MAX_SMALL_FILE = 64 << 20  # manifest, proofs, keys, checkpoint: read whole, at most this

ProblemSink = Callable[[str, str, str], None]
"""problem(kind, subject, detail)"""


def describe(value: object) -> str:
    """A value from the package, shown in a problem's detail (cut to 120 characters)."""
    text = repr(value)
    return text if len(text) <= 120 else text[:119] + "…"


class FileChecks:
    """Every file the package names: fixed files read whole, the others hashed once."""

    def __init__(self, folder: Path, problem: ProblemSink,
                 on_file: Callable[[str], None] | None = None):
        self.folder = folder
        self.problem = problem
        self.on_file = on_file
        self.expected: set[str] = set(FIXED_FILES)
        self.digests: dict[str, tuple[str, int] | None] = {}

    def read_small(self, name: str) -> bytes | None:
        """A fixed file of the package, or None (with the problem named) if unusable."""
        path = self.folder / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            self.problem("file_missing", name, "the package has no such file")
            return None
        except OSError as exc:
            self.problem("file_unreadable", name, exc.strerror or str(exc))
            return None
        if not stat.S_ISREG(info.st_mode):
            self.problem("not_a_file", name, "is not a regular file (a link, folder or device)")
            return None
        if info.st_size > MAX_SMALL_FILE:
            self.problem("file_unreadable", name, f"is {info.st_size} bytes; too large")
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            self.problem("file_unreadable", name, exc.strerror or str(exc))
            return None

    def file(self, name: object, sha256: object, size: object, subject: str) -> None:
        problem = name_problem(name)
        if problem is not None:
            self.problem("unsafe_name", subject, f"{describe(name)} {problem}")
            return
        assert isinstance(name, str)
        self.expected.add(name)
        if name not in self.digests:
            self.digests[name] = self.hash(name)
        found = self.digests[name]
        if found is None:
            return
        digest, length = found
        if length != size:
            self.problem("file_size", name, f"is {length} bytes, the manifest says "
                         f"{describe(size)}")
        if digest != sha256:
            self.problem("file_altered", name, f"has sha256 {digest}, the manifest says "
                         f"{describe(sha256)}: the file was changed")

    def hash(self, name: str) -> tuple[str, int] | None:
        path = self.folder.joinpath(*name.split("/"))
        if self.on_file is not None:
            self.on_file(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self.problem("file_missing", name, "the manifest lists it; the package has no "
                         "such file")
            return None
        except OSError as exc:
            kind = "not_a_file" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else (
                "file_unreadable")
            self.problem(kind, name, exc.strerror or str(exc))
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                self.problem("not_a_file", name, "is not a regular file")
                return None
            return hash_fd(fd)
        except OSError as exc:
            self.problem("file_unreadable", name, exc.strerror or str(exc))
            return None
        finally:
            os.close(fd)

    def documents(self, manifest: Mapping[str, Any]) -> None:
        documents = manifest.get("documents")
        if not isinstance(documents, list):
            self.problem("manifest", f"{MANIFEST}: documents", "is not a list")
            return
        listed = set()
        for number, doc in enumerate(documents):
            name = doc.get("file") if isinstance(doc, dict) else None
            if name not in DOCUMENTS or name in listed:
                self.problem("manifest", f"{MANIFEST}: documents[{number}]",
                             f"{describe(name)} is not one of {', '.join(DOCUMENTS)}, or is "
                             "listed twice")
                continue
            assert isinstance(doc, dict) and isinstance(name, str)
            listed.add(name)
            self.expected.add(name)
            found = self.digests[name] = self.hash(name)
            if found is not None:
                if found[1] != doc.get("size"):
                    self.problem("file_size", name, f"is {found[1]} bytes, the manifest says "
                                 f"{describe(doc.get('size'))}")
                if found[0] != doc.get("sha256"):
                    self.problem("file_altered", name, f"has sha256 {found[0]}, the manifest "
                                 f"says {describe(doc.get('sha256'))}: the file was changed")
        for name in DOCUMENTS:
            if name not in listed:
                self.problem("manifest", f"{MANIFEST}: documents", f"does not list {name}")

    def extra_files(self) -> None:
        for top, dirs, files in os.walk(self.folder):
            base = Path(top)
            links = [d for d in dirs if (base / d).is_symlink()]
            for name in sorted(files + links):
                rel = (base / name).relative_to(self.folder).as_posix()
                if rel not in self.expected:
                    self.problem("extra_file", rel, "is in the package folder but not in the "
                                 "manifest")
