"""A simulated recorder: speaks the command protocol on a pseudo-terminal.

It owns a volume (a folder, or the mount point of a FAT32 image), an event
log, a clock that drifts from the station's and a battery, and it can be told
to misbehave (stay silent, send garbage or half a reply, answer one command
with any bytes at all) or to vanish. Used by `evidock demo`, the tests and the
benchmarks.

It writes and parses its frames itself (docs/recorder-protocol.md) rather than
with devices.protocol, so that the client's framing is tested against a second
implementation and not against itself.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

VERSION = "evidock-sim/1"
TIME_FORMAT = "%Y%m%dT%H%M%S"
MAX_PAYLOAD = 65535
# Characters percent-encoded inside a field: the separators and "%", and control
# characters. Everything else, Chinese included, is sent as it is, in the
# simulator's encoding.
_RESERVED = re.compile(r"[%|;#=@\x00-\x1f\x7f]")
_REQUEST = re.compile(rb"@([A-Z]{3});(0|[1-9][0-9]{0,4});")


class LogEntry(Protocol):
    """An entry of the simulated log (devices.protocol.DeviceEvent fits)."""

    @property
    def at(self) -> datetime: ...
    @property
    def kind(self) -> str: ...
    @property
    def detail(self) -> str: ...


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
    # Log entries; a str is sent as the raw (already encoded) field, to make odd entries.
    events: list[LogEntry | str] = field(default_factory=list)
    behaviour: str = "normal"  # normal, silent, garbage, partial
    authenticated: bool = False
    # command -> the raw reply payload to send instead of the normal one (None: stay
    # silent). The command still takes effect (MSC still switches, CLR still deletes).
    overrides: dict[str, bytes | None] = field(default_factory=dict)
    encoding: str = "utf-8"  # of the reply text: "utf-8" or "gbk"


def write_frame(command: str, payload: bytes) -> bytes:
    """One frame, ``@CMD;LEN;PAYLOAD;#`` (the device's own writer)."""
    if not re.fullmatch(r"[A-Z]{3}", command) or len(payload) > MAX_PAYLOAD:
        raise ValueError(f"cannot frame {command!r} with {len(payload)} bytes")
    return b"@" + command.encode("ascii") + b";" + str(len(payload)).encode("ascii") + b";" + (
        payload + b";#")


class RequestParser:
    """The device's side: requests out of the bytes the station sent; junk is skipped."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        self.buffer += data
        out: list[tuple[str, str]] = []
        while True:
            start = self.buffer.find(b"@")
            if start < 0:
                self.buffer.clear()
                return out
            del self.buffer[:start]
            head = _REQUEST.match(self.buffer)
            if head is None:
                if len(self.buffer) < 12 and re.fullmatch(rb"@[A-Z]{0,3}(;[0-9]{0,5})?",
                                                          bytes(self.buffer)):
                    return out  # a header still arriving
                del self.buffer[:1]
                continue
            command = bytes(head.group(1)).decode("ascii")  # before the buffer changes
            end = head.end() + int(head.group(2))
            if len(self.buffer) < end + 2:
                return out
            if self.buffer[end:end + 2] != b";#":
                del self.buffer[:1]
                continue
            body = bytes(self.buffer[head.end():end])
            del self.buffer[:end + 2]
            out.append((command, body.decode("utf-8", "replace")))


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
        if self._thread.is_alive():
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
        parser = RequestParser()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except (OSError, ValueError):  # the master was closed (the cable pulled)
                return
            for command, payload in parser.feed(data):
                try:
                    self._send(command, self.reply(command, payload))
                except OSError:
                    return

    def reply(self, command: str, payload: str) -> bytes | None:
        """The payload bytes answering one request (an override if one is set)."""
        text = self.handle(command, payload)
        if command in self.state.overrides:
            return self.state.overrides[command]
        return text.encode(self.state.encoding)

    def _send(self, command: str, payload: bytes | None) -> None:
        behaviour = self.state.behaviour
        if behaviour == "silent" or payload is None:
            return
        data = write_frame(command, payload)
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
            return ok(f"{self.clock():{TIME_FORMAT}}")
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
            return "|".join(["OK", *(e if isinstance(e, str) else log_entry(e)
                                     for e in s.events)])
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


def encode_field(text: str) -> str:
    """``% | ; # = @`` and control characters as %XX (of their UTF-8 bytes: all ASCII)."""
    return _RESERVED.sub(lambda m: quote(m.group(), safe=""), text)


def log_entry(event: LogEntry) -> str:
    text = f"{event.at:{TIME_FORMAT}},{event.kind}" + (f",{event.detail}" if event.detail else "")
    return encode_field(text)


def ok(*fields: str) -> str:
    """``OK`` and the fields; in a ``key=value`` field the key and the value are encoded apart."""
    return "|".join(["OK", *("=".join(encode_field(p) for p in f.split("=", 1))
                             for f in fields)])


def err(code: str, message: str) -> str:
    return "|".join(["ER", encode_field(code), encode_field(message)])
