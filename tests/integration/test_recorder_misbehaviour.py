"""A misbehaving recorder against the real RecorderClient on a real pty pair.

Whatever the far end does (garbage, replies split into pieces with pauses,
frames too long or with the wrong length, odd encodings, silence, hanging up),
every call either returns a checked value or raises a RecorderError within
its deadline and a margin; never another exception, never a hang.
"""

from __future__ import annotations

import itertools
import os
import select
import threading
import time
import tty
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from devices.errors import LinkLost, RecorderError
from devices.protocol import (
    DRAIN_S,
    EVENT_KINDS,
    DeviceLog,
    ProtocolError,
    RecorderClient,
    RecorderIdentity,
    RecorderTimeout,
    StorageInfo,
    frame,
)
from devices.serial_link import SerialLink
from devices.simulator import SimState, SimulatedRecorder

TIMEOUT = 0.15
RETRIES = 1
FAST_BAUD = 10_000_000  # so a frame announcing 65535 bytes adds ~0.1 s, not 8 s, to a wait
MARGIN = 1.5

COMMANDS: dict[str, tuple[str, Callable[[RecorderClient], Any]]] = {
    "ATH": ("authenticate", lambda c: c.authenticate("000000")),
    "VER": ("version", lambda c: c.version()),
    "GID": ("identity", lambda c: c.identity()),
    "GTM": ("clock", lambda c: c.clock()),
    "STM": ("set_clock", lambda c: c.set_clock(datetime(2026, 11, 20, 9, 30))),
    "BAT": ("battery", lambda c: c.battery()),
    "STO": ("storage", lambda c: c.storage()),
    "LOG": ("events", lambda c: c.events()),
    "MSC": ("mass_storage", lambda c: c.mass_storage()),
    "CLR": ("clear", lambda c: c.clear()),
}
SLOW = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


class ScriptedDevice:
    """The far end of a pty pair: answers every request with the same pieces, with pauses.

    With ``hang_up`` it closes its end after the pieces of the first answer (the
    cable pulled mid-reply).
    """

    def __init__(self, pieces: list[tuple[bytes, float]], hang_up: bool = False):
        self.pieces = pieces
        self.hang_up = hang_up
        self.requests = 0
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedDevice:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._close_master()
        os.close(self.slave)

    def _close_master(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.master)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.02)
                if not ready:
                    continue
                os.read(self.master, 4096)
                self.requests += 1
                for data, pause in self.pieces:
                    if self._stop.wait(pause):
                        return
                    if data:
                        os.write(self.master, data)
            except OSError:
                return
            if self.hang_up:
                self._close_master()
                return


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


def run_bounded(call: Callable[[], Any], limit: float) -> Outcome:
    """Run ``call`` in a thread; fail the test if it is still running after ``limit`` s."""
    out = Outcome()

    def target() -> None:
        started = time.monotonic()
        try:
            out.value = call()
        except BaseException as exc:
            out.error = exc
        out.seconds = time.monotonic() - started

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(limit + 5)
    assert not worker.is_alive(), f"the call hung (more than {limit + 5:.1f} s)"
    assert out.seconds <= limit, f"the call took {out.seconds:.2f} s, limit {limit:.2f} s"
    return out


def limit_for(pauses: float) -> float:
    """Every attempt: the longest deadline, the pauses of the reply, a drain."""
    longest = TIMEOUT + 65535 * 10 / FAST_BAUD * 1.5
    return (RETRIES + 1) * (longest + pauses + DRAIN_S) + MARGIN


def visible(text: str) -> bool:
    return not any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")
                   for c in text)


def check_value(method: str, value: Any) -> None:
    """A returned value is one the client checked."""
    if method in ("authenticate", "set_clock", "mass_storage"):
        assert value is None
    elif method == "version":
        assert isinstance(value, str) and 0 < len(value) <= 64
    elif method == "identity":
        assert isinstance(value, RecorderIdentity)
        for number in (value.device, value.officer):
            assert 1 <= len(number) <= 32
            assert all(c.isascii() and (c.isalnum() or c in "_-") for c in number)
        for text in (value.officer_name, value.unit_no, value.unit_name):
            assert len(text) <= 64 and "/" not in text and visible(text)
    elif method == "clock":
        assert isinstance(value, datetime)
    elif method == "battery":
        assert isinstance(value, int) and 0 <= value <= 100
    elif method == "storage":
        assert isinstance(value, StorageInfo) and 0 <= value.free <= value.total
    elif method == "events":
        assert isinstance(value, DeviceLog)
        for e in value.events:
            assert isinstance(e.at, datetime) and 1 <= len(e.kind) <= 32
            assert len(e.detail) <= 200 and visible(e.detail)
        assert all(len(r) <= 200 for r in value.rejected)
    elif method == "clear":
        assert isinstance(value, int) and value >= 0
    else:
        raise AssertionError(method)


def check(method: str, out: Outcome) -> None:
    event(type(out.error).__name__ if out.error else f"{method} returned")
    if out.error is not None:
        if not isinstance(out.error, RecorderError):
            raise AssertionError(f"{method} raised {type(out.error).__name__}, "
                                 "not a RecorderError") from out.error
        assert str(out.error)
    else:
        check_value(method, out.value)


# Strategies -------------------------------------------------------------

commands = st.sampled_from(sorted(COMMANDS))
odd_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from([
    "张伟", "昆山市城市管理局", "a/b", "\x00", "\u202e", "x" * 70, "", "-1", "101", "٣",
    "20261120T092825", "2026-11-20 09:28:25", "99999999999999999999", "=", "%", "%FF", "%E5"])


good_text = st.sampled_from(["张伟", "昆山市城市管理局", "Officer One", "", "evidock-sim/1"])
numbers = st.integers(-5, 120).map(str) | st.sampled_from(["0", "100", "007", "1e3", " 5"])
ids = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True) | st.sampled_from(["", "a b", "x" * 33])
plausible: dict[str, st.SearchStrategy[str]] = {
    "ATH": st.just("OK"), "STM": st.just("OK"), "MSC": st.just("OK"),
    "VER": st.builds("OK|{}".format, good_text | odd_text),
    "GID": st.builds("OK|device={}|officer={}|name={}|unit_name={}".format,
                     ids, ids, good_text | odd_text, good_text),
    "GTM": st.builds("OK|{:%Y%m%dT%H%M%S}".format, st.datetimes()),
    "BAT": st.builds("OK|{}".format, numbers),
    "STO": st.builds("OK|free={}|total={}".format, st.integers(-1, 1 << 64),
                     st.integers(-1, 1 << 64)),
    "LOG": st.builds("OK|{:%Y%m%dT%H%M%S},{}".format, st.datetimes(),
                     st.sampled_from(EVENT_KINDS)),
    "CLR": st.builds("OK|{}".format, numbers),
}


@st.composite
def payloads(draw: st.DrawFn, command: str) -> bytes:
    """A reply payload: plausible, mangled or random, in UTF-8, GBK or neither."""
    kind = draw(st.sampled_from(["plausible"] * 4 + ["fields", "random", "log", "er"]))
    if kind == "plausible":
        return draw(plausible[command]).encode(draw(st.sampled_from(["utf-8", "gbk"])),
                                               errors="replace")
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "er":
        text = "|".join(["ER", *draw(st.lists(odd_text, max_size=3))])
    elif kind == "log":
        entry = st.builds(lambda t, k, d: f"{t},{k}" + (f",{d}" if d else ""),
                          st.sampled_from(["20261120T092825", "20261320T000000", "x", ""]),
                          st.sampled_from([*EVENT_KINDS, "gps_lost", "Bad Kind", ""]),
                          odd_text)
        text = "|".join([draw(st.sampled_from(["OK", "ok", "ER"])),
                         *draw(st.lists(entry | odd_text, max_size=6))])
    else:
        keys = st.sampled_from(["device", "officer", "name", "unit_no", "unit_name", "free",
                                "total", ""])
        field = st.builds(lambda k, v: f"{k}={v}" if k else v, keys, odd_text)
        text = "|".join([draw(st.sampled_from(["OK", "OK", "", "OK "])),
                         *draw(st.lists(field, max_size=6))])
    encoding = draw(st.sampled_from(["utf-8", "gbk", "utf-16"]))
    return text.encode(encoding, errors="replace")


@st.composite
def replies(draw: st.DrawFn, command: str) -> bytes:
    """The bytes of one reply: a frame (maybe wrong) among noise, or no frame at all."""
    shape = draw(st.sampled_from(["frame"] * 4 + ["wrong_length", "too_long", "other_command",
                                  "garbage", "silence", "bad_header", "half"]))
    body = draw(payloads(command))
    if shape == "garbage":
        return draw(st.binary(min_size=1, max_size=500))
    if shape == "silence":
        return b""
    if shape == "too_long":
        size = draw(st.integers(65536, 999999))
        return b"@%s;%d;" % (command.encode(), size) + body
    if shape == "bad_header":
        junk = draw(st.sampled_from([b"abc", b"", b"0123", b"1x", b"-1", b"1 "]))
        return b"@%s;%s;" % (command.encode(), junk) + body + b";#"
    if shape == "wrong_length":
        delta = draw(st.integers(-5, 5).filter(bool))
        return b"@%s;%d;" % (command.encode(), max(len(body) + delta, 0)) + body + b";#"
    name = draw(commands) if shape == "other_command" else command
    whole = frame(name, body)
    if shape == "half":
        return whole[: draw(st.integers(0, len(whole) - 1))]
    noise = draw(st.binary(max_size=20).map(lambda b: b.replace(b"@", b"")))
    return noise + whole


@st.composite
def split(draw: st.DrawFn, data: bytes) -> list[tuple[bytes, float]]:
    """``data`` in pieces with short pauses between them."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    bounds = [0, *cuts, len(data)]
    pauses = st.sampled_from([0.0, 0.0, 0.005, 0.02, 0.05])
    return [(data[a:b], draw(pauses)) for a, b in itertools.pairwise(bounds)]


@st.composite
def conversations(draw: st.DrawFn) -> tuple[str, list[tuple[bytes, float]]]:
    command = draw(commands)
    return command, draw(split(draw(replies(command))))


def client_on(port: str) -> RecorderClient:
    return RecorderClient(SerialLink(port), timeout=TIMEOUT, retries=RETRIES,
                          baudrate=FAST_BAUD)


# Properties -------------------------------------------------------------


@SLOW
@given(conversations())
def test_any_reply_is_a_checked_value_or_a_recorder_error(
        conversation: tuple[str, list[tuple[bytes, float]]]) -> None:
    command, pieces = conversation
    method, call = COMMANDS[command]
    with ScriptedDevice(pieces) as device:
        client = client_on(device.port)
        try:
            out = run_bounded(lambda: call(client),
                              limit_for(sum(p for _, p in pieces)))
        finally:
            client.link.close()
    check(method, out)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_payload_through_the_simulator(data: st.DataObject, tmp_path: Path) -> None:
    command = data.draw(commands)
    override = data.draw(st.sampled_from([True] * 4 + [False]).flatmap(
        lambda speak: payloads(command) if speak else st.none()))
    state = SimState(authenticated=True, overrides={command: override},
                     encoding=data.draw(st.sampled_from(["utf-8", "gbk"])))
    method, call = COMMANDS[command]
    with SimulatedRecorder(tmp_path, state) as sim:
        client = client_on(sim.port)
        try:
            out = run_bounded(lambda: call(client), limit_for(0.0))
        finally:
            client.link.close()
    check(method, out)
    if override is None:
        assert isinstance(out.error, RecorderTimeout)


@settings(max_examples=30, deadline=None)
@given(commands, st.binary(max_size=200), st.sampled_from([0.0, 0.01, 0.05]))
def test_hanging_up_mid_reply_is_link_lost_at_once(command: str, sent: bytes,
                                                   pause: float) -> None:
    """The far end sends part of a reply (never a whole frame) and hangs up."""
    method, call = COMMANDS[command]
    sent = sent.replace(b"@", b"")  # so no frame can complete
    with ScriptedDevice([(sent, pause)], hang_up=True) as device:
        client = RecorderClient(SerialLink(device.port), timeout=5.0, retries=3)
        try:
            out = run_bounded(lambda: call(client), 2.0 + pause)
        finally:
            client.link.close()
    assert isinstance(out.error, LinkLost), f"{method}: {out.error!r}"
    assert device.requests == 1  # never retried


# Particular cases -------------------------------------------------------


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatedRecorder]:
    (tmp_path / "a.MP4").write_bytes(b"x" * 10)
    with SimulatedRecorder(tmp_path, SimState(authenticated=True)) as recorder:
        yield recorder


@pytest.mark.parametrize("command", ["VER", "GID", "GTM", "BAT", "STO", "CLR"])
def test_a_bare_ok_from_the_simulator_is_a_protocol_error(sim: SimulatedRecorder,
                                                          command: str) -> None:
    sim.state.overrides[command] = b"OK"
    with pytest.raises(ProtocolError, match=command):
        COMMANDS[command][1](client_on(sim.port))


@pytest.mark.parametrize(("command", "payload", "match"), [
    ("BAT", b"OK|101", "not a percentage"),
    ("STO", b"OK|free=20|total=10", "more than total"),
    ("STO", b"OK|free=-1|total=10", "not a whole number"),
    ("GID", b"OK|name=x|unit_no=1", "lacks device"),
    ("GID", b"OK|device=ZFY1", "lacks officer"),
    ("GID", b"OK|device=ZFY1|officer=../1", "officer"),
])
def test_odd_values_from_the_simulator(sim: SimulatedRecorder, command: str, payload: bytes,
                                       match: str) -> None:
    sim.state.overrides[command] = payload
    with pytest.raises(ProtocolError, match=match):
        COMMANDS[command][1](client_on(sim.port))


def test_a_gbk_recorder_is_read_and_noticed(tmp_path: Path) -> None:
    with SimulatedRecorder(tmp_path, SimState(encoding="gbk")) as sim:
        client = client_on(sim.port)
        client.authenticate("000000")
        ident = client.identity()
    assert (ident.officer_name, ident.unit_name) == ("张伟", "昆山市城市管理局")
    assert client.notices == ["GID: the reply is not UTF-8; read as GBK"]


def test_a_silent_switch_still_switches(tmp_path: Path) -> None:
    switched = threading.Event()
    state = SimState(authenticated=True, overrides={"MSC": None})
    with (SimulatedRecorder(tmp_path, state, on_mass_storage=switched.set) as sim,
          pytest.raises(RecorderTimeout, match="MSC")):
        client_on(sim.port).mass_storage()
    assert switched.is_set()


def test_a_malformed_header_is_reported_before_the_timeout() -> None:
    with ScriptedDevice([(b"@GTM;abc;OK|20261120T092825;#", 0.0)]) as device:
        client = RecorderClient(SerialLink(device.port), timeout=5.0, retries=1)
        started = time.monotonic()
        with pytest.raises(ProtocolError, match="malformed header") as caught:
            client.clock()
        client.link.close()
    assert not isinstance(caught.value, RecorderTimeout)
    assert time.monotonic() - started < 2 * DRAIN_S + 1


def test_an_announced_length_over_65535_is_refused() -> None:
    with ScriptedDevice([(b"@LOG;99999;OK|", 0.0)]) as device:
        client = RecorderClient(SerialLink(device.port), timeout=5.0, retries=0)
        with pytest.raises(ProtocolError, match="more than 65535"):
            client.events()
        client.link.close()


def test_a_long_log_arriving_slowly_meets_its_longer_deadline() -> None:
    """20 kB at a trickle, well past the 0.3 s timeout but within 0.3 + 20 kB at 115200 baud."""
    entries = [f"20261120T{h:02d}{m:02d}00,record_start,{'x' * 150}"
               for h in range(10) for m in range(12)]
    whole = frame("LOG", "|".join(["OK", *entries]))
    assert 18_000 < len(whole) < 22_000
    step = len(whole) // 10
    pieces = [(whole[i:i + step], 0.1) for i in range(0, len(whole), step)]
    with ScriptedDevice(pieces) as device:
        client = RecorderClient(SerialLink(device.port), timeout=0.3, retries=0,
                                baudrate=115200)
        started = time.monotonic()
        got = client.events()
        client.link.close()
    assert time.monotonic() - started > 0.9
    assert len(got.events) == 120 and not got.rejected


def test_a_64_kib_log_from_the_simulator(tmp_path: Path) -> None:
    entry = "20261120T080000,fault," + "e" * 180
    count = 65000 // (len(entry) + 1)
    state = SimState(authenticated=True, events=[entry] * count)
    with SimulatedRecorder(tmp_path, state) as sim:
        got = RecorderClient(SerialLink(sim.port), timeout=1.0).events()
    assert len(got.events) == count


def test_unplugging_the_simulator_is_link_lost(sim: SimulatedRecorder) -> None:
    client = client_on(sim.port)
    assert client.battery() == 87
    sim.unplug()
    with pytest.raises(LinkLost):
        client.battery()
    assert sim.commands == ["BAT"]
