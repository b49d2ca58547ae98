#!/usr/bin/env bash
# Installs the Debian packages evidock needs that are missing.
#   system-deps.sh run    what `make demo` needs: python3-venv, ffmpeg
#   system-deps.sh export also what `evidock export` needs (the PDF and the disc image)
#   system-deps.sh test   also what the test suite needs (export included)
set -euo pipefail
want=(ffmpeg)
python3 -c 'import ensurepip, venv' 2>/dev/null || want+=(python3-venv)
if [ "${1:-run}" = export ] || [ "${1:-run}" = test ]; then
    # Pango and HarfBuzz: WeasyPrint's text layout (description.pdf); a CJK font, named
    # in the description's CSS, or the Chinese headings print as empty boxes; xorriso:
    # `evidock export --iso` (an ISO 9660 image with Rock Ridge and Joliet names);
    # fontconfig: fc-list, with which export checks a Chinese font is there.
    want+=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-wqy-zenhei xorriso
           fontconfig)
fi
if [ "${1:-run}" = test ]; then
    # poppler-utils: pdftotext reads the description PDF back in the export tests.
    want+=(poppler-utils)
    # util-linux: mount, losetup, partx; mtools, dosfstools, fdisk: FAT32 recorder
    # images; fusefat: mounting them without a kernel vfat driver; udev: real
    # uevents; umockdev + gir: faked USB devices; the -dev packages, pkg-config
    # and gcc build PyGObject for the umockdev tests; systemd: systemd-analyze.
    want+=(util-linux e2fsprogs mtools dosfstools fdisk fusefat fuse3 udev systemd
           umockdev gir1.2-umockdev-1.0 libgirepository1.0-dev libcairo2-dev pkg-config
           gcc)
    # postgresql: the site catalog tests start a real server (initdb, pg_ctl) of their own.
    want+=(postgresql)
    python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(
        os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || want+=(python3-dev)
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
