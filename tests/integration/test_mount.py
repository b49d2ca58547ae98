"""Mounting recorder volumes read-only, through each mounter that works here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.fatimage import PARTITION_OFFSET, build_fat_image
from devices.mount import FuseFat, MountCommand, Mounter, choose_mounter, mounted
from devices.volume import FolderVolume

pytestmark = [pytest.mark.root, pytest.mark.skipif(
    os.geteuid() != 0, reason="loop devices and mount need root; CI runs as root")]


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def content(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    (folder / "DCIM").mkdir(parents=True)
    (folder / "DCIM" / "DSJ_ZFY0001_100231_20261120_093000.MP4").write_bytes(b"\x00" * 5000)
    return folder


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[list[str]]:
    attached: list[str] = []
    yield attached
    for device in attached:
        subprocess.run(["losetup", "--detach", device], check=False)


def check(mounter: Mounter, device: str, fs_type: str, target: Path) -> None:
    with mounted(mounter, device, fs_type, target) as root:
        files, _ = FolderVolume(root).scan()
        assert [f.path for f in files] == ["DCIM/DSJ_ZFY0001_100231_20261120_093000.MP4"]
        options = next(line.split()[3] for line in Path("/proc/mounts").read_text()
                       .splitlines() if line.split()[1] == str(root))
        assert options.split(",")[0] == "ro"
        with pytest.raises(OSError):
            (root / "written-by-evidock").write_text("never")
    assert str(target) not in Path("/proc/mounts").read_text()


def test_the_kernel_driver_mounts_read_only(tmp_path: Path, content: Path,
                                            loop: list[str]) -> None:
    image = tmp_path / "ext4.img"
    with image.open("wb") as handle:
        handle.truncate(16 << 20)
    sh("mkfs.ext4", "-q", "-d", str(content), str(image))
    loop.append(sh("losetup", "--find", "--show", "--read-only", str(image)))
    check(MountCommand(), loop[0], "ext4", tmp_path / "mnt")


def test_fusefat_mounts_a_fat32_recorder_read_only(tmp_path: Path, content: Path,
                                                   loop: list[str]) -> None:
    image = build_fat_image(tmp_path / "fat.img", content, 64)
    loop.append(sh("losetup", "--find", "--show", "--offset", str(PARTITION_OFFSET),
                   str(image)))
    check(FuseFat(), loop[0], "vfat", tmp_path / "mnt")


def test_auto_picks_fusefat_where_the_kernel_has_no_vfat() -> None:
    has_vfat = "vfat" in Path("/proc/filesystems").read_text()
    assert isinstance(choose_mounter("auto"), FuseFat) != has_vfat
