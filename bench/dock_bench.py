"""Docking benchmarks: latency of one recorder, and eight recorders at once.

  latency  a simulated serial recorder with 3 ffmpeg clips is plugged into the
           simulated bus of a running daemon; plug-to-first-byte (identity,
           clock, battery, log, mode switch, first block read) and
           plug-to-verified (every file copied, read back, probed, signed,
           recorded). Median of --rounds.
  one      one recorder holding --mib MiB (4 H.264 clips made by ffmpeg), alone.
  two      two such recorders plugged at once, workers = 8;
  eight    eight: aggregate throughput against `one` (all bytes over the time from
           the first plug to the last verified file), fairness (the slowest
           recorder's rate against the mean) and peak RSS.

The media are made first, in a process of their own (ffmpeg's memory would
otherwise count); then each scenario runs in its own process, and its peak RSS
is that of the daemon docking and of the ffprobe runs it waits for. Each simulated
recorder runs in a process of its own (bench/sim_recorder.py), as a real recorder
is a device of its own; all are made before any is plugged, then plugged at once. The
simulated bus is polled every 0.1 s, which is part of the latency measured;
udev delivers events without that delay.
Usage: python bench/dock_bench.py [--rounds 5] [--mib 256] [--dir /var/tmp/evidock-dock-bench]
                                  [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from benchlib import save

sys.path.insert(0, str(Path(__file__).parents[1]))

from agent.daemon import Daemon, model_ids
from agent.settings import load_settings
from agent.station import open_station
from devices.media import ShiftPlan, make_clip, record_shift, recorder_name
from devices.simbus import SimBusDiscovery

ZONE = ZoneInfo("Asia/Shanghai")
RECORDERS = {"one": 1, "two": 2, "eight": 8}


def big_clip(work: Path, mib: int) -> Path:
    """One H.264/AAC clip of about ``mib`` MiB: 720p test picture under moving noise,
    so it does not compress away, cut at that size by ffmpeg (``-fs``)."""
    return make_clip(work / "big.mp4", 60, datetime.now(UTC), size="1280x720",
                     extra=["-vf", "noise=alls=80:allf=t+u", "-qp", "12",
                            "-fs", str(mib << 20)])


def clip_volume(folder: Path, device: str, clip: Path) -> Path:
    """Four copies of the clip, each with its own trailing bytes: distinct digests."""
    media = folder / "DCIM" / "100MEDIA"
    media.mkdir(parents=True)
    start = datetime.now(ZONE) - timedelta(hours=3)
    for n in range(4):
        name = recorder_name(device, "100231", start + timedelta(minutes=10 * n), "MP4")
        shutil.copyfile(clip, media / name)
        with (media / name).open("ab") as out:
            out.write(os.urandom(16))
    return folder


def prepare(work: Path, mib: int) -> None:
    record_shift(work / "clips", ShiftPlan(truncated=False, photo=False, audio=False),
                 datetime.now(UTC) - timedelta(hours=1), ZONE)
    clip = big_clip(work, mib // 4)
    for n in range(8):
        clip_volume(work / f"vol{n}", f"ZFY{n:04d}", clip)


def run_docks(work: Path, volumes: list[Path], workers: int) -> list[dict[str, Any]]:
    """Plug one simulated recorder per volume at once; return per-recorder timings."""
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    os.environ.update(EVIDOCK_HOME=str(home), EVIDOCK_STATION_ID="bench",
                      EVIDOCK_AGENCY="bench", EVIDOCK_TIMEZONE="Asia/Shanghai",
                      EVIDOCK_WORKERS=str(workers))
    settings = load_settings(None)
    bus = work / "bus"
    settings = settings.model_copy(update={"simbus_dir": bus, "runtime_dir": work / "run"})
    station = open_station(settings)
    daemon = Daemon(settings, station, [SimBusDiscovery(bus, model_ids(settings))])
    thread = threading.Thread(target=daemon.run)
    thread.start()
    recorders = {f"BENCH{n:02d}": subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("sim_recorder.py")), str(bus),
         str(volume), f"ZFY{n:04d}", f"BENCH{n:02d}"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True) for n, volume in enumerate(volumes)}
    results = []
    try:
        for proc in recorders.values():  # every one made before any is plugged
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in recorders.values():
            assert proc.stdin is not None
            proc.stdin.write("plug\n")
            proc.stdin.flush()
        plugged = {serial: float(proc.stdout.readline())  # type: ignore[union-attr]
                   for serial, proc in recorders.items()}
        for serial, at in plugged.items():
            worker = daemon.wait_for(serial, 600)
            assert worker is not None and worker.state == "done", worker and worker.error
            p = worker.progress
            assert p.first_byte_at is not None and worker.finished_at is not None
            results.append({"first_byte_s": p.first_byte_at - at,
                            "verified_s": worker.finished_at - at,
                            "copy_s": worker.finished_at - p.first_byte_at,
                            "bytes": p.bytes_done, "plugged_at": at,
                            "done_at": worker.finished_at})
    finally:
        for proc in recorders.values():  # stdin closed: it unplugs and ends
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)
        daemon.request_stop()
        thread.join()
        station.catalog.close()
    return results


def scenario(name: str, work: Path, rounds: int, mib: int) -> dict[str, Any]:
    if name == "latency":
        runs = [run_docks(work, [work / "clips"], 1)[0] for _ in range(rounds)]
        return {"first_byte_s": statistics.median(r["first_byte_s"] for r in runs),
                "verified_s": statistics.median(r["verified_s"] for r in runs),
                "all": runs}
    count = RECORDERS[name]
    volumes = [work / f"vol{n}" for n in range(count)]
    runs = run_docks(work, volumes, count)
    wall = max(r["done_at"] for r in runs) - min(r["plugged_at"] for r in runs)
    rates = [r["bytes"] / r["copy_s"] / 1e6 for r in runs]
    return {"recorders": count, "aggregate_mb_s": sum(r["bytes"] for r in runs) / wall / 1e6,
            "rates_mb_s": rates, "fairness_min": min(rates) / statistics.mean(rates),
            "wall_s": wall, "docks": runs}


def run_all(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Each scenario in a process of its own; peak RSS from wait4."""
    report: dict[str, Any] = {}
    for name in ("prepare", "latency", *RECORDERS):
        proc = subprocess.Popen([sys.executable, __file__, "--scenario", name, "--rounds",
                                 str(args.rounds), "--mib", str(args.mib), "--work",
                                 str(work)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"scenario {name} failed")
        if name != "prepare":
            report[name] = {**json.loads(out), "peak_rss_mb": usage.ru_maxrss / 1024}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=int, default=256, help="MiB per recorder")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/evidock-dock-bench"))
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="the results file (default bench/results/)")
    args = parser.parse_args()
    if args.scenario:
        logging.basicConfig(level=logging.ERROR)
        if args.scenario == "prepare":
            prepare(args.work, args.mib)
        else:
            print(json.dumps(scenario(args.scenario, args.work, args.rounds, args.mib)))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        report = run_all(args, work)
    finally:
        shutil.rmtree(work)
    lat, one = report["latency"], report["one"]
    print(f"3-clip serial recorder: plug-to-first-byte {lat['first_byte_s']:.2f} s, "
          f"plug-to-verified {lat['verified_s']:.2f} s (median of {args.rounds})")
    print(f"one recorder ({args.mib} MiB): {one['aggregate_mb_s']:.0f} MB/s, "
          f"peak RSS {one['peak_rss_mb']:.0f} MB")
    for name in ("two", "eight"):
        r = report[name]
        r["over_one"] = r["aggregate_mb_s"] / one["aggregate_mb_s"]
        print(f"{name} at once: {r['aggregate_mb_s']:.0f} MB/s aggregate "
              f"({r['over_one']:.2f} x one), slowest {r['fairness_min']:.2f} x the mean, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
    save("dock", report, args.out)

if __name__ == "__main__":
    main()
