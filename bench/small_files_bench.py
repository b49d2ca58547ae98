"""Per-file cost: many small photos through `evidock ingest`, against a plain copy.

A folder volume holds --files real JPEGs of about 200 KB, named the way recorders
name them (``DSJ_<device>_<officer>_<YYYYMMDD>_<HHMMSS>.JPG``). ffmpeg makes a few
noisy test pictures; each file is one of them with a JPEG comment segment of its
own, so every file is a real JPEG with distinct bytes (no file is set aside as a
duplicate of another).

Each round measures, each in its own process, with a fresh data folder:

  baseline  per file: open, read, SHA-256, write a temporary file, fsync it,
            rename it, fsync the folder (the floor of any durable copy)
  ingest    `evidock ingest` of the folder (read-back, check, sign, catalog)
  site      with --site: the same with the catalog on PostgreSQL, a server this
            benchmark starts (tests/pgserver.py) reached over TCP on this machine,
            password from a file, the vault shared (a site station's settings)

Each ingest runs on a store made just before it (not timed: the ingest of an empty
folder creates the key and the catalog's schema), as a docking station has one.
It prints files/s, ingest against the baseline and the site against the station,
median of --repeat rounds run side by side; results go to bench/results/.
Usage: python bench/small_files_bench.py [--files 500] [--repeat 3] [--dir DIR] [--site]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from benchlib import BIN, run_timed, save
from ingest_bench import prepare

PICTURES = 25
ZONE = ZoneInfo("Asia/Shanghai")

BASELINE = """
import hashlib, os, sys
src, dst = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    sha = hashlib.sha256()
    fd = os.open(os.path.join(src, name), os.O_RDONLY)
    tmp = os.path.join(dst, ".tmp-" + name)
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    while data := os.read(fd, 1 << 20):
        sha.update(data)
        os.write(out, data)
    os.fsync(out)
    os.close(out)
    os.close(fd)
    os.rename(tmp, os.path.join(dst, name))
    folder = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(folder)
    os.close(folder)
"""


def make_photos(volume: Path, count: int) -> int:
    """``count`` distinct real JPEGs of about 200 KB; returns their total size."""
    work = Path(tempfile.mkdtemp(prefix="pictures-", dir=volume.parent))
    try:
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
                        "-i", "testsrc2=size=960x720:rate=25", "-vf", "noise=alls=25:allf=t+u",
                        "-frames:v", str(PICTURES), "-q:v", "3", str(work / "p%03d.jpg")],
                       check=True)
        pictures = [p.read_bytes() for p in sorted(work.iterdir())]
    finally:
        shutil.rmtree(work)
    folder = volume / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True)
    # recorder time (EVIDOCK_TIMEZONE), ending ten minutes ago: none is late or implausible
    start = datetime.now(ZONE).replace(microsecond=0) - timedelta(seconds=7 * count + 600)
    total = 0
    for n in range(count):
        picture = pictures[n % len(pictures)]
        comment = f"bench photo {n}".encode()
        com = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        at = start + timedelta(seconds=7 * n)
        name = f"DSJ_BENCH01_000001_{at:%Y%m%d_%H%M%S}.JPG"
        data = picture[:2] + com + picture[2:]  # right after SOI
        (folder / name).write_bytes(data)
        total += len(data)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="rounds, side by side")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--site", action="store_true",
                        help="also with the catalog on PostgreSQL (a site station)")
    parser.add_argument("--out", type=Path, help="the results file (default bench/results/)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="evidock-small-", dir=args.dir))
    server = None
    if args.site:
        sys.path.insert(0, str(Path(__file__).parents[1]))
        from tests.pgserver import PASSWORD, PgServer
        server = PgServer().start()
        (work / "db-password").write_text(PASSWORD + "\n")
    try:
        volume = work / "volume"
        total = make_photos(volume, args.files)
        print(f"{args.files} JPEGs, {total / args.files / 1e3:.0f} KB each on average, in {work}")
        runs: dict[str, list[float]] = {"baseline": [], "ingest": []}
        if server is not None:
            runs["site"] = []
        for n in range(args.repeat):
            copies = work / f"copies-{n}"
            copies.mkdir()
            runs["baseline"].append(run_timed([sys.executable, "-c", BASELINE, str(
                volume / "DCIM" / "100MEDIA"), str(copies)]).seconds)
            shutil.rmtree(copies)
            home = work / f"home-{n}"
            env = {**os.environ, "EVIDOCK_HOME": str(home), "EVIDOCK_STATION_ID": "bench",
                   "EVIDOCK_AGENCY": "bench", "EVIDOCK_TIMEZONE": "Asia/Shanghai"}
            env.pop("EVIDOCK_CONFIG", None)
            prepare(env)
            runs["ingest"].append(run_timed([str(BIN / "evidock"), "ingest", str(volume)],
                                            env).seconds)
            shutil.rmtree(home)
            line = "  round {}: baseline {:6.1f} files/s, ingest {:6.1f} files/s".format(
                n + 1, args.files / runs["baseline"][-1], args.files / runs["ingest"][-1])
            if server is not None:
                site = {**env, "EVIDOCK_DATABASE_URL": server.database(),
                        "EVIDOCK_DATABASE_PASSWORD_FILE": str(work / "db-password"),
                        "EVIDOCK_SHARED_VAULT": "true"}
                prepare(site)
                runs["site"].append(run_timed([str(BIN / "evidock"), "ingest", str(volume)],
                                              site).seconds)
                shutil.rmtree(home)
                line += f", site {args.files / runs['site'][-1]:6.1f} files/s"
            print(line, flush=True)
        rates = {name: args.files / statistics.median(s) for name, s in runs.items()}
        ratio = rates["ingest"] / rates["baseline"]
        print(f"  medians: baseline {rates['baseline']:.1f} files/s, "
              f"ingest {rates['ingest']:.1f} files/s, ingest/baseline {ratio:.2f} x")
        if server is not None:
            print(f"  site (PostgreSQL catalog) {rates['site']:.1f} files/s, "
                  f"site/station {rates['site'] / rates['ingest']:.2f} x")
        save("small-files", {
            "files": args.files, "bytes": total, "seconds": runs,
            "files_per_s": rates, "ingest/baseline": ratio,
            **({"site/station": rates["site"] / rates["ingest"]} if server else {})}, args.out)
    finally:
        if server is not None:
            server.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
