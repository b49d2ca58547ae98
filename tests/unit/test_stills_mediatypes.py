"""The photo checks and the name-to-media rules, on bytes made here (pure, fast)."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.mediatypes import ANY_MEDIA, MOV, PNG, describe, extension, family_of, sniff
from ingest.probe import ffprobe_command, probe_timeout, still_info
from ingest.stills import BadImage, Still, check_jpeg, check_png


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg(width: int = 16, height: int = 8, scans: int = 1, data: bytes = b"\x12\xff\x00\x34",
         tail: bytes = b"") -> bytes:
    """A structurally whole JPEG: SOI, APP0, DQT, SOF0, DHT, one or more scans, EOI."""
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\x01\x01\x00" + b"\x00\x3f\x00"
    out = (b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
           + segment(0xDB, b"\x00" + bytes(range(64))) + segment(0xC0, sof)
           + segment(0xC4, b"\x00" + bytes(16) + b""))
    for n in range(scans):
        out += segment(0xDA, sos) + data + (b"\xff\xd0" + data if n else b"")
    return out + b"\xff\xd9" + tail


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body))


def png(width: int = 3, height: int = 2, idat: int = 1) -> bytes:
    raw = b"".join(b"\x00" + bytes(3 * width) for _ in range(height))
    packed = zlib.compress(raw)
    parts = [packed[i::idat] for i in range(idat)] if idat > 1 else [packed]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + b"".join(chunk(b"IDAT", p) for p in parts) + chunk(b"IEND", b""))


# JPEG ----------------------------------------------------------------------------


def test_a_whole_jpeg_gives_its_size() -> None:
    assert check_jpeg(jpeg(640, 480)) == Still("mjpeg", 640, 480)
    assert check_jpeg(jpeg(scans=3)) == Still("mjpeg", 16, 8)  # progressive: several scans
    assert check_jpeg(jpeg(tail=b"vendor trailer")).width == 16  # after EOI: not judged
    assert check_jpeg(jpeg(tail=jpeg(4, 4))).width == 16  # a second image (MPF), whole


@pytest.mark.parametrize(("data", "kind"), [
    (b"", "mismatch"),
    (b"\x89PNG\r\n\x1a\n", "mismatch"),
    (jpeg()[:-2], "truncated"),  # no EOI
    (jpeg()[:-3], "truncated"),
    (jpeg()[:30], "truncated"),  # inside a segment
    (jpeg().replace(b"\xff\xda", b"\xff\xfe"), "damaged"),  # no scan at all
    (jpeg().replace(b"\xff\xc0", b"\xff\xe1"), "damaged"),  # a scan without a frame
    (jpeg(width=0), "damaged"),
    (jpeg(data=b""), "damaged"),  # a scan with no data
    (jpeg(tail=jpeg()[:-2]), "truncated"),  # the second image is cut
    (jpeg()[:20] + b"\x00" + jpeg()[20:], "damaged"),  # no marker where one is due
])
def test_a_broken_jpeg_is_refused(data: bytes, kind: str) -> None:
    with pytest.raises(BadImage) as bad:
        check_jpeg(data)
    assert bad.value.kind == kind


# PNG -----------------------------------------------------------------------------


def test_a_whole_png_gives_its_size() -> None:
    assert check_png(png(7, 5)) == Still("png", 7, 5)
    assert check_png(png(idat=3)).height == 2


def test_broken_pngs_are_refused() -> None:
    good = png()
    cases = {
        "mismatch": [b"", b"\xff\xd8\xff\xe0", good[1:]],
        "truncated": [good[:-12], good[:-1], good[:20], good[:8]],
        "damaged": [
            good[:30] + bytes([good[30] ^ 1]) + good[31:],  # a bit flipped: CRC fails
            good[:8] + chunk(b"tEXt", b"a\x00b") + good[8:],  # IHDR not first
            good[:33] + chunk(b"IEND", b""),  # no IDAT
            good[:-12] + chunk(b"IEND", b"x"),  # IEND not empty
            good[:33] + chunk(b"IDAT", b"x") + chunk(b"tEXt", b"a\x00b")
            + chunk(b"IDAT", b"y") + chunk(b"IEND", b""),  # IDATs apart
            good[:8] + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 2, 8, 2, 0, 0, 0))
            + good[33:],  # no width
            good[:8] + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 7, 2, 0, 0, 0))
            + good[33:],  # a bit depth colour type 2 cannot have
        ],
    }
    for kind, samples in cases.items():
        for data in samples:
            with pytest.raises(BadImage) as bad:
                check_png(data)
            assert bad.value.kind == kind, data


# Fuzzing: only BadImage or a size, never anything else, never slow -----------------

fuzz = settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


def _only_bad_image(check: object, data: bytes) -> None:
    assert callable(check)
    try:
        result = check(data)
    except BadImage as exc:
        assert exc.kind in {"mismatch", "truncated", "damaged"} and str(exc)
    else:
        assert isinstance(result, Still) and result.width > 0 and result.height > 0


@fuzz
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _only_bad_image(check_jpeg, data)
    _only_bad_image(check_png, data)
    _only_bad_image(check_jpeg, b"\xff\xd8\xff" + data)
    _only_bad_image(check_png, b"\x89PNG\r\n\x1a\n" + data)


@fuzz
@given(st.sampled_from([jpeg(), jpeg(scans=2)]), st.data())
def test_a_jpeg_cut_anywhere_is_refused(good: bytes, data: st.DataObject) -> None:
    with pytest.raises(BadImage):
        check_jpeg(good[:data.draw(st.integers(0, len(good) - 1))])


@fuzz
@given(st.sampled_from([jpeg(), jpeg(scans=2), jpeg(tail=jpeg(4, 4))]), st.data())
def test_mutated_jpegs(good: bytes, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)),
                               min_size=1, max_size=6))
    mutated = bytearray(good)
    for at, xor in flips:
        mutated[at] ^= xor
    _only_bad_image(check_jpeg, bytes(mutated))


@fuzz
@given(st.sampled_from([png(), png(5, 4, idat=3)]), st.data())
def test_cut_and_mutated_pngs(good: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(BadImage):
        check_png(good[:cut])
    flips = data.draw(st.lists(st.tuples(st.integers(8, len(good) - 1), st.integers(1, 255)),
                               min_size=1, max_size=6, unique_by=lambda flip: flip[0]))
    mutated = bytearray(good)
    for at, xor in flips:
        mutated[at] ^= xor
    with pytest.raises(BadImage):  # any change inside a chunk breaks a length, type or CRC
        check_png(bytes(mutated))


def test_a_huge_run_of_scan_data_is_checked_quickly() -> None:
    big = jpeg(data=b"\x55" * (8 << 20))
    assert check_jpeg(big).width == 16
    with pytest.raises(BadImage):
        check_jpeg(big[:-2])


def test_photo_facts_match_what_ffprobe_gave_by_name() -> None:
    assert still_info(Still("mjpeg", 640, 480)).to_json() == (
        '{"creation_time": null, "duration_s": 0.04, "format": "image2", "streams": '
        '[{"codec": "mjpeg", "frames_declared": null, "height": 480, "kind": "video", '
        '"packets_read": 1, "width": 640}]}')
    assert still_info(Still("png", 1, 2)).format_name == "png_pipe"


# Names, families and the ffprobe command -----------------------------------------


@pytest.mark.parametrize(("name", "ext"), [
    ("DSJ_1_2_20261120_093000.MP4", "mp4"), ("a.b.Jpeg", "jpeg"), ("noext", ""),
    (".MP4", ""), ("x.", ""), ("..\\..\\etc\\passwd", ""), ("x.m3u8", "m3u8"),
])
def test_extension(name: str, ext: str) -> None:
    assert extension(name) == ext


def test_families_and_what_bytes_look_like() -> None:
    assert family_of("A.MP4") is MOV and family_of("a.mov") is MOV and family_of("x.PNG") is PNG
    assert family_of("x.m3u8") is None and family_of("x") is None
    assert sniff(b"\x00\x00\x00\x20ftypisom") is MOV and sniff(png()) is PNG
    assert sniff(b"#EXTM3U\n") is None
    assert describe(b"#EXTM3U\n#EXTINF:1,\nx.ts") == "an HLS playlist (#EXTM3U)"
    assert describe(b"\xef\xbb\xbfffconcat version 1.0\n") == "an ffconcat script"
    assert describe(b"v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\n") == "an SDP session description"
    assert describe("file 文件.mp4\n".encode()[:-2]) == "text"  # a character cut at the end
    assert describe(b"see http://x/y") == "text naming files or addresses"
    assert describe(bytes(range(256))) == "unrecognised data"
    assert describe(b"") == "nothing (no bytes)"


def test_no_family_allows_a_demuxer_that_opens_other_files() -> None:
    openers = {"hls", "dash", "concat", "sdp", "rtp", "rtsp", "image2", "imf", "tee",
               "webm_dash_manifest", "data", "lavfi", "subfile", "mpl2"}
    assert not openers & set(ANY_MEDIA)


def test_the_ffprobe_command_is_confined() -> None:
    cmd = ffprobe_command(MOV)
    assert cmd[cmd.index("-protocol_whitelist") + 1] == "file"
    assert cmd[cmd.index("-format_whitelist") + 1] == "mov"
    assert cmd[cmd.index("-f") + 1] == "mov"
    assert cmd[cmd.index("-enable_drefs") + 1] == "0"
    assert cmd[cmd.index("-use_absolute_path") + 1] == "0"
    assert cmd[-2:] == ["-i", "file:/proc/self/fd/0"]
    general = ffprobe_command(None)
    assert "-f" not in general
    assert general[general.index("-format_whitelist") + 1] == ",".join(ANY_MEDIA)


def test_the_probe_time_limit_grows_with_the_file() -> None:
    assert probe_timeout(0) == 30
    assert probe_timeout(200_000) < 31
    assert 500 < probe_timeout(4 << 30) < 600
