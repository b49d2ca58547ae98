#!/usr/bin/env bash
# Remove the evidock program from a docking station, as root (`make uninstall`).
#
#   scripts/uninstall.sh [--prefix /opt/evidock]
#
# Stops and removes the units, the udev and polkit rules, /usr/local/bin/evidock
# and PREFIX. The evidence stays: /var/lib/evidock (catalog, vault, key), the
# settings in /etc/evidock, the service user and the groups that own them.
set -euo pipefail
prefix=/opt/evidock
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        *) echo "uninstall.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root (sudo make uninstall)" >&2; exit 2; }
units=(evidock.service evidock-verify.service evidock-verify.timer)
if [ -d /run/systemd/system ]; then
    systemctl disable --now "${units[@]}" 2>/dev/null || true  # (some may not be enabled)
fi
for unit in "${units[@]}"; do rm -f "/etc/systemd/system/$unit"; done
[ -d /run/systemd/system ] && systemctl daemon-reload
rm -f /etc/udev/rules.d/70-evidock.rules /etc/polkit-1/rules.d/50-evidock.rules \
    /etc/sudoers.d/evidock
udevadm control --reload 2>/dev/null || true  # (udevd may not run)
if [ "$(readlink /usr/local/bin/evidock 2>/dev/null)" = "$prefix/bin/evidock" ]; then
    rm -f /usr/local/bin/evidock
fi
rm -rf "$prefix"
echo "evidock uninstall: the program is gone; kept: /var/lib/evidock (the evidence)," \
     "/etc/evidock (the settings), the user evidock and the evidock-* groups"
