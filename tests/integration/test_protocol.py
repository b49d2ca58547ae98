"""The command protocol against the simulated recorder on a real pty pair."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devices.errors import LinkLost
from devices.protocol import (
    AuthError,
    DeviceEvent,
    FrameReader,
    ProtocolError,
    RecorderClient,
    RecorderRefused,
    RecorderTimeout,
    frame,
)
from devices.serial_link import SerialLink
from devices.simulator import SimState, SimulatedRecorder


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatedRecorder]:
    (tmp_path / "DCIM").mkdir()
    (tmp_path / "DCIM" / "a.MP4").write_bytes(b"x" * 1000)
    state = SimState(drift=timedelta(seconds=-95), battery=64, capacity=1 << 30, events=[
        DeviceEvent(datetime(2026, 11, 20, 9, 0), "record_start"),
        DeviceEvent(datetime(2026, 11, 20, 9, 20), "low_battery", "15%"),
    ])
    with SimulatedRecorder(tmp_path, state) as recorder:
        yield recorder


def client_for(sim: SimulatedRecorder, timeout: float = 1.0) -> RecorderClient:
    return RecorderClient(SerialLink(sim.port), timeout=timeout, retries=1)


def test_the_whole_conversation(sim: SimulatedRecorder) -> None:
    c = client_for(sim)
    assert c.version() == "evidock-sim/1"
    c.authenticate("000000")
    ident = c.identity()
    assert (ident.device, ident.officer, ident.officer_name) == ("ZFY0001", "100231", "张伟")
    assert ident.unit_name == "昆山市城市管理局"
    drift = (c.clock() - datetime.now()).total_seconds()
    assert -97 <= drift <= -93
    c.set_clock(datetime.now())
    assert abs((c.clock() - datetime.now()).total_seconds()) <= 2
    assert c.battery() == 64
    store = c.storage()
    assert store.total == 1 << 30 and store.free == (1 << 30) - 1000
    log = c.events()
    assert [(e.kind, e.detail) for e in log.events] == [("record_start", ""),
                                                          ("low_battery", "15%")]
    assert log.rejected == ()
    c.mass_storage()
    assert c.clear() == 1 and not any(sim.volume.rglob("*.MP4"))


def test_a_wrong_password_is_refused_and_locks_the_rest(sim: SimulatedRecorder) -> None:
    c = client_for(sim)
    with pytest.raises(AuthError, match="wrong password"):
        c.authenticate("123456")
    with pytest.raises(RecorderRefused, match="NOAUTH"):
        c.identity()
    assert sim.commands == ["ATH", "GID"]  # a refusal is an answer: never retried


@pytest.mark.parametrize("behaviour", ["silent", "partial", "garbage"])
def test_silence_partial_frames_and_garbage_end_in_a_clear_error(
        sim: SimulatedRecorder, behaviour: str) -> None:
    sim.state.behaviour = behaviour
    c = client_for(sim, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ProtocolError) as caught:
        c.version()
    assert time.monotonic() - started < 3  # bounded: timeout x attempts, never a hang
    assert "after 2 attempts" in str(caught.value)
    assert sim.commands == ["VER", "VER"]
    if behaviour != "garbage":
        assert isinstance(caught.value, RecorderTimeout)
    if behaviour == "partial":
        assert "partial reply" in str(caught.value)


def test_an_unplugged_recorder_is_link_lost_not_a_hang(sim: SimulatedRecorder) -> None:
    c = client_for(sim, timeout=0.3)
    c.authenticate("000000")
    os.close(sim._master)  # the cable is pulled
    started = time.monotonic()
    with pytest.raises(LinkLost, match=r"unplugged"):
        c.battery()
    assert time.monotonic() - started < 2
    assert sim.commands == ["ATH"]  # a lost link is not retried


def test_frame_reader_skips_noise_and_waits_for_the_rest() -> None:
    reader = FrameReader()
    whole = frame("GID", "OK|device=Z1")
    reader.feed(b"\x00\xffnoise@@X" + whole[:7])
    assert reader.next_frame() is None
    reader.feed(whole[7:] + frame("BAT", "OK|50"))
    assert reader.next_frame() == ("GID", "OK|device=Z1")
    assert reader.next_frame() == ("BAT", "OK|50")
    assert reader.next_frame() is None


@pytest.mark.parametrize("bad", [b"@GID;5;OK;#", b"x" * 5000, b"@GID;3;OK\xff;#"])
def test_frame_reader_rejects_what_cannot_be_a_frame(bad: bytes) -> None:
    reader = FrameReader()
    reader.feed(bad + b"@GID;2;OK;")
    with pytest.raises(ProtocolError):
        for _ in range(3):
            reader.next_frame()
