"""Untrusted media stays inside its file: the media check opens nothing a file names.

Each hostile file names a *trap* outside itself: a FIFO (anything opening it for
reading is seen at once, and nothing else notices it) or a listening TCP socket.
Every test first runs plain ffprobe on the same bytes and checks that the trap
springs, so a trap that could not catch anything would fail the test; then the
media check runs and the trap must stay shut.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ingest.probe as probe_module
from cli import app
from devices.media import make_clip, make_photo, recorder_name, truncate_half
from devices.volume import FolderVolume
from ingest.dock import IngestContext
from ingest.probe import MediaInfo, ProbeFailed, parse_probe, probe
from tests.conftest import SHIFT_END, ZONE, run_dock

HLS = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
       "#EXTINF:4.0,\n{url}\n#EXT-X-ENDLIST\n")
SDP = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=evidence\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")


class FifoTrap:
    """A FIFO that notes whether anything opened it for reading (and then feeds it)."""

    def __init__(self, path: Path, payload: bytes = b"secret evidence"):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        self.path = path
        self.payload = payload
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:  # succeeds only while a reader has the FIFO open (or waits in open)
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.002)
                continue
            self.opened.set()
            with contextlib.suppress(OSError):  # the reader may be gone already
                os.write(fd, self.payload)
            os.close(fd)

    def sprung(self) -> bool:
        time.sleep(0.05)  # a reader opening at the very end is still seen
        return self.opened.is_set()

    def reset(self) -> None:
        self.opened.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class TcpTrap:
    """A listening socket that notes every connection."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.05)
        self.port = self.server.getsockname()[1]
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connected.set()
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


@pytest.fixture
def traps() -> Iterator[list[FifoTrap | TcpTrap]]:
    made: list[FifoTrap | TcpTrap] = []
    yield made
    for trap in made:
        trap.close()


def fifo(traps: list[FifoTrap | TcpTrap], path: Path, payload: bytes = b"secret") -> FifoTrap:
    trap = FifoTrap(path, payload)
    traps.append(trap)
    return trap


def plain_ffprobe(path: Path, *options: str) -> None:
    """ffprobe as the media check ran it before: the file by name, nothing confined."""
    subprocess.run(["ffprobe", "-v", "quiet", *options, str(path)], capture_output=True,
                   timeout=60, check=False)


def failure(path: Path, name: str | None = None) -> ProbeFailed:
    with pytest.raises(ProbeFailed) as failed:
        probe(path, name=name)
    return failed.value


# A QuickTime reference movie: its data reference ('alis') names another file -----------

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"dinf"}


def _alis(target: bytes) -> bytes:
    """A Macintosh alias data-reference entry naming ``target`` by absolute path only."""
    body = (bytes(10) + bytes(1 + 27) + bytes(12) + bytes(1 + 63) + bytes(16)
            + struct.pack(">hh", 0, 0)  # no relative form: only the absolute path
            + bytes(16)
            + struct.pack(">hH", 2, len(target)) + target + bytes(len(target) % 2)
            + struct.pack(">hH", -1, 0))
    entry = b"alis" + bytes(4) + body
    return struct.pack(">I", len(entry) + 4) + entry


def _rewrite(data: bytes, start: int, end: int, target: bytes) -> bytes:
    out = bytearray()
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind in _CONTAINERS:
            inner = _rewrite(data, pos + 8, pos + size, target)
            out += struct.pack(">I4s", len(inner) + 8, kind) + inner
        elif kind == b"dref":
            inner = struct.pack(">II", 0, 1) + _alis(target)
            out += struct.pack(">I4s", len(inner) + 8, kind) + inner
        else:
            out += data[pos:pos + size]
        pos += size
    return bytes(out)


def reference_movie(clip: Path, out: Path, target: Path) -> Path:
    """``clip`` (moov last, so no offset moves) with every track's data kept in ``target``."""
    data = clip.read_bytes()
    out.write_bytes(_rewrite(data, 0, len(data), os.fsencode(target)))
    return out


@pytest.fixture(scope="module")
def late_moov_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("late-moov")
    return make_clip(folder / "clip.MP4", 2.0, SHIFT_END, faststart=False)


# ffprobe opens nothing else ---------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("EVIDENCE.MP4", "media_mismatch"),
                                            ("EVIDENCE.m3u8", "media_unreadable")])
def test_a_playlist_never_opens_the_file_it_names(tmp_path: Path, traps: list[FifoTrap | TcpTrap],
                                                  name: str, kind: str) -> None:
    trap = fifo(traps, tmp_path / "elsewhere" / "secret.ts")
    playlist = tmp_path / "volume" / name
    playlist.parent.mkdir()
    playlist.write_text(HLS.format(url=f"file://{trap.path}"))
    plain_ffprobe(playlist)
    assert trap.sprung(), "the trap must catch unconfined ffprobe, or this test proves nothing"
    trap.reset()
    failed = failure(playlist)
    assert not trap.sprung()
    assert failed.kind == kind and "HLS playlist" in str(failed)
    assert str(tmp_path) not in str(failed)


def test_a_playlist_of_network_addresses_connects_nowhere(tmp_path: Path,
                                                          traps: list[FifoTrap | TcpTrap]) -> None:
    server = TcpTrap()
    traps.append(server)
    playlist = tmp_path / "DSJ_X_1_20261120_093000.MP4"
    playlist.write_text(HLS.format(url=f"http://127.0.0.1:{server.port}/evidence.ts"))
    # ffprobe itself keeps a local playlist to local protocols; widened, the trap springs
    plain_ffprobe(playlist, "-protocol_whitelist", "file,http,tcp,crypto,data")
    assert server.connected.wait(5)
    server.connected.clear()
    assert failure(playlist).kind == "media_mismatch"
    time.sleep(0.1)
    assert not server.connected.is_set()


def test_an_ffconcat_script_never_opens_its_neighbour(tmp_path: Path,
                                                      traps: list[FifoTrap | TcpTrap]) -> None:
    trap = fifo(traps, tmp_path / "neighbour.mp4")
    script = tmp_path / "EVIDENCE.MP4"
    script.write_text("ffconcat version 1.0\nfile neighbour.mp4\n")
    plain_ffprobe(script)
    assert trap.sprung()
    trap.reset()
    failed = failure(script)
    assert not trap.sprung()
    assert failed.kind == "media_mismatch" and "ffconcat script" in str(failed)


def test_a_reference_movie_never_opens_the_file_holding_its_data(
        tmp_path: Path, traps: list[FifoTrap | TcpTrap], late_moov_clip: Path) -> None:
    trap = fifo(traps, tmp_path / "elsewhere" / "real.mov", late_moov_clip.read_bytes())
    movie = reference_movie(late_moov_clip, tmp_path / "EVIDENCE.MOV", trap.path)
    plain_ffprobe(movie, "-enable_drefs", "1", "-use_absolute_path", "1")
    assert trap.sprung(), "the reference must reach the trap when drefs are allowed"
    trap.reset()
    plain_ffprobe(movie)  # ffprobe's defaults already refuse; the check states them anyway
    assert not trap.sprung()
    failed = failure(movie)
    assert not trap.sprung()
    assert failed.kind == "media_unreadable" and "not in the file" in str(failed)


def test_an_sdp_description_opens_no_stream(tmp_path: Path) -> None:
    sdp = tmp_path / "EVIDENCE.MP4"
    sdp.write_text(SDP.format(port=5004))
    failed = failure(sdp)
    assert failed.kind == "media_mismatch" and "SDP session description" in str(failed)


def test_text_naming_files_or_addresses_is_a_mismatch(tmp_path: Path) -> None:
    text = tmp_path / "EVIDENCE.AVI"
    text.write_text("file:/etc/passwd\nhttp://127.0.0.1:9/evidence.ts\n")
    failed = failure(text)
    assert failed.kind == "media_mismatch"
    assert "named .AVI but is not AVI video: it looks like text naming files" in str(failed)


# Content that is not what its name says ---------------------------------------------


def test_a_picture_named_mp4_is_a_mismatch(tmp_path: Path) -> None:
    png = make_photo(tmp_path / "picture.png")
    named = png.rename(tmp_path / "EVIDENCE.MP4")
    failed = failure(named)
    assert failed.kind == "media_mismatch"
    assert str(failed).startswith("EVIDENCE.MP4 is named .MP4 but is not MP4/MOV media: "
                                  "it looks like a PNG image")


def test_a_clip_named_jpg_is_a_mismatch(tmp_path: Path, late_moov_clip: Path) -> None:
    named = shutil.copy(late_moov_clip, tmp_path / "PHOTO.JPG")
    failed = failure(Path(named))
    assert failed.kind == "media_mismatch" and "it looks like MP4/MOV media" in str(failed)


def test_random_bytes_named_mp4_fail_fast(tmp_path: Path) -> None:
    noise = tmp_path / "EVIDENCE.MP4"
    noise.write_bytes(os.urandom(5 << 20))
    started = time.monotonic()
    failed = failure(noise)
    assert failed.kind == "media_mismatch" and "unrecognised data" in str(failed)
    assert time.monotonic() - started < 20  # measured: about 0.1 s; before, up to 600 s allowed


def test_messages_name_the_recorder_file_not_the_vault_copy(tmp_path: Path) -> None:
    work = tmp_path / "vault" / ".work" / "owner"
    work.mkdir(parents=True)
    copy = work / ".tmp-0123456789abcdef"
    copy.write_bytes(os.urandom(4096))
    for name in ("DSJ_A_1_20261120_093000.MP4", "DSJ_A_1_20261120_093000.bin"):
        failed = failure(copy, name)
        assert name in str(failed)
        assert str(tmp_path) not in str(failed) and ".tmp-" not in str(failed)
        assert "/proc/self" not in str(failed)


def test_a_probe_that_runs_too_long_is_stopped_and_explained(
        tmp_path: Path, late_moov_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_module, "PROBE_BASE_S", 0.0)
    monkeypatch.setattr(probe_module, "PROBE_MIN_RATE", 1 << 50)
    failed = failure(late_moov_clip)
    assert failed.kind == "media_unreadable" and "was stopped" in str(failed)


# Real media reads as it did when ffprobe opened it by name ------------------------------


def by_name(path: Path) -> MediaInfo:
    done = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_format",
                           "-show_streams", "-of", "json", str(path)],
                          capture_output=True, check=True, timeout=60)
    return parse_probe(json.loads(done.stdout))


@pytest.fixture(scope="module")
def real_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("real")
    at = SHIFT_END
    cut = truncate_half(make_clip(folder / "CUT.MP4", 4.0, at))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=660:sample_rate=16000", "-t", "2", str(folder / "T.WAV")],
                   check=True)
    return {
        "faststart": make_clip(folder / "FAST.MP4", 4.0, at),
        "moov-last": make_clip(folder / "LATE.MP4", 4.0, at, faststart=False),
        "truncated": cut,
        "wav": folder / "T.WAV",
        "jpeg": make_photo(folder / "P.JPG"),
        "png": make_photo(folder / "P.PNG"),
    }


@pytest.mark.parametrize("which", ["faststart", "moov-last", "truncated", "wav", "jpeg", "png"])
def test_real_media_gives_the_same_facts_as_before(real_media: dict[str, Path],
                                                   which: str) -> None:
    path = real_media[which]
    assert probe(path) == by_name(path)


def test_truncated_clips_are_still_found(real_media: dict[str, Path], tmp_path: Path) -> None:
    info = probe(real_media["truncated"])
    assert info.damage and "video" in info.damage
    late = make_clip(tmp_path / "LATE.MP4", 2.0, SHIFT_END, faststart=False)
    truncate_half(late)  # its moov box was at the end: gone
    failed = failure(late)
    assert failed.kind == "media_unreadable" and "moov atom not found" in str(failed)


# Through `evidock ingest` ------------------------------------------------------------


def bad_crc_png(photo: Path, out: Path) -> Path:
    data = bytearray(photo.read_bytes())
    data[40] ^= 0x01  # inside the first IDAT chunk's data: its CRC no longer matches
    out.write_bytes(bytes(data))
    return out


def test_a_hostile_volume_through_evidock_ingest(home: Path, tmp_path: Path,
                                                 traps: list[FifoTrap | TcpTrap],
                                                 late_moov_clip: Path) -> None:
    secret = fifo(traps, tmp_path / "elsewhere" / "secret.ts")
    server = TcpTrap()
    traps.append(server)
    folder = tmp_path / "volume" / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True)
    start = datetime.now(UTC).astimezone(ZONE).replace(microsecond=0) - timedelta(hours=1)

    def named(n: int, ext: str) -> Path:
        return folder / recorder_name("ZFY0009", "100239", start + timedelta(minutes=n), ext)

    good = make_clip(named(0, "MP4"), 2.0, start)
    photo = make_photo(named(1, "JPG"))
    hostile = {
        named(2, "MP4"): HLS.format(url=f"file://{secret.path}"),
        named(3, "MP4"): HLS.format(url=f"http://127.0.0.1:{server.port}/x.ts"),
        named(4, "MP4"): "ffconcat version 1.0\nfile ../../../elsewhere/secret.ts\n",
        named(5, "MP4"): SDP.format(port=5004),
    }
    for path, text in hostile.items():
        path.write_text(text)
    png = make_photo(tmp_path / "picture.png")
    shutil.copy(png, named(6, "MP4"))
    named(7, "MP4").write_bytes(os.urandom(1 << 20))
    reference_movie(late_moov_clip, named(8, "MOV"), secret.path)
    cut_photo = named(9, "JPG")
    cut_photo.write_bytes(photo.read_bytes()[:-600])
    bad_crc_png(png, named(10, "PNG"))
    (folder / "link.MP4").symlink_to(secret.path)

    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "volume"), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.stderr
    summary = json.loads(result.stdout)
    kinds = {e["source_path"].rsplit("/", 1)[-1]: e["kind"] for e in summary["explanations"]
             if e["source_path"]}
    expected = {named(n, "MP4").name: "media_mismatch" for n in (2, 3, 4, 5, 6, 7)}
    expected |= {named(8, "MOV").name: "media_unreadable", cut_photo.name: "media_truncated",
                 named(10, "PNG").name: "media_unreadable", "link.MP4": "symlink"}
    assert kinds == expected
    assert not secret.sprung() and not server.connected.is_set()
    outcomes = {o["path"].rsplit("/", 1)[-1]: o["status"] for o in summary["outcomes"]}
    assert outcomes[good.name] == "stored" and outcomes[photo.name] == "stored"
    assert all(outcomes[name] == "quarantined" for name in expected if name != "link.MP4")
    for explanation in summary["explanations"]:
        assert str(home) not in explanation["error"] and ".tmp-" not in explanation["error"]
        if explanation["kind"].startswith("media_"):
            assert explanation["vault_path"].startswith("quarantine/")
    assert "CRC-32" in next(e["error"] for e in summary["explanations"]
                            if (e["source_path"] or "").endswith(".PNG"))


def test_a_truncated_photo_and_a_damaged_png_are_quarantined(station: IngestContext,
                                                             tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    at = SHIFT_END.astimezone(ZONE) - timedelta(minutes=30)
    whole = make_photo(volume / recorder_name("ZFY0002", "100232", at, "JPG"))
    cut = volume / recorder_name("ZFY0002", "100232", at + timedelta(seconds=1), "JPG")
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    png = make_photo(tmp_path / "picture.png")
    bad = bad_crc_png(png, volume / recorder_name("ZFY0002", "100232",
                                                  at + timedelta(seconds=2), "PNG"))
    summary = run_dock(station, FolderVolume(volume))
    states = {r.source_path: (r.state, r.vault_path.split("/")[0])
              for r in station.catalog.recordings()}
    assert states == {whole.name: ("stored", "files"), cut.name: ("quarantined", "quarantine"),
                      bad.name: ("quarantined", "quarantine")}
    kinds = {e.source_path: e.kind for e in summary.explanations if e.kind.startswith("media")}
    assert kinds == {cut.name: "media_truncated", bad.name: "media_unreadable"}
    stored = next(r for r in station.catalog.recordings() if r.source_path == whole.name)
    assert stored.media_json is not None
    assert json.loads(stored.media_json)["streams"][0] | {} == {
        "kind": "video", "codec": "mjpeg", "frames_declared": None, "packets_read": 1,
        "width": 640, "height": 480}
