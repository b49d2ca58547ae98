"""The unit files are code: systemd itself checks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

UNITS = Path(__file__).parents[2] / "systemd"
INSTALLED = "/usr/local/bin/evidock"


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of Debian's systemd package"
    here = str(Path(sys.executable).with_name("evidock"))
    units = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer"))
    assert {u.name for u in units} >= {"evidock-verify.service", "evidock-verify.timer"}
    for unit in units:  # point ExecStart at this checkout's evidock, which exists here
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, here))
    done = subprocess.run([analyze, "verify", *sorted(map(str, tmp_path.iterdir()))],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_verify_unit_exposure_is_low(tmp_path: Path) -> None:
    unit = tmp_path / "evidock-verify.service"
    unit.write_text((UNITS / unit.name).read_text())
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                          capture_output=True, text=True, check=False)
    line = next(x for x in done.stdout.splitlines() if "Overall exposure level" in x)
    assert float(line.split(":")[1].split()[0]) < 2.0, line
