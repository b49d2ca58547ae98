"""What a recorder file's name promises, and what its first bytes look like (pure).

A name's extension picks a *family*: the ffprobe demuxers allowed to read it
(``-format_whitelist``), the one forced with ``-f`` where the extension names
exactly one strict container, and a test of the first bytes. The byte test never
decides alone that media is good; it tells a damaged file of the right kind
(``media_unreadable``) from a file that is something else (``media_mismatch``)
once the check has failed, and says what the something else looks like.

No family allows a demuxer that opens other files or addresses: not hls, dash,
concat, sdp, rtp/rtsp, image2 (sequences by pattern), imf, tee or any
playlist or manifest demuxer.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass

# Top-level boxes an ISO base media / QuickTime file may start with.
_MOV_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid",
                    b"pdin", b"moof", b"styp", b"sidx", b"meta", b"junk"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START = b"\xff\xd8\xff"


def _u32(head: bytes, at: int) -> int:
    return int.from_bytes(head[at:at + 4], "big")


def _mov(head: bytes) -> bool:
    if len(head) < 8 or head[4:8] not in _MOV_FIRST_BOXES:
        return False
    size = _u32(head, 0)
    return size in (0, 1) or size >= 8


def _riff(form: bytes) -> Callable[[bytes], bool]:
    def test(head: bytes) -> bool:
        return head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == form
    return test


def _mpegts(head: bytes) -> bool:
    for first, step in ((0, 188), (4, 192)):  # plain TS, and M2TS with its 4-byte prefix
        if len(head) > first and head[first] == 0x47 and (
                len(head) <= first + step or head[first + step] == 0x47):
            return True
    return False


def _mpeg_audio_frame(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0


def _mp3(head: bytes) -> bool:
    return head[:3] == b"ID3" or _mpeg_audio_frame(head)


def _aac(head: bytes) -> bool:
    adts = len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0
    return adts or head[:3] == b"ID3" or head[:4] == b"ADIF"


def _prefix(*starts: bytes) -> Callable[[bytes], bool]:
    def test(head: bytes) -> bool:
        return any(head.startswith(s) for s in starts)
    return test


@dataclass(frozen=True)
class Family:
    label: str  # what the name promises, for messages: "MP4/MOV media"
    demuxers: tuple[str, ...]  # ffprobe demuxer names (ffprobe -demuxers)
    force: str | None  # the demuxer to force with -f, where the extension names one strict one
    looks_like: Callable[[bytes], bool]  # whether the first bytes are of this family
    still: str | None = None  # "jpeg" or "png": checked in Python (ingest/stills.py), no ffprobe


MOV = Family("MP4/MOV media", ("mov",), "mov", _mov)
AVI = Family("AVI video", ("avi",), "avi", _riff(b"AVI "))
WAV = Family("WAV audio", ("wav",), "wav", _riff(b"WAVE"))
MATROSKA = Family("Matroska/WebM media", ("matroska",), "matroska", _prefix(b"\x1a\x45\xdf\xa3"))
MPEGTS = Family("an MPEG transport stream", ("mpegts",), None, _mpegts)
MPEGPS = Family("MPEG program stream video", ("mpeg",), None, _prefix(b"\x00\x00\x01\xba"))
MP3 = Family("MP3 audio", ("mp3",), None, _mp3)
AAC = Family("AAC audio", ("aac",), None, _aac)
AMR = Family("AMR audio", ("amr", "amrnb", "amrwb"), None, _prefix(b"#!AMR"))
FLAC = Family("FLAC audio", ("flac",), None, _prefix(b"fLaC", b"ID3"))
OGG = Family("Ogg media", ("ogg",), None, _prefix(b"OggS"))
ASF = Family("ASF/WMV media", ("asf",), "asf",
             _prefix(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c"))
FLV = Family("FLV video", ("flv",), None, _prefix(b"FLV\x01"))
JPEG = Family("a JPEG image", ("jpeg_pipe",), None, _prefix(JPEG_START), still="jpeg")
PNG = Family("a PNG image", ("png_pipe",), None, _prefix(PNG_SIGNATURE), still="png")

BY_EXTENSION: dict[str, Family] = {
    **dict.fromkeys(("mp4", "m4v", "mov", "qt", "3gp", "3g2", "m4a"), MOV),
    "avi": AVI, "wav": WAV,
    **dict.fromkeys(("mkv", "mka", "webm"), MATROSKA),
    **dict.fromkeys(("ts", "mts", "m2ts", "m2t", "trp"), MPEGTS),
    **dict.fromkeys(("mpg", "mpeg", "vob"), MPEGPS),
    "mp3": MP3, "aac": AAC, "amr": AMR, "flac": FLAC,
    **dict.fromkeys(("ogg", "oga", "ogv", "opus"), OGG),
    **dict.fromkeys(("asf", "wmv", "wma"), ASF),
    "flv": FLV,
    **dict.fromkeys(("jpg", "jpeg"), JPEG),
    "png": PNG,
}
FAMILIES: tuple[Family, ...] = tuple(dict.fromkeys(BY_EXTENSION.values()))

# A name that promises nothing (no extension, or one not above) may be any of the
# families' media, and nothing else.
ANY_MEDIA: tuple[str, ...] = tuple(d for f in FAMILIES for d in f.demuxers)


def extension(name: str) -> str:
    """The name's extension in lower case, without the dot ("" if it has none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem and ext.isalnum() else ""


def family_of(name: str) -> Family | None:
    return BY_EXTENSION.get(extension(name))


_VIDEO = frozenset({"mp4", "m4v", "mov", "qt", "3gp", "3g2", "avi", "mkv", "webm", "ts", "mts",
                    "m2ts", "m2t", "trp", "mpg", "mpeg", "vob", "ogv", "asf", "wmv", "flv"})


#: Files a recorder writes beside a recording: position logs, metadata, subtitles.
SIDECARS = frozenset({"gps", "nmea", "gpx", "kml", "json", "xml", "vtt", "srt", "txt", "log",
                      "ini"})


def is_sidecar(name: str) -> bool:
    """Whether the name is a sidecar's: stored and signed as it is, never probed as media."""
    return extension(name) in SIDECARS


def is_clip(name: str) -> bool:
    """Whether the name is a video recording's (gaps between clips are R4's concern)."""
    return extension(name) in _VIDEO


def sniff(head: bytes) -> Family | None:
    """The family whose first bytes ``head`` are, if any."""
    for family in FAMILIES:
        if family.looks_like(head):
            return family
    return None


_TEXT_KINDS = (
    (b"#EXTM3U", "an HLS playlist (#EXTM3U)"),
    (b"ffconcat version", "an ffconcat script"),
    (b"v=0", "an SDP session description"),
    (b"<?xml", "an XML document (a DASH manifest or similar)"),
    (b"<MPD", "a DASH manifest"),
    (b"[playlist]", "a PLS playlist"),
)


def describe(head: bytes) -> str:
    """What the first bytes look like, in a few fixed words (never the file's own text)."""
    family = sniff(head)
    if family is not None:
        return family.label
    body = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for start, label in _TEXT_KINDS:
        if body.startswith(start):
            return label
    if not head:
        return "nothing (no bytes)"
    try:  # an incremental decoder: a character cut by the end of ``head`` is no error
        text = codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        text = ""
    if text and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text):
        if "://" in text or "file:" in text:
            return "text naming files or addresses"
        return "text"
    return "unrecognised data"
