"""The unit files are code: systemd itself checks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.settings import Settings
from agent.site_unit import dropins, write_dropins
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


def _exposure(root: Path, unit: str) -> float:
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}",
                           unit], capture_output=True, text=True, check=False)
    line = next(x for x in done.stdout.splitlines() if "Overall exposure level" in x)
    return float(line.split(":")[1].split()[0])


def test_a_site_station_gets_exactly_its_server_and_vault_and_stays_below_2(
        tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://evidock@10.20.30.40:5433/site",
                        vault_root=Path("/srv/site-vault"), shared_vault=True)
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for name in ("evidock.service", "evidock-verify.service"):
        (units / name).write_text((UNITS / name).read_text())
    written = write_dropins(settings, units)
    assert [p.relative_to(units).as_posix() for p in written] == [
        "evidock.service.d/50-evidock-site.conf",
        "evidock-verify.service.d/50-evidock-site.conf"]
    daemon = written[0].read_text()
    assert "IPAddressAllow=10.20.30.40\n" in daemon
    assert "RestrictAddressFamilies=AF_INET\n" in daemon
    assert "ReadWritePaths=/srv/site-vault\n" in daemon
    verify = written[1].read_text()
    assert "PrivateNetwork=no\n" in verify and "ReadWritePaths" not in verify
    for name in ("evidock.service", "evidock-verify.service"):
        assert _exposure(tmp_path, name) < 2.0, name


def test_a_named_server_is_resolved_and_a_local_socket_is_a_path() -> None:
    named = dropins(Settings(database_url="postgresql://evidock@localhost/site"))
    text = named["evidock.service"]
    assert "# localhost resolved to " in text and "127.0.0.1" in text
    local = dropins(Settings(database_url="postgresql://evidock@/site?host=/run/postgresql"))
    assert "ReadWritePaths=/run/postgresql\n" in local["evidock.service"]
    assert "IPAddressAllow" not in local["evidock.service"]
    shipped = Settings(home=Path("/var/lib/evidock"))  # SQLite and vault in the state folder
    assert dropins(shipped) == {}
    assert list(dropins(Settings(home=Path("/var/lib/evidock"),
                                 vault_root=Path("/srv/v")))) == ["evidock.service"]


def test_config_systemd_prints_writes_and_refuses_an_unwritable_folder(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cli import app
    runner = CliRunner()
    monkeypatch.setenv("EVIDOCK_DATABASE_URL", "postgresql://evidock@192.0.2.7/site")
    shown = runner.invoke(app, ["config", "systemd"])
    assert shown.exit_code == 0 and "IPAddressAllow=192.0.2.7" in shown.stdout
    done = runner.invoke(app, ["config", "systemd", "--write", "--root", str(tmp_path)])
    assert done.exit_code == 0, done.stderr
    assert (tmp_path / "evidock.service.d" / "50-evidock-site.conf").is_file()
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = runner.invoke(app, ["config", "systemd", "--write", "--root", str(blocker)])
    assert bad.exit_code == 2 and "cannot write the drop-ins" in bad.stderr
