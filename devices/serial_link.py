"""A Link over a serial port or pseudo-terminal (the only module importing pyserial)."""

from __future__ import annotations

import serial

from devices.errors import RecorderError


class SerialLink:
    def __init__(self, port: str, baudrate: int = 115200):
        try:
            self.port = serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=2,
                                      exclusive=True)
        except (serial.SerialException, OSError) as exc:
            raise RecorderError(f"cannot open serial port {port}: {exc}") from exc
        self.name = port

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise RecorderError(f"{self.name}: write failed: {exc}") from exc

    def read(self, size: int, timeout: float) -> bytes:
        """Whatever arrives within ``timeout`` (at most ``size`` bytes); b"" if nothing."""
        try:
            self.port.timeout = max(timeout, 0.0)
            first: bytes = self.port.read(1)
            if not first:
                return b""
            rest: bytes = self.port.read(min(self.port.in_waiting, size - 1))
        except (serial.SerialException, OSError) as exc:
            raise RecorderError(f"{self.name}: read failed (recorder unplugged?): {exc}") from exc
        return first + rest

    def close(self) -> None:
        self.port.close()
