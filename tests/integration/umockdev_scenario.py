"""Run under umockdev-wrapper by test_discovery.py: udev events for faked USB devices.

Prints one JSON list of the dock events UdevDiscovery emitted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[2]))
from devices.events import DockEvent, ModelIds  # noqa: E402
from devices.udev import UdevDiscovery  # noqa: E402

DATA = Path(__file__).parents[1] / "data"
MODELS = [ModelIds("sim-serial", "1209", "e5d1"), ModelIds("sim-storage", "1209", "e5d2")]
PARTITION = ("/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/"
             "6:0:0:0/block/sdb/sdb1")
TTY = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/tty/ttyACM0"
STICK = ("/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/host7/target7:0:0/"
         "7:0:0:0/block/sdc/sdc1")


def settle() -> None:
    time.sleep(0.4)


def main() -> None:
    bed = UMockdev.Testbed.new()
    events: list[list[str | None]] = []

    def record(event: DockEvent) -> None:
        info = event.info
        events.append([type(event).__name__, info.model, info.usb_serial,
                       info.tty or info.block_device, info.fs_type])

    # Plugged in before the daemon starts: a recorder and a USB stick.
    bed.add_from_string((DATA / "recorder-storage.umockdev").read_text())
    bed.add_from_string((DATA / "usb-stick.umockdev").read_text())
    discovery = UdevDiscovery(MODELS)
    discovery.start(record)
    events.append(["started"])
    settle()
    # Hot-plugged afterwards: a recorder with a CDC-ACM command port.
    bed.add_from_string((DATA / "recorder-serial.umockdev").read_text())
    bed.uevent(TTY, "add")
    settle()
    bed.uevent(PARTITION, "change")  # e.g. media change: must not dock it twice
    bed.uevent(STICK, "add")  # not a recorder
    settle()
    bed.uevent(PARTITION, "remove")
    bed.uevent(TTY, "remove")
    settle()
    discovery.stop()
    print(json.dumps(events))


if __name__ == "__main__":
    main()
