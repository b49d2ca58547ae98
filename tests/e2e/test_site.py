"""A site: three stations dock at once into one PostgreSQL catalog and a shared vault.

Each station is its own evidock process with its own home and signing key; they share
the catalog (a real PostgreSQL server the tests start, reached over TCP with a password
from a file) and the vault root. Afterwards a supervisor at any station sees and verifies
everything the site holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from devices.media import ShiftPlan, record_shift, recorder_name
from ingest.filing import GROUP_FILES
from tests.conftest import ZONE
from tests.pgserver import PASSWORD, PgServer

EVIDOCK = str(Path(sys.executable).with_name("evidock"))
STATIONS = ("north", "south", "east")


def station_env(site: Path, url: str, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
    env.update(EVIDOCK_HOME=str(site / name), EVIDOCK_STATION_ID=name,
               EVIDOCK_AGENCY="Site Agency", EVIDOCK_TIMEZONE="Asia/Shanghai",
               EVIDOCK_DATABASE_URL=url,
               EVIDOCK_DATABASE_PASSWORD_FILE=str(site / "db-password"),
               EVIDOCK_VAULT_ROOT=str(site / "vault"), EVIDOCK_SHARED_VAULT="true")
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVIDOCK, *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def site(tmp_path: Path, pg: PgServer) -> tuple[Path, str]:
    (tmp_path / "db-password").write_text(PASSWORD + "\n")
    return tmp_path, pg.database()


def shifts(site: Path, name: str, count: int) -> list[Path]:
    end = datetime.now(UTC) - timedelta(hours=1)
    made = []
    for n in range(count):
        device = f"ZFY{STATIONS.index(name)}{n:03d}"
        folder = site / "recorders" / f"{name}-{n}"
        record_shift(folder, ShiftPlan(device=device, officer=f"10{STATIONS.index(name)}{n:03d}",
                                       clips=2, clip_seconds=1.0, truncated=False, audio=False),
                     end, ZONE)
        made.append(folder)
    return made


def test_three_stations_dock_at_once_into_one_site(site: tuple[Path, str]) -> None:
    root, url = site
    envs = {name: station_env(root, url, name) for name in STATIONS}
    volumes = {name: shifts(root, name, 3) for name in STATIONS}
    results: dict[str, list[subprocess.CompletedProcess[str]]] = {n: [] for n in STATIONS}

    def station(name: str) -> None:
        for volume in volumes[name]:
            results[name].append(run(envs[name], "ingest", str(volume), "--json"))
        results[name].append(run(envs[name], "checkpoint"))

    threads = [threading.Thread(target=station, args=(name,)) for name in STATIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, done in results.items():
        for result in done:
            assert result.returncode == 0, (name, result.stdout, result.stderr)

    # one ledger, no fork: every station's leaves in one gap-free sequence
    with psycopg.connect(url, password=PASSWORD) as db:
        seqs = [r[0] for r in db.execute("select seq from ledger_leaf order by seq")]
        bodies = [json.loads(r[0]) for r in db.execute("select body from ledger_leaf")]
        signed = {r[0] for r in db.execute("select station from checkpoint")}
    assert seqs == list(range(len(seqs)))
    assert {b["station"] for b in bodies} >= set(STATIONS)
    assert signed == set(STATIONS)

    # the work folders are per station; the evidence tree is one
    assert sorted(p.name for p in (root / "vault" / "stations").iterdir()) == sorted(STATIONS)
    for name in STATIONS:  # a supervisor at any station sees and verifies the whole site
        log = json.loads(run(envs[name], "log", "--json").stdout)
        assert len(log) == 3 * 3 * 3  # 3 stations x 3 recorders x (2 clips + a photo)
        assert {r["station"] for r in log} == set(STATIONS)
        report = run(envs[name], "verify", "--json")
        checked = json.loads(report.stdout)
        assert report.returncode == 0 and checked["ok"], checked["problems"]
        assert checked["recordings"] == 27

    # a package is made at the station that stored (and signed) what it carries
    north_id = min(r["id"] for r in log if r["station"] == "north")
    details = ["--collector", "张伟", "--place", "site", "--reason", "test",
               "--approved-by", "王芳", "--recording", str(north_id)]
    refused = run(envs["east"], "export", "--out", str(root / "from-east"), *details)
    assert refused.returncode == 2 and "stored by station north" in refused.stderr
    assert not (root / "from-east").exists()
    made = run(envs["north"], "export", "--out", str(root / "from-north"), *details)
    assert made.returncode == 0, made.stderr
    checked = run(envs["east"], "verify-export", str(root / "from-north"))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # a row one station wrote, edited in the database, is caught by another's verify
    with psycopg.connect(url, password=PASSWORD) as db:
        db.execute("update recording set officer_no = '999999' where station_id = 'north' "
                   "and id = (select min(id) from recording where station_id = 'north')")
    report = run(envs["east"], "verify", "--json")
    kinds = {p["kind"] for p in json.loads(report.stdout)["problems"]}
    assert report.returncode == 1 and "row_differs" in kinds, report.stdout


def wait_for_recordings(url: str, count: int, proc: subprocess.Popen[str]) -> None:
    while proc.poll() is None:
        with psycopg.connect(url, password=PASSWORD) as db:
            row = db.execute("select count(*) from recording").fetchone()
        if row is not None and row[0] >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the dock ended before {count} recordings: {proc.communicate()}")


def test_an_outage_mid_dock_loses_nothing_and_is_explained(
        site: tuple[Path, str], pg: PgServer) -> None:
    root, url = site
    env = station_env(root, url, "north")
    volume = root / "recorder"
    end = datetime.now(UTC) - timedelta(hours=1)
    made = record_shift(volume, ShiftPlan(clips=24, clip_seconds=4.0, truncated=False),
                        end, ZONE)
    # Small files are recorded in groups (ingest/filing.py): enough of them that the
    # server stops after the first group is recorded and before the last.
    clips = [p for p in made if p.suffix == ".MP4"]
    for n in range(3 * GROUP_FILES):
        extra = volume / "DCIM" / "101MEDIA" / recorder_name(
            "ZFY0001", "100231", end.astimezone(ZONE) - timedelta(minutes=30, seconds=5 * n),
            "MP4")
        extra.parent.mkdir(exist_ok=True)
        extra.write_bytes(clips[n % len(clips)].read_bytes() + n.to_bytes(4, "big"))
        made.append(extra)
    (root / "first").mkdir()
    assert run(env, "ingest", str(root / "first")).returncode == 0  # the station's store
    proc = subprocess.Popen([EVIDOCK, "ingest", str(volume)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_recordings(url, 1, proc)
        pg.stop("immediate")  # the site's server goes away mid-dock
        out, err = proc.communicate(timeout=120)
    finally:
        pg.restart()
    assert proc.returncode == 1, (out, err)
    assert "cannot reach the catalog postgresql://" in out
    assert "kept in the station's spool" in out
    assert "Traceback" not in err
    spooled = list((root / "north" / "spool").glob("*.json"))
    assert spooled, out

    again = run(env, "ingest", str(volume), "--json")  # the server is back: the next dock
    assert again.returncode == 0, again.stderr
    assert not list((root / "north" / "spool").glob("*.json"))  # recorded, not kept
    explained = json.loads(run(env, "explain", "list", "--json").stdout)
    outage = [e for e in explained if e["kind"] == "catalog_error"]
    assert outage and "recorded from the station's spool" in outage[0]["action"]
    assert "cannot reach the catalog" in outage[0]["error"]
    log = json.loads(run(env, "log", "--json").stdout)
    assert sorted(r["source_path"] for r in log) == sorted(
        str(p.relative_to(volume)) for p in made)  # every file, once
    report = run(env, "verify", "--json")
    assert report.returncode == 0 and json.loads(report.stdout)["ok"], report.stdout


def test_a_dock_that_cannot_reach_the_catalog_is_explained_when_it_can(
        site: tuple[Path, str], pg: PgServer) -> None:
    root, url = site
    env = station_env(root, url, "south") | {"EVIDOCK_OFFLINE_DOCKING": "false"}
    (root / "first").mkdir()
    assert run(env, "ingest", str(root / "first")).returncode == 0
    volume = root / "recorder"
    record_shift(volume, ShiftPlan(clips=1, clip_seconds=1.0, truncated=False, photo=False,
                                   audio=False), datetime.now(UTC) - timedelta(hours=1), ZONE)
    pg.stop()
    try:
        down = run(env, "ingest", str(volume))
    finally:
        pg.restart()
    assert down.returncode == 1 and "cannot reach the catalog" in down.stderr, down.stderr
    assert "the explanation is kept in the station's spool" in down.stderr
    assert "Traceback" not in down.stderr
    assert run(env, "checkpoint").returncode == 0  # any writer records what waits
    explained = json.loads(run(env, "explain", "list", "--json").stdout)
    assert [e["kind"] for e in explained] == ["catalog_error"]
    assert "the dock could not start" in explained[0]["error"]
    report = run(env, "verify", "--json")
    assert report.returncode == 0, report.stdout


def test_docks_during_an_outage_go_offline_and_are_replayed_when_it_ends(
        site: tuple[Path, str], pg: PgServer) -> None:
    root, url = site
    env = station_env(root, url, "north")
    (root / "first").mkdir()
    assert run(env, "ingest", str(root / "first")).returncode == 0  # the station's store
    volume = root / "recorder"
    made = record_shift(volume, ShiftPlan(clips=2, clip_seconds=1.0, truncated=False,
                                          audio=False), datetime.now(UTC) - timedelta(hours=1),
                        ZONE)
    pg.stop()
    try:
        down = run(env, "ingest", str(volume), "--json")
    finally:
        pg.restart()
    assert down.returncode == 1, down.stderr  # stored, with an explanation to read (R3)
    assert "Traceback" not in down.stderr
    offline = json.loads(down.stdout)
    assert offline["files"] == {"stored": len(made)}
    assert [e["kind"] for e in offline["explanations"]] == ["docked_offline"]
    assert "cannot reach the catalog postgresql://" in offline["explanations"][0]["error"]
    assert (root / "north" / "offline" / "catalog.db").exists()
    with psycopg.connect(url, password=PASSWORD) as db:  # nothing reached the site
        assert db.execute("select count(*) from recording").fetchone() == (0,)

    check = run(env, "replay", "--check")
    assert check.returncode == 0 and "offline docks waiting for the site catalog: 1" in check.stdout
    up = run(env, "replay")  # the server is back (the daemon and docks do this too)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"offline dock {offline['session']} -> dock session " in up.stdout
    assert f"{len(made)} stored; explanations: docked_offline, unregistered_device" in up.stdout
    assert "offline docks replayed into the site catalog: 1" in up.stdout
    assert not (root / "north" / "offline").exists()
    assert [p.name for p in (root / "north" / "offline-replayed").iterdir()]
    assert "nothing to replay" in run(env, "replay").stdout

    south = station_env(root, url, "south")  # a supervisor at another station sees it all
    log = json.loads(run(south, "log", "--json").stdout)
    assert sorted(r["source_path"] for r in log) == sorted(
        str(p.relative_to(volume)) for p in made)
    explained = json.loads(run(south, "explain", "list", "--json").stdout)
    assert sorted(e["kind"] for e in explained) == ["docked_offline", "unregistered_device"]
    report = run(south, "verify", "--json")
    assert report.returncode == 0 and json.loads(report.stdout)["ok"], report.stdout


def test_a_daemon_dock_that_finds_the_server_gone_goes_offline(
        site: tuple[Path, str], pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.offline import open_offline, replay_offline
    from agent.settings import load_settings
    from agent.station import open_station
    from devices.source import FolderSource
    from devices.volume import FolderVolume
    from ingest.pipeline import Dock

    root, url = site
    for name, value in station_env(root, url, "east").items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    station = open_station(settings)  # the daemon's, opened while the server was up
    volume = root / "recorder"
    record_shift(volume, ShiftPlan(clips=1, clip_seconds=1.0, truncated=False, audio=False),
                 datetime.now(UTC) - timedelta(hours=1), ZONE)
    try:
        pg.stop()
        try:  # as a worker docks: the offline store if the catalog cannot be reached
            summary = Dock(station, FolderSource(FolderVolume(volume)),
                           offline=lambda why: open_offline(settings, why)).run()
        finally:
            pg.restart()
        assert [e.kind for e in summary.explanations] == ["docked_offline"]
        assert summary.files_stored == 2
        done = replay_offline(settings, station)  # the daemon's periodic repair
        assert done is not None and done.sessions == 1 and done.retired is not None
        assert station.catalog.count_recordings(station.catalog.sessions()[-1].session_id) == 2
    finally:
        station.close()


def test_a_daemon_started_during_an_outage_runs_offline_and_stops_when_it_ends(
        site: tuple[Path, str], pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.daemon import Daemon
    from agent.offline import open_offline
    from agent.settings import load_settings

    root, url = site
    env = station_env(root, url, "west")
    (root / "first").mkdir()
    assert run(env, "ingest", str(root / "first")).returncode == 0
    status = root / "west" / "run" / "status.json"
    pg.stop()
    try:
        proc = subprocess.Popen([EVIDOCK, "daemon", "--no-udev"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not status.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert proc.poll() is None and status.exists()  # it runs, on the offline store
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "the daemon runs on the station's offline store" in err

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        daemon = Daemon(settings, open_offline(settings, "down"), [])
        try:
            daemon._recover()  # what its loop runs every minute
            assert not daemon.site_back and not daemon.stop_requested()
        finally:
            pg.restart()
        daemon._recover()
        assert daemon.site_back and daemon.stop_requested()  # its unit starts it again
    finally:
        if not pg.running():
            pg.restart()
    daemon.pool.shutdown()
    daemon.station.close()


def test_the_daemon_docks_a_recorder_offline_while_the_server_is_down(
        site: tuple[Path, str], pg: PgServer) -> None:
    from tests.e2e.test_daemon import DaemonProcess, done, entry, recorder

    root, url = site
    bus = root / "bus"
    env = station_env(root, url, "south") | {"EVIDOCK_SIMBUS_DIR": str(bus)}
    (root / "first").mkdir()
    assert run(env, "ingest", str(root / "first")).returncode == 0
    volume = root / "recorder"
    made = record_shift(volume, ShiftPlan(device="ZFY0001", clips=2, clip_seconds=1.0,
                                          truncated=False, audio=False),
                        datetime.now(UTC) - timedelta(hours=1), ZONE)
    daemon = DaemonProcess(root / "south", bus, env)  # started while the server is up
    try:
        pg.stop()
        try:
            sim = recorder(bus, volume, "SIM-OFF", "ZFY0001").plug()
            got = entry(daemon.wait(done("SIM-OFF"), "dock offline"), "SIM-OFF")
            sim.unplug()
        finally:
            pg.restart()
        assert got["files_done"] == got["files_total"] == len(made), got
        assert "CLR" not in sim.recorder.commands
        assert daemon.stop() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.stop()
    assert "docking into the station's offline store" in daemon.log.read_text()
    again = DaemonProcess(root / "south", bus, env)  # its next start replays the store
    try:
        deadline = time.monotonic() + 60
        while (root / "south" / "offline").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (root / "south" / "offline").exists(), again.log.read_text()
    finally:
        assert again.stop() == 0
    up = run(env, "replay")
    assert up.returncode == 0, up.stdout + up.stderr
    log = json.loads(run(env, "log", "--json").stdout)
    assert sorted(r["source_path"] for r in log) == sorted(
        str(p.relative_to(volume)) for p in made)
    explained = {e["kind"]: e for e in json.loads(run(env, "explain", "list", "--json").stdout)}
    assert {"docked_offline", "clock_drift", "unregistered_device"} <= set(explained)
    assert explained["docked_offline"]["device"] == "ZFY0001"
    assert "recorded in the station's offline store" in explained["clock_drift"]["action"]
    report = run(env, "verify", "--json")
    assert report.returncode == 0 and json.loads(report.stdout)["ok"], report.stdout
