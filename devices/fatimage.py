"""FAT32 disk images of a simulated recorder's volume (mtools and sfdisk; no mounting)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from storage.errors import EvidockError

PARTITION_OFFSET = 1 << 20


def _run(*cmd: str, stdin: str | None = None) -> None:
    if shutil.which(cmd[0]) is None:
        raise EvidockError(f"{cmd[0]} is not installed (apt-get install mtools fdisk)")
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EvidockError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def build_fat_image(image: Path, content: Path, size_mib: int) -> Path:
    """A disk image with one FAT32 partition at 1 MiB holding a copy of ``content``.

    No volume label is written: fusefat would show a label as an empty file.
    """
    with image.open("wb") as handle:
        handle.truncate(size_mib << 20)
    _run("sfdisk", "--quiet", str(image), stdin="label: dos\nstart=2048, type=c\n")
    target = f"{image}@@{PARTITION_OFFSET}"
    _run("mformat", "-i", target, "-F", "::")
    for child in sorted(content.iterdir()):
        _run("mcopy", "-i", target, "-s", "-p", "-m", str(child), "::/")
    return image
