"""Recorder discovery through udev, with devices faked by Debian's umockdev."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from devices.events import ModelIds
from devices.udev import face_of

SCENARIO = Path(__file__).with_name("umockdev_scenario.py")
MODELS = [ModelIds("sim-storage", "1209", "e5d2")]


def test_umockdev_trees_dock_and_undock_recorders_and_ignore_a_stick() -> None:
    wrapper = shutil.which("umockdev-wrapper")
    assert wrapper, "umockdev is installed by .ci/run (scripts/system-deps.sh test)"
    done = subprocess.run([wrapper, sys.executable, str(SCENARIO)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    events = json.loads(done.stdout.strip().splitlines()[-1])
    assert events == [
        ["Docked", "sim-storage", "SIM0002", "/dev/sdb1", "vfat"],  # already plugged in
        ["started"],
        ["Docked", "sim-serial", "SIM0001", "/dev/ttyACM0", None],
        ["Undocked", "sim-storage", "SIM0002", "/dev/sdb1", "vfat"],
        ["Undocked", "sim-serial", "SIM0001", "/dev/ttyACM0", None],
    ]


def props(**extra: str) -> dict[str, str]:
    base = {"ID_BUS": "usb", "ID_VENDOR_ID": "1209", "ID_MODEL_ID": "E5D2",
            "ID_SERIAL_SHORT": "S1", "SUBSYSTEM": "block", "DEVNAME": "/dev/sdx1",
            "ID_FS_USAGE": "filesystem", "ID_FS_TYPE": "vfat"}
    return {**base, **extra}


def test_only_usb_file_systems_and_ttys_of_configured_models_match() -> None:
    face = face_of(props(), MODELS)
    assert face is not None and (face.product, face.block_device) == ("e5d2", "/dev/sdx1")
    assert face_of(props(ID_BUS="ata"), MODELS) is None
    assert face_of(props(ID_MODEL_ID="0001"), MODELS) is None
    assert face_of(props(ID_FS_USAGE="raid"), MODELS) is None
    whole = {k: v for k, v in props(ID_PART_TABLE_TYPE="dos").items()
             if not k.startswith("ID_FS")}
    assert face_of(whole, MODELS) is None  # a disk with partitions: its partitions dock
    superfloppy = face_of(props(DEVTYPE="disk", DEVNAME="/dev/sdx"), MODELS)
    assert superfloppy is not None and superfloppy.block_device == "/dev/sdx"  # FAT, no table
    tty = face_of(props(SUBSYSTEM="tty", DEVNAME="/dev/ttyACM3"), MODELS)
    assert tty is not None and tty.tty == "/dev/ttyACM3" and tty.block_device is None
