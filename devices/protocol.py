"""The recorder command protocol (docs/recorder-protocol.md): frames and the client.

A frame is ``@CMD;LEN;PAYLOAD;#``: three capital letters, the payload's length
in bytes (decimal, at most 65535), the payload, and the terminator. A reply
carries the same command and a payload of ``OK[|field...]`` or
``ER|CODE|message``. Fields are ``key=value`` or bare values; ``% | ; # = @``
and control characters inside them are percent-encoded.

Payload text is UTF-8; a payload (or a percent-encoded field) that is not valid
UTF-8 is read as GBK, as some Chinese recorders send, and the client says so in
``RecorderClient.notices``; anything else is a ProtocolError.

The client never waits without a deadline: every command has a timeout (longer
for a reply that announces many bytes) and a bounded number of retries. Every
field of a reply is checked before it is returned, so a malformed reply is
always a ProtocolError and never an IndexError, KeyError or ValueError. A
failure of the link itself is LinkLost and is never retried.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import quote, unquote

from devices.errors import LinkLost, RecorderError
from storage.text import shown

log = logging.getLogger(__name__)

MAX_PAYLOAD = 65535
MAX_NOISE = 4096  # bytes of garbage tolerated before a frame starts
MAX_DRAIN = 65536 + 64  # bytes discarded after a garbled reply before giving up on draining
DRAIN_S = 1.0  # and the longest time spent draining
_START = re.compile(rb"@[A-Z]{3};")  # a frame has begun; from here on it must be well formed
_LENGTH = re.compile(rb"0|[1-9][0-9]{0,4}")
_SAFE = "!$&'()*+,-./:<>?[]^_`{}~ "  # everything else outside [A-Za-z0-9] is encoded
ENCODINGS = ("utf-8", "gbk")  # payload text, in the order tried

TIME_FORMAT = "%Y%m%dT%H%M%S"
_TIME = re.compile(r"[0-9]{8}T[0-9]{6}")
_NUMBER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")  # device and officer numbers
MAX_TEXT = 64  # name and unit fields
MAX_DETAIL = 200  # a log entry's detail
MAX_REJECTED = 200  # a rejected log entry, as shown
_KIND = re.compile(r"[a-z_]{1,32}")
EVENT_KINDS = ("power_on", "power_off", "record_start", "record_stop", "low_battery",
               "storage_full", "fault")
MAX_BYTES = (1 << 63) - 1  # storage sizes (they go into SQLite)
# Unicode categories refused in text fields: every C* (control, format, surrogate,
# private use, unassigned) and the line and paragraph separators.
_HIDDEN = ("C", "Zl", "Zp")


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
    """A field's percent-escapes undone: UTF-8 bytes, or GBK when they are not UTF-8."""
    return _decode_field(text)[0]


def _decode_field(text: str) -> tuple[str, str]:
    """(text, encoding of its percent-escapes); ProtocolError if neither encoding fits."""
    if "%" not in text:
        return text, "utf-8"
    for encoding in ENCODINGS:
        try:
            return unquote(text, encoding=encoding, errors="strict"), encoding
        except UnicodeDecodeError:
            continue
    raise ProtocolError(f"field {_q(text)} is percent-encoded neither as UTF-8 nor as GBK")


def decode_payload(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a payload: UTF-8, else GBK, else ProtocolError."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ProtocolError(f"frame payload is neither UTF-8 nor GBK ({len(data)} bytes)")


def frame(command: str, payload: str | bytes = "") -> bytes:
    """The bytes of one frame; a text payload is sent as UTF-8."""
    if not re.fullmatch(r"[A-Z]{3}", command):
        raise ValueError(f"bad command {command!r}")
    body = payload.encode("utf-8") if isinstance(payload, str) else payload
    if len(body) > MAX_PAYLOAD:
        raise ValueError("payload too long")
    return b"@%s;%d;%s;#" % (command.encode("ascii"), len(body), body)


class FrameReader:
    """Accumulates bytes and yields complete frames; skips noise before ``@``.

    ``@`` followed by three capital letters and ``;`` starts a frame; anything
    after that which is not a length of at most 65535 and ``;`` is a
    ProtocolError ("malformed header") at once, not a wait for more bytes.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.pending: int | None = None  # the announced length of a frame still arriving

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next_frame(self) -> tuple[str, str] | None:
        """(command, payload text) of the next complete frame, None if incomplete."""
        got = self.next_raw()
        if got is None:
            return None
        return got[0], decode_payload(got[1])[0]

    def next_raw(self) -> tuple[str, bytes] | None:
        """(command, payload bytes) of the next complete frame, None if incomplete."""
        self.pending = None
        while True:
            start = self.buffer.find(b"@")
            if start < 0:
                if len(self.buffer) > MAX_NOISE:
                    size = len(self.buffer)
                    self.buffer.clear()
                    raise ProtocolError(f"{size} bytes of noise and no frame")
                return None
            if start > MAX_NOISE:
                del self.buffer[:start]
                raise ProtocolError(f"{start} bytes of noise before a frame")
            del self.buffer[:start]
            if _START.match(self.buffer) is None:
                if len(self.buffer) < 5 and re.fullmatch(rb"@[A-Z]{0,3}", bytes(self.buffer)):
                    return None  # a frame start still arriving
                del self.buffer[:1]  # not a frame start: skip this "@"
                continue
            length = self._length()
            if length is None:
                return None  # the length field is still arriving
            head_end, size = length
            self.pending = size
            end = head_end + size
            if len(self.buffer) < end + 2:
                return None
            command = self.buffer[1:4].decode("ascii")
            if self.buffer[end:end + 2] != b";#":
                del self.buffer[:1]
                self.pending = None
                raise ProtocolError(
                    f"{command} frame announces {size} bytes but does not end with ;# there")
            payload = bytes(self.buffer[head_end:end])
            del self.buffer[:end + 2]
            self.pending = None
            return command, payload

    def _length(self) -> tuple[int, int] | None:
        """(end of the header, announced length); None if incomplete; ProtocolError if bad."""
        rest = bytes(self.buffer[5:12])
        semi = rest.find(b";")
        if semi < 0:
            if not rest or (len(rest) <= 5 and rest.isdigit()):
                return None
            digits = rest
        else:
            digits = rest[:semi]
            if _LENGTH.fullmatch(digits):
                size = int(digits)
                if size > MAX_PAYLOAD:
                    del self.buffer[:1]
                    raise ProtocolError(
                        f"frame announces {size} bytes, more than {MAX_PAYLOAD}")
                return 5 + semi + 1, size
        command = self.buffer[1:4].decode("ascii")
        del self.buffer[:1]
        raise ProtocolError(f"malformed header: {command} frame with length field "
                            f"{_q(digits.decode('latin-1'))}")


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
    #            storage_full, fault, or another [a-z_]{1,32} kept as it is
    detail: str = ""


@dataclass(frozen=True)
class DeviceLog:
    """The recorder's event log: the entries that could be read, and the others as text.

    ``rejected`` holds each unusable entry escaped for display (at most 200
    characters). Iterating a DeviceLog iterates ``events`` (as the list that
    ``events()`` used to return did); it has no length, so it is always truthy.
    """

    events: tuple[DeviceEvent, ...] = ()
    rejected: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[DeviceEvent]:
        return iter(self.events)


@dataclass(frozen=True)
class StorageInfo:
    free: int
    total: int


class RecorderClient:
    """Commands to one recorder over a Link, each with a deadline and bounded retries.

    The deadline of a reply is ``timeout`` after the request; once the reply's
    header announces N bytes it is at least ``timeout + N * 10 / baudrate * 1.5``
    (10 bits a byte on the wire, half as much again for slack).
    """

    def __init__(self, link: Link, *, timeout: float = 2.0, retries: int = 2,
                 baudrate: int = 115200, monotonic: Callable[[], float] = time.monotonic):
        if baudrate <= 0:
            raise ValueError("baudrate must be positive")
        self.link = link
        self.timeout = timeout
        self.retries = retries
        self.baudrate = baudrate
        self.monotonic = monotonic
        self.reader = FrameReader()
        self.notices: list[str] = []  # remarks on replies that were read all the same (GBK)

    def deadline_for(self, length: int) -> float:
        """Seconds a reply announcing ``length`` payload bytes may take from the request."""
        return max(self.timeout, self.timeout + length * 10 / self.baudrate * 1.5)

    def call(self, command: str, payload: str = "") -> list[str]:
        """Send one command; return the reply's fields after ``OK``, percent-decoded."""
        request = frame(command, payload)
        last: ProtocolError | None = None
        for _attempt in range(self.retries + 1):
            self.reader = FrameReader()  # a retry starts clean
            self._write(request)
            try:
                return self._reply(command)
            except RecorderTimeout as exc:
                last = exc
            except ProtocolError as exc:
                last = exc
                self._drain()
        assert last is not None
        raise type(last)(f"{command}: {last} (after {self.retries + 1} attempts)")

    def _write(self, data: bytes) -> None:
        try:
            self.link.write(data)
        except RecorderError:
            raise
        except OSError as exc:  # a Link that does not translate its own failures
            raise LinkLost(f"write failed: {exc}") from exc

    def _read(self, timeout: float) -> bytes:
        try:
            return self.link.read(4096, timeout)
        except RecorderError:
            raise
        except OSError as exc:
            raise LinkLost(f"read failed: {exc}") from exc

    def _drain(self) -> None:
        """Discard what is left of a garbled reply before sending again (bounded)."""
        until = self.monotonic() + DRAIN_S
        dropped = 0
        while dropped < MAX_DRAIN and self.monotonic() < until:
            got = self._read(0.05)
            if not got:
                return
            dropped += len(got)

    def _reply(self, command: str) -> list[str]:
        started = self.monotonic()
        deadline = started + self.timeout
        while True:
            got = self.reader.next_raw()
            if got is not None:
                name, data = got
                if name != command:
                    raise ProtocolError(f"asked {command}, recorder answered {name}")
                text, encoding = decode_payload(data)
                if encoding != "utf-8":
                    self._notice(f"{command}: the reply is not UTF-8; read as {encoding.upper()}")
                return self._fields(command, text)
            if self.reader.pending is not None:
                deadline = max(deadline, started + self.deadline_for(self.reader.pending))
            left = deadline - self.monotonic()
            if left <= 0:
                buffered = len(self.reader.buffer)
                partial = f" ({buffered} bytes of a partial reply)" if buffered else ""
                raise RecorderTimeout(
                    f"no reply within {deadline - started:.3g} s{partial}")
            self.reader.feed(self._read(left))

    def _notice(self, text: str) -> None:
        log.info("%s", text)
        if text not in self.notices:
            self.notices.append(text)

    def _fields(self, command: str, payload: str) -> list[str]:
        parts = payload.split("|")
        head, raw = parts[0], parts[1:]
        if head == "OK":
            if command == "LOG":
                return raw  # entries are decoded one by one (events())
            return [self._field(command, p) for p in raw]
        if head == "ER":
            if not raw or not raw[0]:
                raise ProtocolError(f"{command}: ER reply without a code: {_q(payload)}")
            fields = [self._field(command, p) for p in raw]
            code, message = shown(fields[0], 32), shown(" ".join(fields[1:]), 200)
            if code == "AUTH":
                raise AuthError(command, code, message)
            raise RecorderRefused(command, code, message)
        raise ProtocolError(f"{command}: reply is neither OK nor ER: {_q(payload)}")

    def _field(self, command: str, raw: str) -> str:
        try:
            text, encoding = _decode_field(raw)
        except ProtocolError as exc:
            raise ProtocolError(f"{command}: {exc}") from None
        if encoding != "utf-8":
            self._notice(f"{command}: a field is not UTF-8; read as {encoding.upper()}")
        return text

    # The operations ------------------------------------------------------

    def authenticate(self, password: str) -> None:
        self.call("ATH", password)

    def version(self) -> str:
        fields = self.call("VER")
        version = _one(fields, "VER", "a version")
        return _text(version, "VER", "version", required=True, slash=True)

    def identity(self) -> RecorderIdentity:
        fields = _pairs(self.call("GID"), "GID")
        for key in ("device", "officer"):
            if key not in fields:
                raise ProtocolError(f"GID: identity lacks {key}= (reply fields: "
                                    f"{_q(', '.join(fields))})")
        return RecorderIdentity(
            device=_number_id(fields["device"], "device"),
            officer=_number_id(fields["officer"], "officer"),
            officer_name=_text(fields.get("name", ""), "GID", "name"),
            unit_no=_text(fields.get("unit_no", ""), "GID", "unit_no"),
            unit_name=_text(fields.get("unit_name", ""), "GID", "unit_name"))

    def clock(self) -> datetime:
        return _time(_one(self.call("GTM"), "GTM", "a time"), "GTM")

    def set_clock(self, moment: datetime) -> None:
        self.call("STM", f"{moment:{TIME_FORMAT}}")

    def battery(self) -> int:
        value = _int(_one(self.call("BAT"), "BAT", "a percentage"), "BAT", "battery")
        if not 0 <= value <= 100:
            raise ProtocolError(f"BAT: {value} is not a percentage (0-100)")
        return value

    def storage(self) -> StorageInfo:
        fields = _pairs(self.call("STO"), "STO")
        for key in ("free", "total"):
            if key not in fields:
                raise ProtocolError(f"STO: reply lacks {key}=")
        free, total = (_int(fields[k], "STO", k) for k in ("free", "total"))
        if free > total:
            raise ProtocolError(f"STO: free {free} is more than total {total}")
        return StorageInfo(free, total)

    def events(self) -> DeviceLog:
        """The log; an unusable entry is set aside in ``rejected``, the others are kept."""
        kept: list[DeviceEvent] = []
        rejected: list[str] = []
        for raw in self.call("LOG"):
            if raw == "":
                continue  # an empty log may be sent as "OK|"
            try:
                kept.append(self._event(raw))
            except ProtocolError as exc:
                rejected.append(shown(f"{raw} ({exc})", MAX_REJECTED))
        return DeviceLog(tuple(kept), tuple(rejected))

    def _event(self, raw: str) -> DeviceEvent:
        item = self._field("LOG", raw)
        at, _, rest = item.partition(",")
        kind, _, detail = rest.partition(",")
        if not _KIND.fullmatch(kind):
            raise ProtocolError(f"kind {_q(kind)} is not [a-z_]{{1,32}}")
        if len(detail) > MAX_DETAIL:
            raise ProtocolError(f"detail longer than {MAX_DETAIL} characters")
        if _bad_char(detail):
            raise ProtocolError("detail has a control character")
        return DeviceEvent(_time(at, "LOG"), kind, detail)

    def mass_storage(self) -> None:
        self.call("MSC")

    def clear(self) -> int:
        """Delete the recordings on the device (only after they are verified in the vault)."""
        return _int(_one(self.call("CLR"), "CLR", "a count"), "CLR", "count")


def _q(text: str, limit: int = 80) -> str:
    """Text from the recorder, quoted and escaped for an error message."""
    return f"'{shown(text, limit)}'"


def _bad_char(text: str) -> bool:
    return any(unicodedata.category(c).startswith(_HIDDEN) for c in text)


def _one(fields: list[str], command: str, what: str) -> str:
    if not fields:
        raise ProtocolError(f"{command}: reply has no value (expected {what}): a bare OK")
    return fields[0]


def _pairs(fields: list[str], command: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in fields:
        if "=" not in f:
            continue  # bare values are not part of these replies; extra ones are ignored
        key, value = f.split("=", 1)
        if key in out:
            raise ProtocolError(f"{command}: field {_q(key)} given twice")
        out[key] = value
    return out


def _number_id(value: str, what: str) -> str:
    if not _NUMBER_ID.fullmatch(value):
        raise ProtocolError(f"GID: {what} {_q(value)} is not 1-32 characters of [A-Za-z0-9_-]")
    return value


def _text(value: str, command: str, what: str, *, required: bool = False,
          slash: bool = False) -> str:
    """A name, unit or version: at most 64 characters, no control character, no '/'."""
    if required and not value:
        raise ProtocolError(f"{command}: {what} is empty")
    if len(value) > MAX_TEXT:
        raise ProtocolError(f"{command}: {what} is longer than {MAX_TEXT} characters: "
                            f"{_q(value)}")
    if ("/" in value and not slash) or _bad_char(value):
        refused = "a control character" if slash else "a control character or '/'"
        raise ProtocolError(f"{command}: {what} {_q(value)} has {refused}")
    return value


def _int(text: str, command: str, what: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", text):
        raise ProtocolError(f"{command}: {what} {_q(text)} is not a whole number")
    value = int(text)
    if value > MAX_BYTES:
        raise ProtocolError(f"{command}: {what} {value} is too large")
    return value


def _time(text: str, command: str) -> datetime:
    if _TIME.fullmatch(text):
        try:
            return datetime.strptime(text, TIME_FORMAT)
        except ValueError:
            pass
    raise ProtocolError(f"{command}: {_q(text)} is not a time (YYYYMMDDTHHMMSS)")
