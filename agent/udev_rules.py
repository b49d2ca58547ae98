"""udev rules for the configured recorder models (`evidock udev-rules`)."""

from __future__ import annotations

from agent.settings import RecorderModel

HEADER = """\
# evidock: recorders this station ingests. Made by `evidock udev-rules` from the
# `models` in evidock.toml; install as /etc/udev/rules.d/70-evidock.rules and
# run `udevadm control --reload` after changing the models.
#
# For each model, on the USB device and everything below it (tty, disk, partition):
#   TAG+="evidock"              lets `udevadm info --tagged` and systemd find them;
#   ID_MM_DEVICE_IGNORE="1"     keeps ModemManager from probing the command port
#                               with AT commands while evidock talks to it;
#   GROUP="dialout", MODE="0660" lets the evidock user (in dialout) open the port.
ACTION=="remove", GOTO="evidock_end"
"""


def udev_rules(models: list[RecorderModel]) -> str:
    lines = [HEADER]
    for model in models:
        match = (f'SUBSYSTEMS=="usb", ATTRS{{idVendor}}=="{model.usb_vendor}", '
                 f'ATTRS{{idProduct}}=="{model.usb_product}"')
        lines.append(f"# {model.name} ({model.transport})")
        lines.append(f'{match}, TAG+="evidock", ENV{{ID_MM_DEVICE_IGNORE}}="1"')
        if model.transport == "serial":
            lines.append(f'SUBSYSTEM=="tty", {match}, GROUP="dialout", MODE="0660"')
    lines.append('LABEL="evidock_end"')
    return "\n".join(lines) + "\n"
