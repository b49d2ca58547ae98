"""Media facts and damage detection, with ffprobe confined to the one file it checks.

A file cut short can still report its full duration from its header, so every
packet is counted (``-count_packets``) and compared with the frame count the
container promises. A file ffprobe cannot open at all is unreadable media.

Recorder files are untrusted: a file named X.MP4 may hold an HLS playlist, an
ffconcat script, an SDP description or a QuickTime reference movie, each of
which would make ffprobe open other files or addresses. So ffprobe is given
the copy as an already-open file and nothing else:

* the copy is opened here (O_RDONLY, O_NOFOLLOW) and handed to ffprobe as its
  standard input; ffprobe reads it as ``file:/proc/self/fd/0``, the file this
  process opened, whatever happens to its name meanwhile. (``pipe:0`` would
  confine as well, but cannot seek: an MP4 whose index (moov) comes last, as
  recorders write them, then loses its packet counts and truncation could no
  longer be seen.)
* ``-protocol_whitelist file``: no http, tcp, udp, rtp, concat, subfile,
  crypto or data URL can be opened by any demuxer;
* ``-format_whitelist`` names only the demuxers the file's extension allows,
  and ``-f`` forces the one strict container an extension names (mov, avi,
  wav, matroska, asf): no playlist, manifest, concat, sdp or image-sequence
  demuxer ever runs, and those are the demuxers that open other files;
* ``-enable_drefs 0 -use_absolute_path 0``: the mov demuxer never follows a
  reference movie's data references (the default, stated so it stays so).

Content that is not what its extension names is ``media_mismatch`` (see
ingest/mediatypes.py). JPEG and PNG photos are checked in Python
(ingest/stills.py), without ffprobe. Messages name the recorder's file, never
the vault's temporary path.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.mediatypes import ANY_MEDIA, Family, describe, family_of, sniff
from ingest.stills import BadImage, Data, Still, check_jpeg, check_png

# ffprobe is stopped after a base time plus time for the bytes at a slow disk's
# rate: a 4 GiB clip gets about 9 minutes, a photo half a minute.
PROBE_BASE_S = 30.0
PROBE_MIN_RATE = 8 << 20  # bytes per second
_URL = "file:/proc/self/fd/0"  # the file handed over as standard input
_HEAD = 4096
_READ_WHOLE = 64 << 20  # stills up to this size are read into memory, larger ones mapped


@dataclass(frozen=True)
class StreamInfo:
    kind: str  # video, audio, subtitle, data
    codec: str | None
    frames_declared: int | None
    packets_read: int | None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class MediaInfo:
    format_name: str | None
    duration_s: float | None
    creation_time: datetime | None
    streams: tuple[StreamInfo, ...] = field(default_factory=tuple)

    @property
    def damage(self) -> str | None:
        """What is wrong with readable media, or None."""
        cut = self.truncated_streams
        if not cut:
            return None
        return "only " + ", ".join(f"{s.kind} {s.packets_read} of {s.frames_declared} packets"
                                   for s in cut) + " could be read"

    @property
    def truncated_streams(self) -> list[StreamInfo]:
        return [s for s in self.streams
                if s.frames_declared and s.packets_read is not None
                and s.packets_read < s.frames_declared]

    def to_json(self) -> str:
        return json.dumps({
            "format": self.format_name, "duration_s": self.duration_s,
            "creation_time": self.creation_time.isoformat() if self.creation_time else None,
            "streams": [s.__dict__ for s in self.streams],
        }, ensure_ascii=False, sort_keys=True)


class ProbeFailed(Exception):
    """The file is not readable media of the kind its name says; the message says why."""

    def __init__(self, message: str, kind: str = "media_unreadable"):
        super().__init__(message)
        # media_unreadable, media_truncated (a photo cut short), or media_mismatch
        # (not the media its name says)
        self.kind = kind


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_probe(data: dict[str, Any]) -> MediaInfo:
    """Turn ffprobe's JSON into MediaInfo (pure)."""
    fmt = data.get("format", {})
    tags = fmt.get("tags", {})
    streams = tuple(
        StreamInfo(
            kind=str(s.get("codec_type", "unknown")),
            codec=s.get("codec_name"),
            frames_declared=_int(s.get("nb_frames")),
            packets_read=_int(s.get("nb_read_packets")),
            width=_int(s.get("width")),
            height=_int(s.get("height")),
        )
        for s in data.get("streams", [])
    )
    return MediaInfo(
        format_name=fmt.get("format_name"),
        duration_s=_float(fmt.get("duration")),
        creation_time=_time(tags.get("creation_time") if isinstance(tags, dict) else None),
        streams=streams,
    )


def still_info(still: Still) -> MediaInfo:
    """The facts ffprobe gave for a photo opened by its name, so rows stay as they were:
    a JPEG is one frame of ffprobe's image2 demuxer (0.04 s at its 25 frames a second),
    a PNG one frame of png_pipe (no duration)."""
    jpeg = still.codec == "mjpeg"
    return MediaInfo(format_name="image2" if jpeg else "png_pipe",
                     duration_s=0.04 if jpeg else None, creation_time=None,
                     streams=(StreamInfo("video", still.codec, None, 1,
                                         still.width, still.height),))


def probe_timeout(size: int) -> float:
    return PROBE_BASE_S + size / PROBE_MIN_RATE


def ffprobe_command(family: Family | None, exe: str = "ffprobe") -> list[str]:
    """The confined ffprobe run for a file of ``family`` (None: a name that promises
    nothing), reading its standard input (pure)."""
    demuxers = family.demuxers if family is not None else ANY_MEDIA
    forced = ["-f", family.force] if family is not None and family.force else []
    return [exe, "-hide_banner", "-v", "error",
            "-protocol_whitelist", "file", "-format_whitelist", ",".join(demuxers), *forced,
            "-enable_drefs", "0", "-use_absolute_path", "0",
            "-count_packets", "-show_format", "-show_streams", "-of", "json", "-i", _URL]


def probe(path: Path, *, name: str | None = None) -> MediaInfo:
    """Check the file at ``path`` as the media its recorder name ``name`` says (else
    ``path``'s name); raise ProbeFailed if it is not whole, readable media of that kind."""
    name = name if name is not None else path.name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ProbeFailed(f"{name} could not be opened for the media check: "
                          f"{exc.strerror or exc}") from exc
    try:
        facts = os.fstat(fd)
        if not stat.S_ISREG(facts.st_mode):
            raise ProbeFailed(f"{name} is not a regular file")
        size = facts.st_size
        head = os.pread(fd, _HEAD, 0)
        family = family_of(name)
        kind = family if family is not None else sniff(head)
        if kind is not None and kind.still is not None:
            return _check_still(fd, size, kind.still, family, head, name)
        return _ffprobe(fd, size, family, head, name)
    finally:
        os.close(fd)


def _mismatch(name: str, family: Family, head: bytes, detail: str = "") -> ProbeFailed:
    ext = name.rpartition(".")[2]
    return ProbeFailed(f"{name} is named .{ext} but is not {family.label}: it looks like "
                       f"{describe(head)}" + (f" (ffprobe: {detail})" if detail else ""),
                       kind="media_mismatch")


def _check_still(fd: int, size: int, still: str, family: Family | None, head: bytes,
                 name: str) -> MediaInfo:
    if size == 0:
        raise ProbeFailed(f"{name} has no bytes")
    check = check_jpeg if still == "jpeg" else check_png
    data: Data = _read_all(fd, size) if size <= _READ_WHOLE else mmap.mmap(
        fd, 0, prot=mmap.PROT_READ)
    try:
        return still_info(check(data))
    except BadImage as exc:
        if exc.kind == "mismatch" and family is not None:
            raise _mismatch(name, family, head) from exc
        kind = "media_truncated" if exc.kind == "truncated" else "media_unreadable"
        raise ProbeFailed(f"{name}: {exc}", kind=kind) from exc
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _read_all(fd: int, size: int) -> bytes:
    parts: list[bytes] = []
    done = 0
    while done < size:
        part = os.pread(fd, size - done, done)
        if not part:
            break
        parts.append(part)
        done += len(part)
    return b"".join(parts)


def _ffprobe(fd: int, size: int, family: Family | None, head: bytes, name: str) -> MediaInfo:
    timeout = probe_timeout(size)
    try:
        done = subprocess.run(ffprobe_command(family), stdin=fd, capture_output=True,
                              timeout=timeout, check=False, cwd="/")
    except subprocess.TimeoutExpired as exc:
        raise ProbeFailed(f"ffprobe did not finish reading {name} ({size} bytes) within "
                          f"{timeout:.0f} s and was stopped") from exc
    # the family the name promised, when the first bytes are not of it
    wrong = family if family is not None and not family.looks_like(head) else None
    if done.returncode != 0:
        said = ffprobe_said(done.stderr, name) or f"ffprobe failed (exit {done.returncode})"
        if wrong is not None:
            raise _mismatch(name, wrong, head, said)
        if family is None:
            raise ProbeFailed(f"{name} is not media evidock can read: it looks like "
                              f"{describe(head)} (ffprobe: {said})")
        raise ProbeFailed(said)
    try:
        info = parse_probe(json.loads(done.stdout))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ProbeFailed(f"ffprobe gave no readable account of {name}") from exc
    if not info.streams:
        if wrong is not None:
            raise _mismatch(name, wrong, head, "no stream found")
        raise ProbeFailed(f"no audio, video or image stream found in {name}")
    unread = [s.kind for s in info.streams if s.packets_read is None]
    if unread:  # counted, yet no count: not one packet could be read (data kept elsewhere?)
        raise ProbeFailed(f"no packet of the {', '.join(unread)} stream(s) of {name} could be "
                          "read: the data is damaged or not in the file (a reference to "
                          "other files is not followed)")
    return info


_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*")


def ffprobe_said(stderr: bytes, name: str, lines: int = 2) -> str:
    """ffprobe's last distinct error lines, naming ``name`` instead of the URL it read."""
    said: list[str] = []
    for raw in stderr.decode("utf-8", "replace").splitlines():
        line = _LOG_PREFIX.sub("", raw.strip()).replace(_URL, name).replace(
            _URL.removeprefix("file:"), name).strip()
        if line and line not in said:
            said.append(line[:300])
    return "; ".join(said[-lines:])
