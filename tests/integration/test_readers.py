"""Read-only commands need no private key, write nothing, and never block a dock.

An auditor runs `verify`, `log`, `show`, `prove` on the station (or on a copy of its
folder on read-only media) as a user who cannot read the station key; a dock that
starts meanwhile goes on as if nobody were reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from storage.catalog import Catalog

runner = CliRunner()
EVIDOCK = str(Path(sys.executable).with_name("evidock"))
READERS = (["log"], ["log", "--json"], ["show", "1"], ["explanations"], ["verify"],
           ["prove", "1"], ["prove", "--from", "1"], ["device", "list"], ["device", "show",
                                                                           "ZFY0001"],
           ["officer", "list"], ["explain", "list"], ["explain", "show", "1"],
           ["duty", "list"], ["case", "list"], ["report"], ["report", "--csv"], ["overdue"])
# SQLite's shared-memory index and an empty write-ahead log may be made beside the
# catalog by any reader of a WAL database (they hold no data); nothing else may change.
LOCK_FILES = {"catalog.db-shm", "catalog.db-wal"}


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root``: mode and content digest (lock files: content only)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = str(path.relative_to(root))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[rel] = (path.stat().st_mode, digest)
    return found


def same_but_lock_files(before: dict[str, tuple[int, str]],
                        after: dict[str, tuple[int, str]]) -> None:
    keep = {k: v for k, v in after.items() if Path(k).name not in LOCK_FILES}
    assert keep == {k: v for k, v in before.items() if Path(k).name not in LOCK_FILES}
    wal = next((k for k in after if k.endswith("catalog.db-wal")), None)
    if wal is not None and wal not in before:
        assert after[wal][1] == hashlib.sha256(b"").hexdigest()  # made, but empty


def writer(*args: str) -> subprocess.CompletedProcess[str]:
    """A writing command as its own process: its catalog is closed when it exits."""
    return subprocess.run([EVIDOCK, *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def store(home: Path, recent_volume: Path) -> Path:
    done = writer("ingest", str(recent_volume))
    assert done.returncode == 1, done.stderr  # the truncated clip is a storage fault (R3)
    done = writer("checkpoint")
    assert done.returncode == 0, done.stderr
    return home


def test_readers_need_no_private_key_and_change_nothing(store: Path) -> None:
    key = store / "keys" / "station.key"
    hidden = store.parent / "station.key.elsewhere"
    shutil.move(key, hidden)  # as for a user who cannot read the key folder
    before = snapshot(store)
    for args in READERS:
        code, out, err = evidock(*args)
        assert code == 0, (args, err)
        assert "Traceback" not in err
    code, out, _ = evidock("verify", "--json")
    report = json.loads(out)
    assert report["ok"] and report["recordings"] == 6
    assert any("station key" in note and "does not exist" in note
               for note in report["not_checked"])  # says what it could not check
    same_but_lock_files(before, snapshot(store))
    assert not key.exists()


def test_a_read_only_catalog_refuses_every_write(store: Path) -> None:
    catalog = Catalog.open_readonly(f"sqlite:///{store / 'catalog.db'}")
    try:
        with pytest.raises(Exception, match="opened read-only"):
            catalog.annotate(1, by="x", case_no="C", party=None, category=None)
        assert catalog.recordings()[0].case_no is None
    finally:
        catalog.close()


def test_a_reader_refuses_a_catalog_it_would_have_to_upgrade(store: Path) -> None:
    with sqlite3.connect(store / "catalog.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0003'")
    before = snapshot(store)
    code, _, err = evidock("log")
    assert code == 1 and "is at schema 0003" in err and "writing command" in err
    same_but_lock_files(before, snapshot(store))


def test_a_catalog_file_without_tables_is_named_as_such_and_the_next_start_makes_them(
        home: Path, tmp_path: Path) -> None:
    """What a kill during a new store's first start can leave: the catalog file, empty."""
    home.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(home / "catalog.db").close()  # a SQLite file with no tables
    before = snapshot(home)
    for args in (["log"], ["show", "1"], ["verify"]):
        code, _, err = evidock(*args)
        assert code == 2 and "holds no tables" in err and "`evidock ingest`" in err, err
    same_but_lock_files(before, snapshot(home))
    (tmp_path / "nothing").mkdir()
    code, _, err = evidock("ingest", str(tmp_path / "nothing"))
    assert code == 0, err
    code, out, err = evidock("log", "--json")
    assert code == 0 and json.loads(out) == [], err


@pytest.fixture
def read_only_copy(store: Path, tmp_path: Path) -> Iterator[Path]:
    """The station's folder (without its key) on a read-only mount, as on a disc."""
    copy = tmp_path / "copy"
    shutil.copytree(store, copy, ignore=shutil.ignore_patterns("keys", "*-wal", "*-shm"))
    mounted = tmp_path / "ro"
    mounted.mkdir()
    subprocess.run(["mount", "--bind", str(copy), str(mounted)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
        yield mounted
    finally:
        subprocess.run(["umount", "-l", str(mounted)], check=True)  # (in-process engines)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="a bind mount needs root; CI runs as root")
def test_a_copy_on_read_only_media_is_verified_and_read(
        read_only_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDOCK_HOME", str(read_only_copy))
    before = snapshot(read_only_copy)
    for args in READERS:
        code, _, err = evidock(*args)
        assert code == 0, (args, err)
    code, out, _ = evidock("verify")
    assert "all intact" in out and "not checked" in out
    assert snapshot(read_only_copy) == before  # nothing could change, and nothing tried
    code, _, err = evidock("checkpoint")  # a writer says why it cannot
    assert code != 0 and "Traceback" not in err


def test_a_long_read_does_not_block_a_dock(store: Path, tmp_path: Path,
                                           recent_volume: Path) -> None:
    """A reader holding a snapshot open (as verify does while hashing a large vault):
    a dock in another process stores and records everything meanwhile."""
    catalog = Catalog.open_readonly(f"sqlite:///{store / 'catalog.db'}")
    second = tmp_path / "second"
    shutil.copytree(recent_volume, second)
    for clip in second.rglob("*"):  # new bytes, so the clips are not duplicates
        if clip.is_file() and clip.suffix == ".MP4":
            with clip.open("ab") as f:
                f.write(b"\0" * 16)
    try:
        with catalog.reading() as db:
            db.connection().exec_driver_sql("SELECT count(*) FROM recording").scalar()
            done = writer("ingest", str(second), "--json")
            assert done.returncode in (0, 1), done.stderr
            assert "database is locked" not in done.stderr  # (after 30 s of waiting)
            # the reader's snapshot still shows the store as it was when it began
            seen = db.connection().exec_driver_sql("SELECT count(*) FROM recording").scalar()
            assert seen == 6
        assert len(catalog.recordings()) > 6  # a new read sees the dock's records
    finally:
        catalog.close()
