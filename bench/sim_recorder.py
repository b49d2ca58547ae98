"""One simulated recorder in a process of its own, as a real recorder is a device of its
own (in the daemon's process its protocol thread would wait for the daemon's docks to let
go of the interpreter, which no real recorder does).

Prints "ready" once made; on a line "plug" from stdin, plugs into the simulated bus and
prints the monotonic time it did (the system's clock, the same in every process); when
stdin closes, unplugs and ends.
Usage: python bench/sim_recorder.py BUS VOLUME DEVICE USB_SERIAL
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).parents[1]))

from devices.simbus import SimulatedDock
from devices.simulator import SimIdentity, SimState, SimulatedRecorder


def main() -> None:
    bus, volume, device, usb_serial = sys.argv[1:5]
    state = SimState(identity=SimIdentity(device=device))
    dock = SimulatedDock(Path(bus), SimulatedRecorder(Path(volume), state,
                                                      zone=ZoneInfo("Asia/Shanghai")),
                         usb_serial)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "plug":
        return
    at = time.monotonic()
    dock.plug()
    print(at, flush=True)
    sys.stdin.read()
    dock.unplug()


if __name__ == "__main__":
    main()
