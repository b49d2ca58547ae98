"""Start-up of the CLI: wall time of the whole process, median of --repeat, on a small store.

Commands: `evidock --help`, `evidock status` (a daemon running on the simulated bus),
`evidock log` and `evidock show 1`; beside them, on the same machine and in the same
rounds, what no command can go below: the Python interpreter alone (`python -c pass`) and
importing the catalog's libraries (`import sqlmodel`: SQLAlchemy and pydantic), which
every command that reads the catalog needs. Modules are compiled once first and their
compiled form used, as on a station (pip compiles them when it installs evidock). The
target is 0.3 s.
Usage: python bench/startup_bench.py [--repeat 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import BIN, run_timed, save

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import sqlmodel": [sys.executable, "-c", "import sqlmodel"],
    "evidock --help": [str(BIN / "evidock"), "--help"],
    "evidock status": [str(BIN / "evidock"), "status"],
    "evidock log": [str(BIN / "evidock"), "log"],
    "evidock show 1": [str(BIN / "evidock"), "show", "1"],
}
TARGET_S = 0.3


def small_store(work: Path, env: dict[str, str]) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from devices.media import make_photo
    volume = work / "volume" / "DCIM"
    volume.mkdir(parents=True)
    for n in range(3):
        make_photo(volume / f"DSJ_ZFY0001_100231_20261120_0800{n:02d}.JPG")
    subprocess.run([str(BIN / "evidock"), "ingest", str(work / "volume")], env=env, check=True,
                   capture_output=True)


def measure(repeat: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="evidock-startup-"))
    env = {**os.environ, "EVIDOCK_HOME": str(work / "home"), "EVIDOCK_STATION_ID": "bench",
           "EVIDOCK_AGENCY": "bench", "EVIDOCK_TIMEZONE": "Asia/Shanghai",
           "EVIDOCK_SIMBUS_DIR": str(work / "bus")}
    env.pop("EVIDOCK_CONFIG", None)
    # As on a station, where pip compiled every module when it installed evidock: the
    # compiled modules are written (the first, untimed round) and used.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    daemon = None
    try:
        small_store(work, env)
        daemon = subprocess.Popen([str(BIN / "evidock"), "daemon"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        status = work / "home" / "run" / "status.json"
        deadline = time.monotonic() + 30
        while not status.exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit("the daemon did not start")
            time.sleep(0.1)
        runs: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for cmd in COMMANDS.values():
            run_timed(cmd, env)  # untimed: compiles what was not yet
        for _ in range(repeat):
            for name, cmd in COMMANDS.items():
                runs[name].append(run_timed(cmd, env).seconds)
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(s) for name, s in runs.items()}
    for name, value in medians.items():
        print(f"  {name:16} {value:5.2f} s (median of {repeat}; "
              f"{min(runs[name]):.2f}-{max(runs[name]):.2f})", flush=True)
    return {"repeat": repeat, "target_s": TARGET_S, "seconds": runs, "median_s": medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--out", type=Path, help="the results file (default bench/results/)")
    args = parser.parse_args()
    save("startup", measure(args.repeat), args.out)


if __name__ == "__main__":
    main()
