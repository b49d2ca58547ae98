#!/usr/bin/env bash
# Installs the Debian packages evidock needs that are missing.
#   system-deps.sh run    what `evidock demo` needs (ffmpeg)
#   system-deps.sh test   everything the test suite needs
set -euo pipefail
want=(ffmpeg)
if [ "${1:-run}" = test ]; then
    # e2fsprogs: ext4 images for fault tests; fiu-utils: fault injection;
    # mtools/dosfstools/fdisk: FAT32 recorder images; socat: pty pairs.
    want+=(e2fsprogs fiu-utils mtools dosfstools fdisk socat util-linux)
fi
missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
