"""`evidock ingest` from a source read at USB rates.

A recorder's volume is a file system on a loop device (ext4 here: the machine has no vfat
driver; the file system's own cost is small beside the rates measured), and every read
of that device by the processes measured is held to --rates MB/s (USB 2 in practice
about 35 MB/s, USB 3 from a recorder about 200 MB/s) by the kernel's block throttle
(cgroup v1 blkio.throttle.read_bps_device). Only the source is throttled: the vault is on
another device, so the read-back is not.

In each round, side by side on the same bytes, the source dropped from the page cache
before each run: the source rate (a reader that hashes the volume's files in the same
throttled cgroup) and `evidock ingest` with read-back (a store made just before it).
Reported: ingest's rate against the source's, both for the process (start-up included)
and for the dock itself (from the summary's started_at to finished_at, as a daemon
docks: already running), and its CPU use (user + system seconds over wall seconds, in
cores). Medians of --repeat rounds.

Needs root, loop devices and the cgroup v1 blkio controller; otherwise it says why and
writes no results.
Usage: python bench/usb_bench.py [--rates 35,200] [--mib 256,1024] [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import BIN, drop_cache, run_timed, save
from ingest_bench import prepare

BLKIO = Path("/sys/fs/cgroup/blkio")
READER = """
import hashlib, os, sys
for folder, _dirs, names in os.walk(sys.argv[1]):
    for name in sorted(names):
        sha = hashlib.sha256()
        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
        buf = bytearray(1 << 20)
        while n := os.readv(fd, [buf]):
            sha.update(memoryview(buf)[:n])
        os.close(fd)
"""


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a loop device, a mount and a cgroup)"
    if not (BLKIO / "cgroup.procs").exists():
        return f"needs the cgroup v1 blkio controller ({BLKIO} is not there)"
    if shutil.which("losetup") is None or shutil.which("mkfs.ext4") is None:
        return "needs losetup and mkfs.ext4"
    return None


class Source:
    """A loop-mounted file system holding one recorder's clips, and a throttle on it."""

    def __init__(self, work: Path, mib: int):
        self.image = work / f"usb-{mib}.img"
        self.mount = work / f"usb-{mib}"
        self.group = BLKIO / f"evidock-bench-{os.getpid()}"
        subprocess.run(["truncate", "-s", f"{mib + mib // 8 + 64}M", str(self.image)],
                       check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], check=True)
        self.loop = subprocess.run(["losetup", "--find", "--show", str(self.image)],
                                   check=True, capture_output=True, text=True).stdout.strip()
        self.mount.mkdir()
        try:
            self._fill(mib)
        except BaseException:
            self.close()
            raise

    def _fill(self, mib: int) -> None:
        subprocess.run(["mount", self.loop, str(self.mount)], check=True)
        clips = self.mount / "DCIM"
        clips.mkdir()
        each = 64  # MiB a clip, as recorders split long recordings
        for i in range(max(1, mib // each)):
            with (clips / f"DSJ_USB001_000001_20261120_08{i:04d}.MP4").open("wb") as out:
                for _ in range(each):
                    out.write(os.urandom(1 << 20))
        self.files = sorted(clips.iterdir())
        self.bytes = sum(p.stat().st_size for p in self.files)
        rdev = os.stat(self.loop).st_rdev
        self.device = f"{os.major(rdev)}:{os.minor(rdev)}"
        self.group.mkdir()

    def throttle(self, mb_per_s: int) -> None:
        (self.group / "blkio.throttle.read_bps_device").write_text(
            f"{self.device} {mb_per_s * 1_000_000}\n")

    def join(self) -> None:
        """In the child: join the throttled cgroup."""
        (self.group / "cgroup.procs").write_text(f"{os.getpid()}\n")

    def cold(self) -> None:
        drop_cache(*self.files)

    def close(self) -> None:
        subprocess.run(["umount", str(self.mount)], check=False)
        subprocess.run(["losetup", "-d", self.loop], check=False)
        if self.group.exists():
            self.group.rmdir()
        self.image.unlink(missing_ok=True)


def measure(source: Source, rate: int, repeat: int, work: Path) -> dict[str, Any]:
    source.throttle(rate)
    runs: dict[str, list[dict[str, float]]] = {"source": [], "ingest+v": []}
    for n in range(repeat):
        source.cold()
        got = run_timed([sys.executable, "-c", READER, str(source.mount)], before=source.join)
        runs["source"].append({"seconds": got.seconds, "cpu": got.cpu})
        home = work / f"home-{rate}-{n}"
        env = {**os.environ, "EVIDOCK_HOME": str(home), "EVIDOCK_STATION_ID": "bench",
               "EVIDOCK_AGENCY": "bench", "EVIDOCK_VERIFY_REREAD": "true"}
        env.pop("EVIDOCK_CONFIG", None)
        prepare(env)
        source.cold()
        got = run_timed([str(BIN / "evidock"), "ingest", "--json", str(source.mount)], env,
                        ok=(0, 1), before=source.join)  # 1: random bytes are not media
        summary = json.loads(got.out)
        dock = (datetime.fromisoformat(summary["finished_at"])
                - datetime.fromisoformat(summary["started_at"])).total_seconds()
        if summary["bytes_stored"] != source.bytes:
            raise SystemExit(f"stored {summary['bytes_stored']} of {source.bytes} bytes")
        runs["ingest+v"].append({"seconds": got.seconds, "dock_seconds": dock, "cpu": got.cpu,
                                 "peak_rss_mb": got.peak_rss / 1e6})
        shutil.rmtree(home)
        mb = source.bytes / 1e6
        print(f"  {rate} MB/s round {n + 1}: source {mb / runs['source'][-1]['seconds']:.1f} "
              f"MB/s, ingest {source.bytes / got.seconds / 1e6:.1f} MB/s (dock "
              f"{source.bytes / dock / 1e6:.1f}), CPU {got.cpu / got.seconds:.2f} cores",
              flush=True)
    src = statistics.median(r["seconds"] for r in runs["source"])
    ing = statistics.median(r["seconds"] for r in runs["ingest+v"])
    dock = statistics.median(r["dock_seconds"] for r in runs["ingest+v"])
    cpu = statistics.median(r["cpu"] / r["seconds"] for r in runs["ingest+v"])
    return {"throttle_mb_s": rate, "bytes": source.bytes, "runs": runs,
            "source_mb_s": source.bytes / src / 1e6, "ingest_mb_s": source.bytes / ing / 1e6,
            "dock_mb_s": source.bytes / dock / 1e6, "ingest/source": src / ing,
            "dock/source": src / dock, "ingest_cpu_cores": cpu,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs["ingest+v"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="35,200", help="MB/s, comma separated")
    parser.add_argument("--mib", default="256,1024", help="MiB of clips for each rate")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/evidock-bench"))
    parser.add_argument("--out", type=Path, help="the results file (default bench/results/)")
    args = parser.parse_args()
    reason = why_not()
    if reason:
        print(f"usb_bench: not run: {reason}")
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="usb-", dir=args.dir))
    report = []
    try:
        for rate, mib in zip(map(int, args.rates.split(",")), map(int, args.mib.split(",")),
                             strict=True):
            source = Source(work, mib)
            try:
                print(f"{rate} MB/s source, {source.bytes:,} bytes in {len(source.files)} clips")
                report.append(measure(source, rate, args.repeat, work))
            finally:
                source.close()
            r = report[-1]
            print(f"  medians: source {r['source_mb_s']:.1f} MB/s, ingest "
                  f"{r['ingest_mb_s']:.1f} MB/s ({r['ingest/source']:.2f} x), dock "
                  f"{r['dock_mb_s']:.1f} MB/s ({r['dock/source']:.2f} x), "
                  f"CPU {r['ingest_cpu_cores']:.2f} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save("usb", {"rates": report}, args.out)


if __name__ == "__main__":
    main()
