"""The installer on this machine, end to end (root; CI runs as root).

scripts/install.sh puts evidock in a prefix of its own, creates the service
user and the role groups, installs the units, udev and polkit rules and a
settings file to fill in; the daemon refuses to start until it is filled, then
runs as the service user against the installed settings; an admin in the group
reads the station with no environment of their own; uninstall leaves the
evidence. The installation goes to a test prefix and is removed at the end.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devices.media import make_clip, recorder_name
from tests.conftest import ZONE

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/apt-get").exists(),
    reason="installs system-wide: needs root on Debian (CI runs as root)")]

SOURCE = Path(__file__).parents[2]
PREFIX = Path("/opt/evidock-test")
SETTINGS = Path("/etc/evidock/evidock.toml")
STORE = Path("/var/lib/evidock")
RUN = Path("/run/evidock")
UNITS = ("evidock.service", "evidock-verify.service", "evidock-verify.timer")


def sh(*args: str, user: str | None = None, check: bool = True, timeout: float = 900,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = ["runuser", "-u", user, "--", *args] if user else list(args)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          check=False, env={**clean, **(env or {})}, cwd="/")
    if check:
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done


def mode_owner(path: Path) -> tuple[str, str, str]:
    info = path.stat()
    return (oct(stat.S_IMODE(info.st_mode)), pwd.getpwuid(info.st_uid).pw_name,
            grp.getgrgid(info.st_gid).gr_name)


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    if SETTINGS.exists() or STORE.exists() or RUN.exists():
        pytest.skip("this machine already has an evidock station; the test would touch it")
    try:
        sh(str(SOURCE / "scripts" / "install.sh"), "--prefix", str(PREFIX), "--no-enable")
        yield PREFIX
    finally:
        sh(str(SOURCE / "scripts" / "uninstall.sh"), "--prefix", str(PREFIX), check=False)
        shutil.rmtree(STORE, ignore_errors=True)
        shutil.rmtree(RUN, ignore_errors=True)
        shutil.rmtree(SETTINGS.parent, ignore_errors=True)
        for user in ("evidock", "evidock-test-stranger", *USERS):
            sh("userdel", user, check=False)
        for group in ("evidock", "evidock-officer", "evidock-custodian", "evidock-supervisor",
                      "evidock-admin"):
            sh("groupdel", group, check=False)


def test_every_installed_file_has_its_owner_and_mode(installed: Path) -> None:
    assert os.readlink("/usr/local/bin/evidock") == str(installed / "bin" / "evidock")
    assert mode_owner(SETTINGS) == ("0o640", "root", "evidock")
    assert mode_owner(SETTINGS.parent) == ("0o750", "root", "evidock")
    assert mode_owner(STORE) == ("0o750", "evidock", "evidock")
    for unit in UNITS:
        assert mode_owner(Path("/etc/systemd/system") / unit) == ("0o644", "root", "root")
    assert mode_owner(Path("/etc/udev/rules.d/70-evidock.rules")) == ("0o644", "root", "root")
    assert "1209" in Path("/etc/udev/rules.d/70-evidock.rules").read_text()
    assert mode_owner(Path("/etc/polkit-1/rules.d/50-evidock.rules")) == (
        "0o644", "root", "root")
    service = pwd.getpwnam("evidock")
    assert service.pw_dir == str(STORE) and service.pw_shell == "/usr/sbin/nologin"
    assert "evidock" in [g.gr_name for g in grp.getgrall() if "evidock" in g.gr_mem] or (
        grp.getgrgid(service.pw_gid).gr_name == "evidock")
    assert "evidock" in grp.getgrnam("dialout").gr_mem
    for role in ("officer", "custodian", "supervisor", "admin"):
        grp.getgrnam(f"evidock-{role}")
    done = sh("systemd-analyze", "verify", *(f"/etc/systemd/system/{u}" for u in UNITS))
    assert "evidock" not in done.stderr, done.stderr  # (other units' warnings are not ours)


@pytest.fixture
def volumes(tmp_path: Path) -> Iterator[Path]:
    """Two recorders' files where the service user can read them: officer 100231's and
    officer 100232's."""
    shared = Path(tempfile.mkdtemp(prefix="evidock-test-", dir="/var/tmp"))
    try:
        for officer, device in (("100231", "ZFY0001"), ("100232", "ZFY0002")):
            start = datetime.now(ZONE).replace(microsecond=0) - timedelta(hours=2)
            folder = shared / officer / "DCIM"
            folder.mkdir(parents=True)
            make_clip(folder / recorder_name(device, officer, start, "MP4"), 1.0, start)
        for path in [shared, *shared.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield shared
    finally:
        shutil.rmtree(shared)


USERS = {"ev-officer": "evidock-officer", "ev-custodian": "evidock-custodian",
         "ev-supervisor": "evidock-supervisor", "ev-admin": "evidock-admin"}


def as_user(user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return sh("/usr/local/bin/evidock", *args, user=user, check=False)


def roles_and_the_access_register(volumes: Path) -> None:
    """Each role through delegation (sudo as the service user), with real OS accounts."""
    for user, group in USERS.items():
        sh("useradd", "--create-home", "--groups", group, user)
    sh("/usr/local/bin/evidock", "officer", "add", "100231", "--name", "张伟",
       "--login", "ev-officer", "--by", "root-admin")
    for officer in ("100231", "100232"):
        sh("/usr/local/bin/evidock", "ingest", str(volumes / officer))
    logged = json.loads(as_user("ev-officer", "log", "--json").stdout)
    assert {r["officer"] for r in logged} == {"100231"}  # an officer: their own only
    mine, = (r["id"] for r in logged)
    assert as_user("ev-officer", "show", str(mine)).returncode == 0
    other = 3 - mine
    refused = as_user("ev-officer", "show", str(other))
    assert refused.returncode == 2 and "officers see only their own" in refused.stderr
    everything = json.loads(as_user("ev-supervisor", "explain", "list", "--json").stdout)
    theirs = json.loads(as_user("ev-officer", "explain", "list", "--json").stdout)
    assert everything and len(theirs) < len(everything)
    assert all(mine in (e["recording_id"], e["related_recording_id"]) for e in theirs)
    refused = as_user("ev-supervisor", "show", str(other))
    assert refused.returncode == 2 and "need an approval" in refused.stderr, refused.stderr
    seen = as_user("ev-supervisor", "show", str(other), "--reason", "复核投诉",
                   "--approved-by", "王局", "--approval", "SP-2026-88")
    assert "officer_name" in seen.stdout
    assert seen.returncode == 0, seen.stderr
    approved = ("--approved-by", "王局", "--approval", "SP-2026-88")
    refused = as_user("ev-supervisor", "annotate", str(other), "--case", "2026-9",
                      "--by", "sup")
    assert refused.returncode == 2 and "need an approval" in refused.stderr
    assert as_user("ev-supervisor", "annotate", str(other), "--case", "2026-9", "--by",
                   "sup", "--reason", "立案", *approved).returncode == 0
    package = Path(tempfile.mkdtemp(prefix="evidock-pkg-", dir="/var/tmp"))
    shutil.chown(package, "evidock", "evidock")
    try:
        exported = as_user("ev-supervisor", "export", "--recording", str(other), "--out",
                           str(package / "p"), "--collector", "李", "--place", "队部",
                           "--reason", "移送", *approved)
        assert exported.returncode == 0, exported.stderr
    finally:
        shutil.rmtree(package)
    assert as_user("ev-supervisor", "log", "--reason", "月度检查").returncode == 0
    first = everything[0]["id"]
    refused = as_user("ev-supervisor", "explain", "print", str(first), "--out",
                      str(STORE / "x.html"))
    assert refused.returncode == 2 and "the station's own folder" in refused.stderr
    shared = Path(tempfile.mkdtemp(prefix="evidock-out-", dir="/var/tmp"))
    shared.chmod(0o1777)
    try:
        printed = as_user("ev-supervisor", "explain", "print", str(first), "--out",
                          str(shared / "x.html"))
        assert printed.returncode == 0, printed.stderr
        assert "情况说明" in sh("cat", str(shared / "x.html"), user="ev-supervisor").stdout
    finally:
        shutil.rmtree(shared)
    register = json.loads(as_user("ev-supervisor", "access", "log", "--json").stdout)
    assert [(e["user"], e["action"], e["recordings"], e["approval"]) for e in register] == [
        ("ev-supervisor", "show", [other], "SP-2026-88"),
        ("ev-supervisor", "annotate", [other], "SP-2026-88"),
        ("ev-supervisor", "export", [other], "SP-2026-88"),
        ("ev-supervisor", "log", sorted([mine, other]), None)]  # nobody's are theirs
    assert register[3]["reason"] == "月度检查" and register[0]["officers"] == ["100232"]
    mine_only = as_user("ev-officer", "access", "log")
    assert mine_only.returncode == 2 and "needs the role" in mine_only.stderr
    assert as_user("ev-custodian", "device", "register", "ZFY0009", "--by", "王芳"
                   ).returncode == 0
    refused = as_user("ev-custodian", "purge", "--dry-run")
    assert refused.returncode == 2 and "needs the role admin" in refused.stderr
    assert as_user("ev-admin", "purge", "--dry-run").returncode == 0
    refused = as_user("ev-officer", "--config", "/tmp/x.toml", "log")
    assert refused.returncode == 2 and "delegation" in refused.stderr
    assert "all intact" in sh("/usr/local/bin/evidock", "verify").stdout


def test_the_daemon_refuses_settings_not_filled_in_then_runs_as_the_service_user(
        installed: Path, volumes: Path) -> None:
    done = sh("/usr/local/bin/evidock", "daemon", "--no-udev", user="evidock", check=False,
              timeout=60)
    assert done.returncode == 2, done.stderr
    assert "agency, station_id, timezone" in done.stderr and str(SETTINGS) in done.stderr
    assert not (STORE / "catalog.db").exists()  # refused before anything was made
    text = SETTINGS.read_text()
    SETTINGS.write_text(text.replace('# agency = ""', 'agency = "测试市公安局"')
                        .replace('# station_id = ""', 'station_id = "dock-01"')
                        .replace('# timezone = ""', f'timezone = "{ZONE.key}"'))
    run_dir = RUN  # (systemd makes it for the service: RuntimeDirectory=)
    run_dir.mkdir(mode=0o750)
    shutil.chown(run_dir, "evidock", "evidock")
    # setpriv execs the daemon itself as the service user, so SIGTERM reaches it as it
    # does from systemd (runuser would stand between them as a session)
    daemon = subprocess.Popen(["setpriv", "--reuid=evidock", "--regid=evidock",
                               "--init-groups", "/usr/local/bin/evidock", "daemon",
                               "--no-udev"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd="/", env={"PATH": os.environ["PATH"]})
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "status.json").exists() and time.monotonic() < deadline:
            assert daemon.poll() is None, daemon.communicate()
            time.sleep(0.2)
        assert mode_owner(STORE / "catalog.db")[1:] == ("evidock", "evidock")
        assert mode_owner(STORE / "keys" / "station.key") == ("0o400", "evidock", "evidock")
        # root's command on the service's store acts as the service user
        sh("/usr/local/bin/evidock", "officer", "add", "100231", "--name", "张伟",
           "--by", "root-admin")
        owners = {mode_owner(p)[1] for p in STORE.rglob("*")}
        assert owners == {"evidock"}, owners
        roles_and_the_access_register(volumes)
        # a user in no role group gets a clear message, not a traceback
        sh("useradd", "--create-home", "evidock-test-stranger")
        refused = sh("/usr/local/bin/evidock", "log", user="evidock-test-stranger",
                     check=False)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "role group you need" in refused.stderr, refused.stderr
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err


def test_uninstall_leaves_the_evidence(installed: Path) -> None:
    (STORE / "marker").write_text("evidence")
    sh(str(SOURCE / "scripts" / "uninstall.sh"), "--prefix", str(PREFIX))
    assert not installed.exists() and not Path("/usr/local/bin/evidock").exists()
    assert not Path("/etc/systemd/system/evidock.service").exists()
    assert (STORE / "marker").read_text() == "evidence" and SETTINGS.exists()
    pwd.getpwnam("evidock")
