"""The `evidock` program's entry point (pyproject.toml, [project.scripts]).

Loading evidock is a fraction of a second of imports (the catalog's libraries are
loaded later, by the commands that use them). A Ctrl-C meanwhile ends the
program at once, as the signal's default action does (status 130 in the
shell): nothing has been done yet, and a KeyboardInterrupt traceback from the
middle of an import would only alarm. The same holds while typer builds the
commands and parses the arguments; once a command is invoked, Ctrl-C is
Python's again (cli.EvidockGroup.invoke): cli.py gives it exit code 130, and
`ingest` and the daemon stop cleanly on it.
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    usual = signal.signal(signal.SIGINT, signal.SIG_DFL)
    from agent.installed import SYSTEM_CONFIG
    from agent.roles import delegate

    delegate(sys.argv, SYSTEM_CONFIG)  # a role member on an installed station: via sudo
    from cli import main as evidock  # the heavy imports, under the default action

    evidock(sigint=usual)  # Python's Ctrl-C again once the command is invoked
