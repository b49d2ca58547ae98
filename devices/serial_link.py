"""A Link over a serial port or pseudo-terminal (the only module importing pyserial).

Failures of the link itself once it is open (the recorder unplugged, the port
vanished, a write or read refused by the OS, termios or pyserial) are LinkLost:
no later command on this link can work. Opening a port that cannot be opened
(it does not exist, it is busy) is a plain RecorderError naming the port.
"""

from __future__ import annotations

import termios

import serial

from devices.errors import LinkLost, RecorderError

# A vanished port can fail in pyserial itself, in the OS, or in termios (when the
# port is reconfigured for a new timeout); termios.error is not an OSError.
_LINK_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialLink:
    def __init__(self, port: str, baudrate: int = 115200):
        try:
            self.port = serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=2,
                                      exclusive=True)
        except _LINK_ERRORS as exc:
            raise RecorderError(f"cannot open serial port {port}: {exc}") from exc
        self.name = port
        self.baudrate = baudrate

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except _LINK_ERRORS as exc:
            raise LinkLost(f"{self.name}: write failed (recorder unplugged?): {exc}") from exc

    def read(self, size: int, timeout: float) -> bytes:
        """Whatever arrives within ``timeout`` (at most ``size`` bytes); b"" if nothing."""
        try:
            self.port.timeout = max(timeout, 0.0)
            first: bytes = self.port.read(1)
            if not first:
                return b""
            rest: bytes = self.port.read(min(self.port.in_waiting, size - 1))
        except _LINK_ERRORS as exc:
            raise LinkLost(f"{self.name}: read failed (recorder unplugged?): {exc}") from exc
        return first + rest

    def close(self) -> None:
        try:
            self.port.close()
        except _LINK_ERRORS:  # the port is gone already: nothing left to release
            return
