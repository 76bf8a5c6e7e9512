#!/usr/bin/env bash
# The main job on the embedded default (SQLite catalog + local store): builds a synthetic
# camera with real ffmpeg and offloads it. Data lands in ./demo-home unless EVIDOCK_HOME
# is set; the synthetic camera in ./demo-camera.
set -euo pipefail
cd "$(dirname "$0")/.."
EVIDOCK_MINIMAL="${EVIDOCK_MINIMAL:-1}" bash scripts/setup.sh
export EVIDOCK_HOME="${EVIDOCK_HOME:-$PWD/demo-home}"
camera="${DEMO_CAMERA:-$PWD/demo-camera}"
if [ ! -d "$camera" ]; then
  .venv/bin/python -m fixtures camera "$camera" --scheme A --serial ZFY0001 --officer 123456
fi
.venv/bin/evidock init
rc=0
.venv/bin/evidock ingest "$camera" --device ZFY0001 --officer 123456 || rc=$?
echo "demo: offload exit code $rc (0 = all ingested/duplicate, 1 = findings, 2 = fatal)"
echo "demo: catalog and store are in $EVIDOCK_HOME; run it again to see every file reported as duplicate"
exit "$rc"
