"""Where an installed station keeps things (scripts/install.sh), for the first imports."""

from pathlib import Path

#: The settings of an installed station, read when no other file is named.
SYSTEM_CONFIG = Path("/etc/evidock/evidock.toml")
#: The command the units run and the sudoers rule allows (so the one delegation runs).
INSTALLED_COMMAND = "/usr/local/bin/evidock"
