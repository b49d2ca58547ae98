#!/usr/bin/env bash
# Install evidock as a docking station on Debian 12, as root (`make install`).
#
#   scripts/install.sh [--prefix /opt/evidock] [--no-enable]
#
# Installs the Debian packages it needs, evidock into its own environment
# (PREFIX, default /opt/evidock) with `evidock` on PATH as /usr/local/bin/evidock
# (where the units expect it), the service user `evidock` and the role groups,
# the systemd units, the udev rules, the polkit rule that lets the service mount
# recorders through udisks2, and a commented /etc/evidock/evidock.toml that must
# be filled in (agency, station_id, timezone) before the daemon starts. Then it
# enables the service (it starts once the settings are filled: see the last lines
# it prints). Running it again upgrades evidock and keeps the settings and the
# evidence. scripts/uninstall.sh removes the program and leaves the evidence.
set -euo pipefail
umask 022  # the program and units readable by all; the settings and store set their own

prefix=/opt/evidock
enable=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --no-enable) enable=no; shift ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo make install)" >&2; exit 2; }
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf 'evidock install: %s\n' "$*"; }

# 1. Debian packages: Python's venv, ffmpeg (probing), udisks2 and polkit (mounting
#    recorders as the service user), and what export needs (PDF, disc image).
"$source_dir/scripts/system-deps.sh" export
missing=()
# Debian's own Python (not one in a user's home, which the service could not run).
python=/usr/bin/python3
for pkg in python3 python3-venv udisks2 polkitd sudo; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The program, in its own environment; /usr/local/bin/evidock points at it.
say "installing evidock into $prefix"
[ -x "$prefix/bin/python" ] || "$python" -m venv "$prefix"
"$prefix/bin/pip" install -q --upgrade pip
"$prefix/bin/pip" install -q --upgrade "$source_dir[export,report,postgres]"  # exports, reports, a site catalog
ln -sfn "$prefix/bin/evidock" /usr/local/bin/evidock

# 3. The service user and the role groups (names as in the settings' defaults).
for group in evidock evidock-officer evidock-custodian evidock-supervisor evidock-admin; do
    getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! getent passwd evidock >/dev/null; then
    useradd --system --gid evidock --groups dialout --home-dir /var/lib/evidock \
        --no-create-home --shell /usr/sbin/nologin --comment "evidock docking station" evidock
fi
install -d -o evidock -g evidock -m 0750 /var/lib/evidock

# 4. The settings: written once, never overwritten; readable by the service only.
install -d -o root -g evidock -m 0750 /etc/evidock
if [ ! -e /etc/evidock/evidock.toml ]; then
    install -o root -g evidock -m 0640 "$source_dir/systemd/evidock.toml" \
        /etc/evidock/evidock.toml
    say "wrote /etc/evidock/evidock.toml: fill in agency, station_id and timezone"
fi

# 5. Delegation (agent/roles.py): members of the role groups run exactly this command as
#    the service user, which checks their role; nothing else.
cat > /etc/sudoers.d/evidock.new <<'SUDOERS'
# evidock (scripts/install.sh): people in the role groups use the station through
# evidock, run as the service user; evidock checks each one's role (R12).
%evidock-officer,%evidock-custodian,%evidock-supervisor,%evidock-admin ALL=(evidock) NOPASSWD: /usr/local/bin/evidock
SUDOERS
chmod 0440 /etc/sudoers.d/evidock.new
visudo -cqf /etc/sudoers.d/evidock.new
mv /etc/sudoers.d/evidock.new /etc/sudoers.d/evidock

# 6. Units, udev rules, polkit rule.
install -m 0644 "$source_dir/systemd/evidock.service" "$source_dir/systemd/evidock-verify.service" \
    "$source_dir/systemd/evidock-verify.timer" /etc/systemd/system/
/usr/local/bin/evidock --config /etc/evidock/evidock.toml udev-rules \
    > /etc/udev/rules.d/70-evidock.rules.new
chmod 0644 /etc/udev/rules.d/70-evidock.rules.new
mv /etc/udev/rules.d/70-evidock.rules.new /etc/udev/rules.d/70-evidock.rules
install -d -m 0755 /etc/polkit-1/rules.d
install -m 0644 "$source_dir/systemd/50-evidock.rules" /etc/polkit-1/rules.d/50-evidock.rules

# 7. Enable (systemd and udevd are told only where they run: not in a container).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    [ "$enable" = yes ] && systemctl enable evidock.service evidock-verify.timer
else
    say "systemd is not running here: enable later with" \
        "systemctl enable --now evidock.service evidock-verify.timer"
fi
if udevadm control --reload 2>/dev/null; then :; else say "udevd is not running: rules load at its start"; fi

say "done. Next: edit /etc/evidock/evidock.toml (agency, station_id, timezone), then"
say "  systemctl start evidock.service && evidock status"
say "People: adduser NAME evidock-officer | evidock-custodian | evidock-supervisor | evidock-admin"
say "  (and, for an officer, evidock officer add NO --name ... --login NAME --by ...)"
