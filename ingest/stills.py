"""Still images checked in Python: a JPEG or PNG proved whole without running ffprobe.

A photo is small and there are many: starting ffprobe for each costs more than
copying it. The checks below read the structure of the file itself and fail on
anything a recorder losing power or a damaged card leaves behind:

JPEG  start-of-image; every marker segment with a length that stays inside the
      file; one frame header (SOF) giving width and height; at least one scan
      (SOS) with entropy-coded data after it; an end-of-image marker (EOI).
      Bytes after EOI are not judged (cameras append vendor trailers there),
      except that a second image (MPF) that starts right there must be whole
      too.
PNG   the signature; every chunk inside the file with a correct CRC-32; IHDR
      first and valid; IDAT chunks, consecutive; IEND last and empty (bytes
      after it are not judged).

Every failure is a BadImage saying what was found; nothing else is raised, and
every loop moves forward through the bytes, so hostile input cannot hang it.
"""

from __future__ import annotations

import mmap
import re
import zlib
from dataclasses import dataclass

from ingest.mediatypes import JPEG_START, PNG_SIGNATURE

Data = bytes | mmap.mmap

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_SOS, _EOI, _SOI = 0xDA, 0xD9, 0xD8
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: markers without a length
_MAX_IMAGES = 16  # a primary image and the second images (MPF) after it
_CRC_BLOCK = 1 << 20


class BadImage(Exception):
    """The bytes are not a whole image of the kind checked.

    ``kind`` is "mismatch" (not this format at all), "truncated" (it ends too
    soon) or "damaged" (its structure is broken)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Still:
    codec: str  # as ffprobe names it: mjpeg, png
    width: int
    height: int


def _u16(data: Data, at: int) -> int:
    return (data[at] << 8) | data[at + 1]


def _u32(data: Data, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "big")


def check_jpeg(data: Data) -> Still:
    """Prove ``data`` is a whole JPEG (with any second images after it); its size."""
    if data[:3] != JPEG_START:
        raise BadImage("mismatch", "no JPEG start-of-image marker")
    still, end = _jpeg_image(data, 0)
    for _ in range(_MAX_IMAGES - 1):
        if data[end:end + 3] != JPEG_START:
            return still  # trailing bytes that are not an image are not judged
        try:
            _, end = _jpeg_image(data, end)
        except BadImage as exc:
            raise BadImage(exc.kind, f"the image after byte {end}: {exc}") from exc
    return still


def _jpeg_image(data: Data, start: int) -> tuple[Still, int]:
    """Check the image whose SOI is at ``start``; its size and the offset after its EOI."""
    n = len(data)
    pos = start + 2
    frame: Still | None = None
    scans = 0
    while True:
        if pos >= n:
            raise BadImage("truncated", "the file ends before the image's end-of-image marker")
        if data[pos] != 0xFF:
            raise BadImage("damaged", f"no marker where one is due (byte {pos})")
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            raise BadImage("truncated", "the file ends before the image's end-of-image marker")
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            if frame is None or scans == 0:
                raise BadImage("damaged", "the image ends before any image data")
            return frame, pos
        if marker in _STANDALONE:
            continue
        if marker in (0x00, _SOI):
            raise BadImage("damaged", f"a misplaced marker 0xFF{marker:02X} (byte {pos - 2})")
        if pos + 2 > n:
            raise BadImage("truncated", "the file ends inside a segment header")
        length = _u16(data, pos)
        if length < 2:
            raise BadImage("damaged", f"a segment 0xFF{marker:02X} of impossible length {length}")
        end = pos + length
        if end > n:
            raise BadImage("truncated", f"segment 0xFF{marker:02X} runs past the end of the file")
        if marker in _SOF:
            frame = _frame(data, pos, length, frame)
        elif marker == _SOS:
            if frame is None:
                raise BadImage("damaged", "a scan comes before the frame header")
            components = data[pos + 2] if length >= 3 else 0
            if components < 1 or length != 6 + 2 * components:
                raise BadImage("damaged", "a scan header of the wrong length")
            pos = _entropy_data(data, end)
            scans += 1
            continue
        pos = end


def _frame(data: Data, pos: int, length: int, before: Still | None) -> Still:
    if before is not None:
        raise BadImage("damaged", "a second frame header")
    if length < 8:
        raise BadImage("damaged", "a frame header too short to hold the image size")
    height, width, components = _u16(data, pos + 3), _u16(data, pos + 5), data[pos + 7]
    if components < 1 or length != 8 + 3 * components:
        raise BadImage("damaged", "a frame header of the wrong length")
    if width == 0 or height == 0:
        raise BadImage("damaged", f"a frame of {width}x{height} pixels")
    return Still("mjpeg", width, height)


# 0xFF followed by anything but a stuffed zero, a restart marker or another fill byte
_MARKER_AFTER_DATA = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


def _entropy_data(data: Data, start: int) -> int:
    """The offset of the marker ending the entropy-coded data that begins at ``start``."""
    found = _MARKER_AFTER_DATA.search(data, start)
    if found is None:
        raise BadImage("truncated", "the image data ends without an end-of-image marker")
    if found.start() == start:
        raise BadImage("damaged", "a scan holds no image data")
    return found.start()


_COLOUR_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}


def check_png(data: Data) -> Still:
    """Prove ``data`` is a whole PNG; its size."""
    if data[:8] != PNG_SIGNATURE:
        raise BadImage("mismatch", "no PNG signature")
    n = len(data)
    pos = 8
    still: Still | None = None
    idat = "none"  # none, in (the IDAT run), after
    while True:
        if pos + 12 > n:
            raise BadImage("truncated", "the file ends before the IEND chunk")
        length = _u32(data, pos)
        kind = data[pos + 4:pos + 8]
        if length > 0x7FFFFFFF:
            raise BadImage("damaged", f"a chunk of impossible length at byte {pos}")
        if not kind.isalpha() or not kind.isascii():
            raise BadImage("damaged", f"no chunk type where one is due (byte {pos})")
        name = kind.decode("ascii")
        end = pos + 12 + length
        if end > n:
            raise BadImage("truncated", f"chunk {name} runs past the end of the file")
        if _crc32(data, pos + 4, end - 4) != _u32(data, end - 4):
            raise BadImage("damaged", f"chunk {name} at byte {pos} fails its CRC-32 check")
        if still is None:
            if kind != b"IHDR":
                raise BadImage("damaged", f"the first chunk is {name}, not IHDR")
            still = _ihdr(data, pos + 8, length)
        elif kind == b"IHDR":
            raise BadImage("damaged", "a second IHDR chunk")
        if kind == b"IDAT":
            if idat == "after":
                raise BadImage("damaged", "IDAT chunks that are not consecutive")
            idat = "in"
        elif idat == "in":
            idat = "after"
        if kind == b"IEND":
            if length != 0:
                raise BadImage("damaged", "an IEND chunk that is not empty")
            if idat == "none":
                raise BadImage("damaged", "no IDAT chunk: the file holds no image data")
            return still
        pos = end


def _crc32(data: Data, start: int, end: int) -> int:
    crc = 0
    for at in range(start, end, _CRC_BLOCK):  # in blocks: a chunk may be huge
        crc = zlib.crc32(data[at:min(at + _CRC_BLOCK, end)], crc)
    return crc


def _ihdr(data: Data, pos: int, length: int) -> Still:
    if length != 13:
        raise BadImage("damaged", f"an IHDR chunk of {length} bytes, not 13")
    width, height = _u32(data, pos), _u32(data, pos + 4)
    depth, colour = data[pos + 8], data[pos + 9]
    compression, filtering, interlace = data[pos + 10], data[pos + 11], data[pos + 12]
    if not (0 < width <= 0x7FFFFFFF and 0 < height <= 0x7FFFFFFF):
        raise BadImage("damaged", f"an image of {width}x{height} pixels")
    if depth not in _COLOUR_DEPTHS.get(colour, set()):
        raise BadImage("damaged", f"colour type {colour} with bit depth {depth}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise BadImage("damaged", "an unknown compression, filter or interlace method")
    return Still("png", width, height)
