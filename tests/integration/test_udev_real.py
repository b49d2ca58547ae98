"""Real udev events: a FAT32 recorder image on a loop device, docked by the daemon.

udevd runs for real; a test-only rule gives the loop device's partition the
USB identity of a recorder model, so the daemon's production filter matches it
unchanged; the daemon mounts it read-only with fusefat (this kernel has no vfat).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.fatimage import build_fat_image
from tests.e2e.test_daemon import DaemonProcess, done, entry, evidock_json
from tests.integration.test_cli import evidock

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and udevd need root; CI is root"),
]
RULES = Path("/run/udev/rules.d")
SERIAL = "SIMLOOP1"


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def udevd() -> Iterator[None]:
    running = subprocess.run(["udevadm", "control", "--ping"], capture_output=True,
                             check=False).returncode == 0
    if not running:
        sh("/lib/systemd/systemd-udevd", "--daemon")
        sh("udevadm", "control", "--ping")
    yield
    if not running:
        sh("udevadm", "control", "--exit")


class LoopRecorder:
    """A FAT32 image attached to a loop device, its partition announced with partx."""

    def __init__(self, image: Path):
        self.image = image
        self.rule = RULES / f"99-evidock-test-{os.getpid()}.rules"
        RULES.mkdir(parents=True, exist_ok=True)
        self.rule.write_text(
            'SUBSYSTEM=="block", ENV{DEVTYPE}=="partition", '
            f'ATTRS{{loop/backing_file}}=="{image}", ENV{{ID_BUS}}="usb", '
            f'ENV{{ID_VENDOR_ID}}="1209", ENV{{ID_MODEL_ID}}="e5d2", '
            f'ENV{{ID_SERIAL_SHORT}}="{SERIAL}"\n')
        sh("udevadm", "control", "--reload")
        self.loop = sh("losetup", "--find", "--show", str(image))

    @property
    def partition(self) -> str:
        return f"{self.loop}p1"

    def plug(self) -> None:
        sh("partx", "--add", self.loop)

    def pull(self) -> None:
        """What the kernel says when the cable is pulled: a remove uevent for the partition."""
        sh("udevadm", "trigger", "--action=remove", self.partition)

    def close(self) -> None:
        subprocess.run(["partx", "--delete", self.loop], capture_output=True, check=False)
        subprocess.run(["losetup", "--detach", self.loop], capture_output=True, check=False)
        self.rule.unlink(missing_ok=True)
        sh("udevadm", "control", "--reload")


@pytest.fixture
def loop_recorder(udevd: None, tmp_path: Path, recent_volume: Path) -> Iterator[LoopRecorder]:
    image = build_fat_image(tmp_path / "recorder.img", recent_volume, 64)
    recorder = LoopRecorder(image)
    yield recorder
    recorder.close()


def start_daemon(home: Path, **env: str) -> DaemonProcess:
    full = {**os.environ, "EVIDOCK_MOUNTER": "fusefat", **env}
    return DaemonProcess(home, home.parent / "unused-bus", full, udev=True)


def mounted_here(home: Path) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines()
            if str(home) in line]


def test_a_usb_recorder_is_docked_mounted_read_only_ingested_and_unmounted(
        home: Path, loop_recorder: LoopRecorder) -> None:
    assert evidock("officer", "add", "100231", "--name", "李娜", "--by", "custodian")[0] == 0
    assert evidock("device", "register", "ZFY0001", "--usb-serial", SERIAL, "--model",
                   "evidock-sim-storage", "--officer", "100231", "--by", "custodian")[0] == 0
    daemon = start_daemon(home)
    loop_recorder.plug()
    status = daemon.wait(done(SERIAL), "dock the loop device")
    got = entry(status, SERIAL)
    assert got["state"] == "done", got
    assert got["files_done"] == got["files_total"] == 6
    assert not mounted_here(home)  # unmounted when the dock ended
    rows = evidock_json("log")
    assert len(rows) == 6 and {r["officer_name"] for r in rows} == {"李娜"}
    kinds = {e["kind"] for e in evidock_json("explanations")}
    assert kinds == {"media_truncated"}  # registered: no unregistered_device
    assert daemon.stop() == 0


def test_a_usb_recorder_pulled_mid_copy(home: Path, udevd: None, tmp_path: Path,
                                        recent_volume: Path) -> None:
    big = recent_volume / "DCIM" / "100MEDIA" / "DSJ_ZFY0001_100231_20261122_000000.MP4"
    with big.open("wb") as out:
        for _ in range(12):
            out.write(os.urandom(8 << 20))
    recorder = LoopRecorder(build_fat_image(tmp_path / "big.img", recent_volume, 160))
    try:
        daemon = start_daemon(home, EVIDOCK_BLOCK_SIZE_KIB="16", EVIDOCK_HASH_THREAD="false")
        recorder.plug()
        daemon.wait(lambda s: any(r["bytes_done"] > 0 and (r["current"] or "").endswith(
            big.name) for r in s["docked"]), "start copying the big file")
        recorder.pull()
        status = daemon.wait(done(SERIAL), "notice the removal")
        got = entry(status, SERIAL)
        assert got["state"] == "interrupted", got
        [why] = evidock_json("explanations", "--kind", "dock_interrupted")
        assert why["source_path"].endswith(big.name)
        assert not list((home / "vault").rglob(".tmp-*"))
        assert big.name not in {Path(r["source_path"]).name for r in evidock_json("log")}
        assert not mounted_here(home)
        assert daemon.stop() == 0
    finally:
        recorder.close()
