"""evidock as a real process: the demo, ingest on a terminal, verify after tampering."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

EVIDOCK = str(Path(sys.executable).with_name("evidock"))


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVIDOCK, *args], capture_output=True, text=True, timeout=120,
                          check=False, **kw)  # type: ignore[call-overload]


def test_demo_docks_a_shift_and_verifies(home: Path) -> None:
    done = run("demo")
    assert done.returncode == 0, done.stderr
    assert "docked on /dev/pts/" in done.stdout  # a real pty, through the daemon
    assert "device ZFY0001, officer 100231 张伟" in done.stdout
    assert re.search(r"clock -9[4-6] s from the station \(set\), battery 64%", done.stdout)
    assert "[R4 recording_interrupted] (recorder): low_battery" in done.stdout
    assert "stored 5, quarantined 1" in done.stdout
    assert "media_truncated" in done.stdout
    assert "6 recordings" in done.stdout and "all intact" in done.stdout
    assert (home / "catalog.db").exists() and (home / "keys" / "station.key").exists()


def test_ingest_on_a_terminal_shows_progress_then_verify_catches_tampering(
        home: Path, recent_volume: Path) -> None:
    leader, follower = os.openpty()
    try:
        proc = subprocess.run([EVIDOCK, "ingest", str(recent_volume)], stdout=subprocess.PIPE,
                              stderr=follower, text=True, timeout=120, check=False)
    finally:
        os.close(follower)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        terminal += chunk
    os.close(leader)
    assert proc.returncode == 1  # the truncated clip is a storage fault
    assert b"6/6 files" in terminal  # files,
    assert re.search(rb"\d+ (k|M)?B/s", terminal)  # rate and bytes
    assert re.search(rb"[\d.]+/[\d.]+ (k|M)?B", terminal)
    assert "stored 5, quarantined 1" in proc.stdout

    rows = json.loads(run("log", "--json").stdout)
    target = home / "vault" / rows[0]["vault_path"]
    target.chmod(0o644)
    with target.open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    done = run("verify")
    assert done.returncode == 1 and "altered" in done.stdout


def test_a_copy_of_the_data_folder_still_verifies(home: Path, recent_volume: Path,
                                                  tmp_path: Path) -> None:
    run("ingest", str(recent_volume))
    moved = tmp_path / "moved"
    shutil.copytree(home, moved, symlinks=True)
    env = {**os.environ, "EVIDOCK_HOME": str(moved)}
    done = run("verify", "--json", env=env)
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["recordings"] == 6


def test_the_documented_offline_check_accepts_good_and_rejects_altered(
        home: Path, recent_volume: Path, tmp_path: Path) -> None:
    run("ingest", str(recent_volume))
    show = tmp_path / "show.json"
    show.write_text(run("show", "1", "--json").stdout)
    pub = tmp_path / "station.pub"
    pub.write_text(run("keys", "export-public").stdout)
    stored = home / "vault" / json.loads(show.read_text())["vault_path"]
    script = Path(__file__).parents[2] / "docs" / "check_record.py"
    check = [sys.executable, str(script), str(show), str(pub)]
    good = subprocess.run([*check, str(stored)], capture_output=True, text=True, check=False)
    assert good.returncode == 0 and "signature good; file matches" in good.stdout
    edited = json.loads(show.read_text())
    edited["officer"] = "999999"
    show.write_text(json.dumps(edited))
    bad = subprocess.run([*check, str(stored)], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "InvalidSignature" in bad.stderr


def test_config_validate_refuses_a_file_pattern_that_can_never_match(
        home: Path, tmp_path: Path) -> None:
    settings = tmp_path / "evidock.toml"
    settings.write_text(
        "file_patterns = ['^DSJ_(?P<date>\\d{8})_(?P<time>\\d{5})\\.MP4$']\n", encoding="utf-8")
    done = run("--config", str(settings), "config", "validate")
    assert done.returncode == 2 and "can never match" in done.stderr, done.stderr
    assert "13 to 13 digits" in done.stderr and not home.exists()
    model = tmp_path / "model.toml"
    model.write_text(
        "[[models]]\nname = 'x'\nusb_vendor = '1234'\nusb_product = '5678'\n"
        "file_patterns = ['^V_(?P<day>\\d{2})(?P<month>\\d{2})(?P<year>\\d{4})_"
        "(?P<hour>\\d{2})(?P<minute>\\d{2})\\.mp4$']\n", encoding="utf-8")
    done = run("--config", str(model), "config", "validate")
    assert done.returncode == 0, done.stderr


def test_a_store_made_outside_the_service_is_private_to_its_maker(
        home: Path, recent_volume: Path) -> None:
    """Default umask 0077: folders 0700, files 0600, vault copies 0400."""
    done = run("ingest", str(recent_volume))
    assert done.returncode == 1, done.stderr  # (the damaged clip is a storage fault)
    for path in [home, *home.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert not mode & 0o077, (path, oct(mode))
    stored = next((home / "vault" / "files").rglob("*.MP4"))
    assert stored.stat().st_mode & 0o777 == 0o400
