"""systemd drop-ins for a station of a site: exactly the network and paths it needs.

The shipped units allow no IP traffic at all and write only /var/lib/evidock. A station
whose catalog is on a site's PostgreSQL server, or whose vault is on a shared file
system, needs one server address and one folder more; `evidock config systemd` writes
them as drop-ins (``<unit>.d/50-evidock-site.conf``) made from the settings, so the
units themselves stay as shipped.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from agent.settings import Settings
from storage.errors import UsageError

DROPIN = "50-evidock-site.conf"
UNITS = ("evidock.service", "evidock-verify.service")
_STATE = Path("/var/lib/evidock")
_SOCKETS = Path("/run/postgresql")  # libpq's default socket folder on Debian
_RESOLV = Path("/etc/resolv.conf")


@dataclass(frozen=True)
class Needs:
    """What the settings make the service reach beyond the shipped units."""

    addresses: tuple[str, ...]  # IP addresses of the catalog's server
    resolvers: tuple[str, ...]  # name servers, when the server is named by a host name
    families: tuple[str, ...]  # AF_INET, AF_INET6
    sockets: tuple[Path, ...]  # a Unix socket folder of a server on this machine
    vault: Path | None  # a vault outside the state directory
    notes: tuple[str, ...]


def needs_of(settings: Settings) -> Needs:
    addresses: list[str] = []
    resolvers: list[str] = []
    sockets: list[Path] = []
    notes: list[str] = []
    url = settings.catalog_url
    if url.startswith(("postgresql", "postgres")):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or [""])[0]
        if not host or host.startswith("/"):
            sockets.append(Path(host) if host else _SOCKETS)
        else:
            addresses, named = _addresses(host, parts.port or 5432)
            if named:
                resolvers = _name_servers()
                notes.append(f"{host} resolved to {', '.join(addresses)} now; run this "
                             "again if its addresses change (or name the server by address)")
    vault = settings.vault_dir
    outside = None if vault.is_relative_to(_STATE) else vault
    families = sorted({"AF_INET6" if ":" in a else "AF_INET" for a in addresses + resolvers})
    return Needs(tuple(addresses), tuple(resolvers), tuple(families), tuple(sockets), outside,
                 tuple(notes))


def _addresses(host: str, port: int) -> tuple[list[str], bool]:
    try:
        return [str(ipaddress.ip_address(host))], False
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(f"the catalog's server {host} cannot be resolved here: {exc}") from exc
    return sorted({str(info[4][0]) for info in found}), True


def _name_servers() -> list[str]:
    try:
        lines = _RESOLV.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return sorted({line.split()[1] for line in lines
                   if line.startswith("nameserver") and len(line.split()) > 1})


def dropins(settings: Settings) -> dict[str, str]:
    """unit name -> drop-in text; empty when the shipped units need nothing more."""
    needs = needs_of(settings)
    head = ["# Made by `evidock config systemd` from the station's settings; made again",
            "# (not edited) when they change.", *(f"# {n}" for n in needs.notes), "[Service]"]
    network: list[str] = []
    if needs.addresses:
        network += [f"RestrictAddressFamilies={' '.join(needs.families)}",
                    f"IPAddressAllow={' '.join(needs.addresses + needs.resolvers)}"]
    network += [f"ReadWritePaths={folder}" for folder in needs.sockets]
    daemon = network + ([f"ReadWritePaths={needs.vault}"] if needs.vault else [])
    verify = (["PrivateNetwork=no"] if needs.addresses else []) + network
    return {unit: "\n".join(head + lines) + "\n"
            for unit, lines in ((UNITS[0], daemon), (UNITS[1], verify)) if lines}


def write_dropins(settings: Settings, root: Path) -> list[Path]:
    """Write the drop-ins under ``root`` (``/etc/systemd/system`` on a station)."""
    written = []
    for unit, text in dropins(settings).items():
        folder = root / f"{unit}.d"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / DROPIN).write_text(text, encoding="utf-8")
        written.append(folder / DROPIN)
    return written
