"""What the benchmarks share: timing a process, dropping files from the page cache, where
results go, and the facts of the machine they ran on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).with_name("results")


@dataclass(frozen=True)
class Run:
    seconds: float  # wall time of the process
    peak_rss: int  # bytes
    cpu: float  # user + system seconds
    code: int
    out: bytes


def run_timed(cmd: list[str], env: dict[str, str] | None = None, *, ok: Iterable[int] = (0,),
              before: Callable[[], None] | None = None) -> Run:
    """Run ``cmd`` to its end; its wall time, peak RSS and CPU time. ``before`` runs in the
    child before it executes ``cmd`` (e.g. to join a cgroup)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err,
                                preexec_fn=before)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code not in tuple(ok):
            raise SystemExit(f"{' '.join(cmd[:2])} failed ({code}): "
                             f"{err.read().decode(errors='replace')[-2000:]}")
        return Run(seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, code,
                   out.read())


def drop_cache(*paths: Path) -> None:
    """Make the next read of each file come from the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def save(kind: str, data: dict[str, Any], out: Path | None = None) -> Path:
    """Write a benchmark's results: to ``out``, or bench/results/<kind>-<time>.json."""
    if out is None:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out


def machine(disk_of: Path) -> dict[str, Any]:
    """The facts that make figures comparable: CPU, cores, memory, disk, kernel, Python."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    flags = Path("/proc/cpuinfo").read_text()
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    disk = subprocess.run(["df", "--output=source,fstype", str(disk_of)], capture_output=True,
                          text=True, check=False).stdout.splitlines()[-1].split()
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
            "cpu": cpu, "cores": os.cpu_count(), "sha_ni": " sha_ni" in flags,
            "memory_gib": round(mem / (1 << 20), 1), "disk": {"device": disk[0],
            "filesystem": disk[1], "path": str(disk_of)}, "kernel": platform.release(),
            "os": _os_name(), "python": platform.python_version()}


def _os_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "unknown"
