"""The unit files are code: systemd itself checks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.settings import Settings
from agent.udev_rules import udev_rules

UNITS = Path(__file__).parents[2] / "systemd"
INSTALLED = "/usr/local/bin/evidock"


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of Debian's systemd package"
    here = str(Path(sys.executable).with_name("evidock"))
    units = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer"))
    assert {u.name for u in units} == {"evidock.service", "evidock-verify.service",
                                       "evidock-verify.timer"}
    for unit in units:  # point ExecStart at this checkout's evidock, which exists here
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, here))
    done = subprocess.run([analyze, "verify", *sorted(map(str, tmp_path.iterdir()))],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("name", ["evidock.service", "evidock-verify.service"])
def test_service_exposure_is_below_2(tmp_path: Path, name: str) -> None:
    unit = tmp_path / name
    unit.write_text((UNITS / name).read_text())
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                          capture_output=True, text=True, check=False)
    line = next(x for x in done.stdout.splitlines() if "Overall exposure level" in x)
    assert float(line.split(":")[1].split()[0]) < 2.0, line


def test_shipped_udev_rules_are_what_the_default_models_make() -> None:
    assert (UNITS / "70-evidock.rules").read_text() == udev_rules(Settings().models)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="writes /run/udev/rules.d; CI runs as root")
def test_udev_accepts_the_rules() -> None:
    installed = Path("/run/udev/rules.d/70-evidock-under-test.rules")
    installed.parent.mkdir(parents=True, exist_ok=True)
    installed.write_text((UNITS / "70-evidock.rules").read_text())
    try:
        done = subprocess.run(["udevadm", "test", "/sys/class/tty/tty0"], capture_output=True,
                              text=True, check=False)
    finally:
        installed.unlink()
    read = [x for x in done.stderr.splitlines() if installed.name in x]
    assert read and all("Reading rules file" in x for x in read), read
