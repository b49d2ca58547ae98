"""The recorder command protocol (docs/recorder-protocol.md): frames and the client.

A frame is ``@CMD;LEN;PAYLOAD;#``: three capital letters, the payload's length
in bytes (decimal), the payload (UTF-8), and the terminator. A reply carries
the same command and a payload of ``OK[|field...]`` or ``ER|CODE|message``.
Fields are ``key=value`` or bare values; ``% | ; # = @`` and control
characters inside them are percent-encoded.

The client never waits without a deadline: every command has a timeout and a
bounded number of retries, and anything malformed is a clear ProtocolError.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import quote, unquote

from devices.errors import RecorderError

MAX_PAYLOAD = 65535
MAX_NOISE = 4096  # bytes of garbage tolerated before a frame starts
_HEAD = re.compile(rb"@([A-Z]{3});(0|[1-9][0-9]{0,4});")
_SAFE = "!$&'()*+,-./:<>?[]^_`{}~ "  # everything else outside [A-Za-z0-9] is encoded


class ProtocolError(RecorderError):
    """The recorder's reply was malformed, garbled or missing."""


class RecorderTimeout(ProtocolError):
    """The recorder did not answer within the timeout, after every retry."""


class RecorderRefused(RecorderError):
    """The recorder answered with an error (``ER|CODE|message``)."""

    def __init__(self, command: str, code: str, message: str):
        super().__init__(f"recorder refused {command}: {code} {message}".strip())
        self.code = code


class AuthError(RecorderRefused):
    """The password was wrong."""


def encode_field(text: str) -> str:
    return quote(text, safe=_SAFE)


def decode_field(text: str) -> str:
    return unquote(text, errors="strict")


def frame(command: str, payload: str = "") -> bytes:
    if not re.fullmatch(r"[A-Z]{3}", command):
        raise ValueError(f"bad command {command!r}")
    body = payload.encode("utf-8")
    if len(body) > MAX_PAYLOAD:
        raise ValueError("payload too long")
    return b"@%s;%d;%s;#" % (command.encode("ascii"), len(body), body)


class FrameReader:
    """Accumulates bytes and yields complete frames; skips noise before ``@``."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next_frame(self) -> tuple[str, str] | None:
        """(command, payload) of the next complete frame, None if incomplete."""
        while True:
            start = self.buffer.find(b"@")
            if start < 0:
                if len(self.buffer) > MAX_NOISE:
                    raise ProtocolError(f"{len(self.buffer)} bytes of noise and no frame")
                return None
            if start > MAX_NOISE:
                raise ProtocolError(f"{start} bytes of noise before a frame")
            del self.buffer[:start]
            head = _HEAD.match(self.buffer)
            if head is None:
                if len(self.buffer) < 12 and re.fullmatch(rb"@[A-Z]{0,3}(;[0-9]{0,5})?",
                                                          bytes(self.buffer)):
                    return None  # a header still arriving
                del self.buffer[:1]  # not a frame start: skip this "@"
                continue
            command = head.group(1).decode("ascii")  # before the buffer changes under it
            length = int(head.group(2))
            end = head.end() + length
            if len(self.buffer) < end + 2:
                return None
            if self.buffer[end:end + 2] != b";#":
                del self.buffer[:1]
                raise ProtocolError("frame length does not match its terminator")
            try:
                payload = bytes(self.buffer[head.end():end]).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError("frame payload is not UTF-8") from exc
            finally:
                del self.buffer[:end + 2]
            return command, payload


class Link(Protocol):
    """A byte link to a recorder (a serial port, a pty, a socket)."""

    def write(self, data: bytes) -> None: ...
    def read(self, size: int, timeout: float) -> bytes: ...  # b"" on timeout
    def close(self) -> None: ...


@dataclass(frozen=True)
class RecorderIdentity:
    device: str
    officer: str
    officer_name: str
    unit_no: str
    unit_name: str


@dataclass(frozen=True)
class DeviceEvent:
    at: datetime  # the recorder's own clock (naive: recorder local time)
    kind: str  # power_on, power_off, record_start, record_stop, low_battery,
    #            storage_full, fault
    detail: str = ""


@dataclass(frozen=True)
class StorageInfo:
    free: int
    total: int


TIME_FORMAT = "%Y%m%dT%H%M%S"


class RecorderClient:
    """Commands to one recorder over a Link, each with a deadline and bounded retries."""

    def __init__(self, link: Link, *, timeout: float = 2.0, retries: int = 2,
                 monotonic: Callable[[], float] = time.monotonic):
        self.link = link
        self.timeout = timeout
        self.retries = retries
        self.monotonic = monotonic
        self.reader = FrameReader()

    def call(self, command: str, payload: str = "") -> list[str]:
        """Send one command; return the reply's fields after ``OK``."""
        request = frame(command, payload)
        last: ProtocolError | None = None
        for _attempt in range(self.retries + 1):
            self.reader = FrameReader()  # a retry starts clean
            self.link.write(request)
            try:
                return self._reply(command)
            except RecorderTimeout as exc:
                last = exc
            except ProtocolError as exc:
                last = exc
                self._drain()
        assert last is not None
        raise type(last)(f"{command}: {last} (after {self.retries + 1} attempts)")

    def _drain(self) -> None:
        """Discard what is left of a garbled reply before sending again."""
        while self.link.read(4096, 0.05):
            continue

    def _reply(self, command: str) -> list[str]:
        deadline = self.monotonic() + self.timeout
        while True:
            got = self.reader.next_frame()
            if got is not None:
                name, payload = got
                if name != command:
                    raise ProtocolError(f"asked {command}, recorder answered {name}")
                return self._fields(command, payload)
            left = deadline - self.monotonic()
            if left <= 0:
                partial = f" ({len(self.reader.buffer)} bytes of a partial reply)" if (
                    self.reader.buffer) else ""
                raise RecorderTimeout(f"no reply within {self.timeout:g} s{partial}")
            self.reader.feed(self.link.read(4096, left))

    @staticmethod
    def _fields(command: str, payload: str) -> list[str]:
        parts = payload.split("|")
        try:
            fields = [decode_field(p) for p in parts[1:]]
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{command}: badly encoded field") from exc
        if parts[0] == "OK":
            return fields
        if parts[0] == "ER" and fields:
            code, message = fields[0], " ".join(fields[1:])
            if code == "AUTH":
                raise AuthError(command, code, message)
            raise RecorderRefused(command, code, message)
        raise ProtocolError(f"{command}: reply is neither OK nor ER: {payload[:40]!r}")

    # The operations ------------------------------------------------------

    def authenticate(self, password: str) -> None:
        self.call("ATH", password)

    def version(self) -> str:
        return self.call("VER")[0]

    def identity(self) -> RecorderIdentity:
        fields = _pairs(self.call("GID"))
        try:
            return RecorderIdentity(fields["device"], fields["officer"], fields.get("name", ""),
                                    fields.get("unit_no", ""), fields.get("unit_name", ""))
        except KeyError as exc:
            raise ProtocolError(f"GID: identity lacks {exc}") from exc

    def clock(self) -> datetime:
        return _time(self.call("GTM")[0])

    def set_clock(self, moment: datetime) -> None:
        self.call("STM", moment.strftime(TIME_FORMAT))

    def battery(self) -> int:
        value = _int(self.call("BAT")[0], "BAT")
        if not 0 <= value <= 100:
            raise ProtocolError(f"BAT: {value} is not a percentage")
        return value

    def storage(self) -> StorageInfo:
        fields = _pairs(self.call("STO"))
        free, total = (_int(fields.get(k, ""), "STO") for k in ("free", "total"))
        return StorageInfo(free, total)

    def events(self) -> list[DeviceEvent]:
        out = []
        for item in self.call("LOG"):
            at, _, rest = item.partition(",")
            kind, _, detail = rest.partition(",")
            if not kind:
                raise ProtocolError(f"LOG: bad entry {item!r}")
            out.append(DeviceEvent(_time(at), kind, detail))
        return out

    def mass_storage(self) -> None:
        self.call("MSC")

    def clear(self) -> int:
        """Delete the recordings on the device (only after they are verified in the vault)."""
        return _int(self.call("CLR")[0], "CLR")


def _pairs(fields: list[str]) -> dict[str, str]:
    return dict(f.split("=", 1) for f in fields if "=" in f)


def _int(text: str, command: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ProtocolError(f"{command}: {text!r} is not a number") from exc


def _time(text: str) -> datetime:
    try:
        return datetime.strptime(text, TIME_FORMAT)
    except ValueError as exc:
        raise ProtocolError(f"{text!r} is not a time ({TIME_FORMAT})") from exc
