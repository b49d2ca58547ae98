"""Real recordings made with ffmpeg, named the way recorders name them.

Used by the simulated recorder, `evidock demo`, the tests and the benchmarks.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from storage.errors import EvidockError

PREFIX = "DSJ"


class MediaToolMissing(EvidockError):
    pass


def _ffmpeg(*args: str) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaToolMissing("ffmpeg is not installed; run `make demo` or apt-get install ffmpeg")
    done = subprocess.run([exe, "-nostdin", "-v", "error", "-y", *args],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EvidockError(f"ffmpeg failed: {done.stderr.strip()}")


def recorder_name(device: str, officer: str, start: datetime, ext: str,
                  important: bool = False) -> str:
    """``DSJ_<device>_<officer>_<YYYYMMDD>_<HHMMSS>[_IMP].<ext>`` (start in recorder time)."""
    flag = "_IMP" if important else ""
    return f"{PREFIX}_{device}_{officer}_{start:%Y%m%d_%H%M%S}{flag}.{ext}"


def make_clip(path: Path, seconds: float, created: datetime, *, size: str = "320x240",
              faststart: bool = True, extra: list[str] | None = None) -> Path:
    """An H.264/AAC MP4 with a test picture and a tone, tagged with its creation time."""
    flags = (["-movflags", "+faststart"] if faststart else []) + (extra or [])
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", f"{seconds}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac",
            "-metadata", f"creation_time={created.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
            *flags, str(path))
    return path


def make_photo(path: Path) -> Path:
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x480", "-frames:v", "1", str(path))
    return path


def make_audio(path: Path, seconds: float) -> Path:
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=660:sample_rate=16000", "-t", f"{seconds}",
            str(path))
    return path


def truncate_half(path: Path) -> Path:
    """Cut a file to half its length, as a recorder losing power mid-write would."""
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    return path


@dataclass(frozen=True)
class ShiftPlan:
    """What a simulated shift leaves on a recorder."""

    device: str = "ZFY0001"
    officer: str = "100231"
    clips: int = 3
    clip_seconds: float = 4.0
    truncated: bool = True
    photo: bool = True
    audio: bool = True


def record_shift(folder: Path, shift: ShiftPlan, end: datetime, zone: tzinfo) -> list[Path]:
    """Fill ``folder`` (a recorder's DCIM tree) with a shift's recordings ending near ``end``."""
    video = folder / "DCIM" / "100MEDIA"
    video.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    start = (end - timedelta(hours=2)).astimezone(zone).replace(microsecond=0)
    for n in range(shift.clips):
        at = start + timedelta(minutes=10 * n)
        name = recorder_name(shift.device, shift.officer, at, "MP4", important=n == 1)
        made.append(make_clip(video / name, shift.clip_seconds, at))
    at = start + timedelta(minutes=10 * shift.clips)
    if shift.truncated:
        name = recorder_name(shift.device, shift.officer, at, "MP4")
        made.append(truncate_half(make_clip(video / name, shift.clip_seconds, at)))
    if shift.photo:
        name = recorder_name(shift.device, shift.officer, at + timedelta(minutes=1), "JPG")
        made.append(make_photo(video / name))
    if shift.audio:
        audio = folder / "RECORD"
        audio.mkdir(exist_ok=True)
        name = recorder_name(shift.device, shift.officer, at + timedelta(minutes=2), "WAV")
        made.append(make_audio(audio / name, 3.0))
    return made
