"""The wire format, pinned by golden frames (tests/data/frames), and the reply checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from devices.errors import LinkLost, RecorderError
from devices.protocol import (
    AuthError,
    DeviceEvent,
    DeviceLog,
    FrameReader,
    ProtocolError,
    RecorderClient,
    RecorderIdentity,
    RecorderTimeout,
    StorageInfo,
    frame,
)
from devices.simulator import (
    RequestParser,
    SimIdentity,
    SimState,
    SimulatedRecorder,
    write_frame,
)

FRAMES = Path(__file__).resolve().parents[1] / "data" / "frames"


def golden(name: str) -> bytes:
    return (FRAMES / name).read_bytes()


class ScriptedLink:
    """A Link that answers each write with the next scripted bytes (b"" is silence)."""

    def __init__(self, *replies: bytes, clock: list[float] | None = None):
        self.replies = list(replies)
        self.written: list[bytes] = []
        self.pending = b""
        self.clock = clock  # a fake monotonic clock advanced by reads that time out

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.pending = self.replies.pop(0) if self.replies else b""

    def read(self, size: int, timeout: float) -> bytes:
        out, self.pending = self.pending[:size], self.pending[size:]
        if not out and self.clock is not None:
            self.clock[0] += timeout
        return out

    def close(self) -> None:
        return


def client(*replies: bytes) -> RecorderClient:
    return RecorderClient(ScriptedLink(*replies), timeout=0.05, retries=0)


# Golden frames ---------------------------------------------------------


@pytest.mark.parametrize(("name", "command", "payload"), [
    ("request-GID.bin", "GID", ""),
    ("request-ATH.bin", "ATH", "000000"),
    ("request-STM.bin", "STM", "20261120T093000"),
])
def test_requests_are_written_and_parsed_exactly(name: str, command: str, payload: str) -> None:
    assert frame(command, payload) == golden(name)
    assert RequestParser().feed(golden(name)) == [(command, payload)]


def test_the_client_sends_the_golden_requests() -> None:
    link = ScriptedLink(golden("reply-GID-utf8.bin"), b"@ATH;2;OK;#", b"@STM;2;OK;#")
    c = RecorderClient(link, timeout=0.05, retries=0)
    c.identity()
    c.authenticate("000000")
    c.set_clock(datetime(2026, 11, 20, 9, 30))
    assert link.written == [golden("request-GID.bin"), golden("request-ATH.bin"),
                            golden("request-STM.bin")]


ZHANG = RecorderIdentity("ZFY0001", "100231", "张伟", "320583000000", "昆山市城市管理局")


@pytest.mark.parametrize(("name", "expected", "notice"), [
    ("reply-GID-utf8.bin", ZHANG, False),
    ("reply-GID-percent.bin",
     RecorderIdentity("ZFY0001", "100231", "张伟", "320583000000", "昆山=市"), False),
    ("reply-GID-gbk.bin",
     RecorderIdentity("ZFY0002", "100232", "张伟", "320583000000", "昆山市城市管理局"), True),
])
def test_identity_replies_in_utf8_percent_encoding_and_gbk(
        name: str, expected: RecorderIdentity, notice: bool) -> None:
    c = client(golden(name))
    assert c.identity() == expected
    assert bool(c.notices) == notice
    if notice:
        assert "GBK" in c.notices[0]


def test_the_other_golden_replies() -> None:
    assert client(golden("reply-VER.bin")).version() == "evidock-sim/1"
    assert client(golden("reply-GTM.bin")).clock() == datetime(2026, 11, 20, 9, 28, 25)
    assert client(golden("reply-BAT.bin")).battery() == 64
    assert client(golden("reply-STO.bin")).storage() == StorageInfo(1073740824, 1073741824)
    with pytest.raises(AuthError, match="wrong password"):
        client(golden("reply-ATH-refused.bin")).authenticate("123456")


def test_the_golden_log_keeps_good_entries_and_sets_aside_the_bad_one() -> None:
    got = client(golden("reply-LOG.bin")).events()
    assert isinstance(got, DeviceLog)
    assert got.events == (
        DeviceEvent(datetime(2026, 11, 20, 8, 0), "power_on"),
        DeviceEvent(datetime(2026, 11, 20, 9, 0), "record_start"),
        DeviceEvent(datetime(2026, 11, 20, 9, 20), "low_battery", "15%"),
        DeviceEvent(datetime(2026, 11, 20, 9, 25), "gps_lost", "lat 31.3|lon 120.9"),
        DeviceEvent(datetime(2026, 11, 20, 9, 30), "record_stop", "电量低"),
    )
    assert len(got.rejected) == 1 and got.rejected[0].startswith("not a log entry")
    assert list(got) == list(got.events)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatedRecorder]:
    recorder = SimulatedRecorder(tmp_path, SimState(authenticated=True, battery=64))
    yield recorder
    recorder.stop()


def test_the_simulator_writes_the_golden_replies(sim: SimulatedRecorder) -> None:
    def reply(command: str) -> bytes:
        payload = sim.reply(command, "")
        assert payload is not None
        return write_frame(command, payload)

    assert reply("GID") == golden("reply-GID-utf8.bin")
    assert reply("VER") == golden("reply-VER.bin")
    assert reply("BAT") == golden("reply-BAT.bin")
    sim.state.identity = SimIdentity(device="ZFY0002", officer="100232")
    sim.state.encoding = "gbk"
    assert reply("GID") == golden("reply-GID-gbk.bin")
    sim.state.authenticated = False
    assert write_frame("ATH", sim.reply("ATH", "123456") or b"") == golden(
        "reply-ATH-refused.bin")


def test_the_simulator_writes_the_golden_log(sim: SimulatedRecorder) -> None:
    sim.state.events = [
        DeviceEvent(datetime(2026, 11, 20, 8, 0), "power_on"),
        DeviceEvent(datetime(2026, 11, 20, 9, 0), "record_start"),
        DeviceEvent(datetime(2026, 11, 20, 9, 20), "low_battery", "15%"),
        DeviceEvent(datetime(2026, 11, 20, 9, 25), "gps_lost", "lat 31.3|lon 120.9"),
        "not a log entry",
        "20261120T093000,record_stop,%E7%94%B5%E9%87%8F%E4%BD%8E",
    ]
    assert write_frame("LOG", sim.reply("LOG", "") or b"") == golden("reply-LOG.bin")


# Frame headers ---------------------------------------------------------


@pytest.mark.parametrize(("data", "match"), [
    (b"@GTM;abc;", "malformed header"),
    (b"@GTM;0123;OK;#", "malformed header"),
    (b"@GTM;123456;", "malformed header"),
    (b"@GTM;;OK;#", "malformed header"),
    (b"@GTM;12x", "malformed header"),
    (b"@GTM;99999;", "more than 65535"),
    (b"@GTM;65536;", "more than 65535"),
    (b"@GTM;1;OK;#", "does not end with"),
])
def test_a_bad_header_is_an_error_at_once(data: bytes, match: str) -> None:
    reader = FrameReader()
    reader.feed(data)
    with pytest.raises(ProtocolError, match=match):
        reader.next_raw()


@pytest.mark.parametrize("data", [b"@", b"@G", b"@GTM", b"@GTM;", b"@GTM;6553", b"@GTM;65535",
                                  b"@GTM;65535;", b"@GTM;2;O"])
def test_a_header_still_arriving_is_waited_for(data: bytes) -> None:
    reader = FrameReader()
    reader.feed(data)
    assert reader.next_raw() is None


def test_a_malformed_header_is_reported_not_timed_out() -> None:
    link = ScriptedLink(b"@GTM;abc;OK;#", b"@GTM;abc;OK;#")
    c = RecorderClient(link, timeout=5, retries=1)
    with pytest.raises(ProtocolError, match="malformed header") as caught:
        c.clock()
    assert not isinstance(caught.value, RecorderTimeout)


def test_the_deadline_grows_with_the_announced_length() -> None:
    c = RecorderClient(ScriptedLink(), timeout=2.0, baudrate=115200)
    assert c.deadline_for(0) == 2.0
    assert c.deadline_for(65535) == pytest.approx(2.0 + 65535 * 10 / 115200 * 1.5)
    now = [0.0]
    header = b"@LOG;60000;OK|"  # then nothing more: the wait is the longer deadline
    c = RecorderClient(ScriptedLink(header, clock=now), timeout=2.0, retries=0,
                       baudrate=115200, monotonic=lambda: now[0])
    with pytest.raises(RecorderTimeout, match="partial reply"):
        c.events()
    assert now[0] == pytest.approx(2.0 + 60000 * 10 / 115200 * 1.5)


def test_a_64_kib_log_fits_in_one_frame() -> None:
    entry = b"20261120T080000,record_start,"
    items = [entry + b"x" * 170] * 326
    payload = b"|".join([b"OK", *items])
    assert len(payload) <= 65535
    got = client(frame("LOG", payload)).events()
    assert len(got.events) == 326 and not got.rejected


# Replies checked field by field -----------------------------------------

BARE_OK = b"OK"


@pytest.mark.parametrize(("method", "command"), [
    ("version", "VER"), ("clock", "GTM"), ("battery", "BAT"), ("clear", "CLR"),
    ("identity", "GID"), ("storage", "STO"),
])
def test_a_bare_ok_where_a_value_is_due_is_a_protocol_error(method: str, command: str) -> None:
    with pytest.raises(ProtocolError, match=command):
        getattr(client(frame(command, BARE_OK)), method)()


@pytest.mark.parametrize(("method", "command", "payload"), [
    ("battery", "BAT", "OK|101"),
    ("battery", "BAT", "OK|-1"),
    ("battery", "BAT", "OK|+5"),
    ("battery", "BAT", "OK|٥"),
    ("battery", "BAT", "OK|"),
    ("storage", "STO", "OK|free=10|total=5"),
    ("storage", "STO", "OK|free=-1|total=5"),
    ("storage", "STO", "OK|free=1|total=99999999999999999999"),
    ("storage", "STO", "OK|free=1"),
    ("storage", "STO", "OK|free=1|free=2|total=3"),
    ("clock", "GTM", "OK|2026112T09:28"),
    ("clock", "GTM", "OK|20261320T092825"),
    ("clock", "GTM", "OK|２０２６1120T092825"),
    ("clear", "CLR", "OK|many"),
    ("identity", "GID", "OK|officer=1"),
    ("identity", "GID", "OK|device=Z1"),
    ("identity", "GID", "OK|device=|officer=1"),
    ("identity", "GID", "OK|device=Z 1|officer=1"),
    ("identity", "GID", "OK|device=Z1|officer=" + "1" * 33),
    ("identity", "GID", "OK|device=Z1|officer=1|name=a%2Fb"),
    ("identity", "GID", "OK|device=Z1|officer=1|name=a%00b"),
    ("identity", "GID", "OK|device=Z1|officer=1|unit_name=a%E2%80%AEb"),
    ("identity", "GID", "OK|device=Z1|officer=1|unit_no=" + "9" * 65),
    ("identity", "GID", "OK|device=Z1|officer=1|name=%FF%FF%FF"),
    ("version", "VER", "OK|a%0Ab"),
    ("version", "VER", "NO|1"),
    ("version", "VER", "ER"),
])
def test_odd_replies_are_protocol_errors(method: str, command: str, payload: str) -> None:
    with pytest.raises(ProtocolError, match=command):
        getattr(client(frame(command, payload)), method)()


def test_an_er_reply_is_a_refusal_with_its_message_escaped() -> None:
    with pytest.raises(RecorderError, match=r"BUSY a\\nb") as caught:
        client(frame("MSC", "ER|BUSY|a%0Ab")).mass_storage()
    assert not isinstance(caught.value, ProtocolError)


def test_a_reply_neither_utf8_nor_gbk_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="neither UTF-8 nor GBK"):
        client(frame("VER", b"OK|\xff\xfe")).version()


def test_one_bad_log_entry_does_not_lose_the_log() -> None:
    entries = ["20261120T080000,power_on", "20261120T080000,Power On", "x" * 500,
               "20261120T080000,fault," + "d" * 201, "20261120T080000,fault,a%07b",
               "20261120T250000,power_off", "%FF%FE", "20261120T090000,storage_full,99%25"]
    got = client(frame("LOG", "|".join(["OK", *entries]))).events()
    assert got.events == (DeviceEvent(datetime(2026, 11, 20, 8), "power_on"),
                          DeviceEvent(datetime(2026, 11, 20, 9), "storage_full", "99%"))
    assert len(got.rejected) == 6
    assert all(len(r) <= 200 for r in got.rejected)


def test_an_empty_log() -> None:
    assert client(frame("LOG", "OK")).events() == DeviceLog()


class BrokenLink(ScriptedLink):
    def read(self, size: int, timeout: float) -> bytes:
        raise OSError(5, "Input/output error")


def test_a_lost_link_is_never_retried() -> None:
    link = BrokenLink()
    with pytest.raises(LinkLost):
        RecorderClient(link, retries=5).battery()
    assert len(link.written) == 1
