"""Media facts from ffprobe (through ffmpeg-python), and damage detection.

A file cut short can still report its full duration from its header, so every
packet is counted (``-count_packets``) and compared with the frame count the
container promises. A file ffprobe cannot open at all is unreadable media.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ffmpeg

PROBE_TIMEOUT_S = 600


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
    """ffprobe could not read the file as media; the message is ffprobe's own."""

    def __init__(self, message: str, kind: str = "media_unreadable"):
        super().__init__(message)
        self.kind = kind  # media_unreadable, or media_mismatch (not the media its name says)


def _int(value: Any) -> int | None:
    try:
        return int(value)
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
    duration = fmt.get("duration")
    return MediaInfo(
        format_name=fmt.get("format_name"),
        duration_s=float(duration) if duration not in (None, "N/A") else None,
        creation_time=_time(fmt.get("tags", {}).get("creation_time")),
        streams=streams,
    )


def probe(path: Path, *, name: str | None = None) -> MediaInfo:
    """Probe ``path``; raise ProbeFailed with ffprobe's message if it is not readable media."""
    try:
        data = ffmpeg.probe(str(path), v="error", count_packets=None, timeout=PROBE_TIMEOUT_S)
    except ffmpeg.Error as exc:
        message = exc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ProbeFailed(message[-1] if message else "ffprobe failed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProbeFailed(f"ffprobe took longer than {PROBE_TIMEOUT_S} s") from exc
    info = parse_probe(data)
    if not info.streams:
        raise ProbeFailed("no audio, video or image stream found")
    return info
