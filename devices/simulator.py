"""A simulated recorder: speaks the command protocol on a pseudo-terminal.

It owns a volume (a folder, or the mount point of a FAT32 image), an event
log, a clock that drifts from the station's and a battery, and it can be told
to misbehave (stay silent, send garbage or half a reply) or to vanish. Used by
`evidock demo`, the tests and the benchmarks.
"""

from __future__ import annotations

import os
import select
import shutil
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from devices.protocol import TIME_FORMAT, DeviceEvent, FrameReader, ProtocolError, encode_field
from devices.protocol import frame as make_frame

VERSION = "evidock-sim/1"


@dataclass
class SimIdentity:
    device: str = "ZFY0001"
    officer: str = "100231"
    officer_name: str = "张伟"
    unit_no: str = "320583000000"
    unit_name: str = "昆山市城市管理局"


@dataclass
class SimState:
    identity: SimIdentity = field(default_factory=SimIdentity)
    password: str = "000000"  # noqa: S105  (the simulator's documented default)
    drift: timedelta = timedelta(seconds=0)
    battery: int = 87
    capacity: int = 32 << 30
    events: list[DeviceEvent] = field(default_factory=list)
    behaviour: str = "normal"  # normal, silent, garbage, partial
    authenticated: bool = False


class SimulatedRecorder:
    """Serve the protocol on a new pty until stop() or unplug()."""

    def __init__(self, volume: Path, state: SimState | None = None, *,
                 zone: tzinfo | None = None, on_mass_storage: Callable[[], None] | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now().astimezone()):
        self.volume = volume
        self.state = state or SimState()
        self.zone = zone
        self.on_mass_storage = on_mass_storage
        self.now = now
        self.commands: list[str] = []  # what the station asked, in order
        self._stop = threading.Event()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._serve, name=f"sim-{self.port}",
                                        daemon=True)

    def start(self) -> SimulatedRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:  # already closed by unplug()
                continue

    unplug = stop

    def __enter__(self) -> SimulatedRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # The recorder's side -------------------------------------------------

    def clock(self) -> datetime:
        local = self.now().astimezone(self.zone) if self.zone else self.now().astimezone()
        return (local + self.state.drift).replace(tzinfo=None)

    def _serve(self) -> None:
        reader = FrameReader()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            reader.feed(data)
            while True:
                try:
                    got = reader.next_frame()
                except ProtocolError:
                    reader = FrameReader()
                    break
                if got is None:
                    break
                self._send(got[0], self.handle(*got))

    def _send(self, command: str, payload: str) -> None:
        behaviour = self.state.behaviour
        if behaviour == "silent":
            return
        data = make_frame(command, payload)
        if behaviour == "garbage":
            data = bytes((b * 7 + 3) % 256 for b in data).replace(b"@", b"?")
        elif behaviour == "partial":
            data = data[: len(data) // 2]
        os.write(self._master, data)

    def handle(self, command: str, payload: str) -> str:
        self.commands.append(command)
        s = self.state
        if command == "VER":
            return ok(VERSION)
        if command == "ATH":
            s.authenticated = payload == s.password
            return ok() if s.authenticated else err("AUTH", "wrong password")
        if not s.authenticated:
            return err("NOAUTH", "authenticate first")
        ident = s.identity
        if command == "GID":
            return ok(f"device={ident.device}", f"officer={ident.officer}",
                      f"name={ident.officer_name}", f"unit_no={ident.unit_no}",
                      f"unit_name={ident.unit_name}")
        if command == "GTM":
            return ok(self.clock().strftime(TIME_FORMAT))
        if command == "STM":
            try:
                wanted = datetime.strptime(payload, TIME_FORMAT)
            except ValueError:
                return err("ARG", "time must be YYYYMMDDTHHMMSS")
            s.drift += wanted - self.clock()
            return ok()
        if command == "BAT":
            return ok(str(s.battery))
        if command == "STO":
            used = sum(p.stat().st_size for p in self.volume.rglob("*") if p.is_file())
            return ok(f"free={max(s.capacity - used, 0)}", f"total={s.capacity}")
        if command == "LOG":
            return ok(*(f"{e.at.strftime(TIME_FORMAT)},{e.kind}" + (f",{e.detail}" if e.detail
                        else "") for e in s.events))
        if command == "MSC":
            if self.on_mass_storage:
                self.on_mass_storage()
            return ok()
        if command == "CLR":
            count = 0
            for child in list(self.volume.iterdir()):
                count += sum(1 for p in child.rglob("*") if p.is_file()) if child.is_dir() else 1
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            return ok(str(count))
        return err("UNKNOWN", f"no command {command}")


def ok(*fields: str) -> str:
    return "|".join(["OK", *(encode_field(f) for f in fields)])


def err(code: str, message: str) -> str:
    return "|".join(["ER", encode_field(code), encode_field(message)])
