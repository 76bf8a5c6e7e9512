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
[ "$rc" -le 1 ] || exit "$rc"

# A case, a linked clip, an export request approved by a second person, the package
# written and verified offline. DEMO ONLY: trust_env_user lets EVIDOCK_USER pick the
# user; a station maps OS accounts to users in [[access.users]] instead.
export EVIDOCK_ACCESS__TRUST_ENV_USER=true
export EVIDOCK_ACCESS__USERS='[{name="clerk", display="文书", roles=["clerk"]}, {name="inspector", display="督察", roles=["inspector"]}, {name="legal", display="法制审核", roles=["legal_reviewer"]}]'
ev() { who=$1; shift; EVIDOCK_USER=$who .venv/bin/evidock "$@"; }
json() { .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)$1)"; }
number="演示城管罚〔2026〕第001号"
ev clerk case show "$number" >/dev/null 2>&1 ||
  ev clerk case create "$number" --type 行政处罚 --unit 城东中队 --title "演示案件"
rec=$(ev clerk case find --device ZFY0001 --json | json '["recordings"][0]["recording"]["id"]')
ev clerk case link "$number" "$rec" --stage 现场检查 --start 0 --end 2 --reason "演示：现场检查"
req=$(ev inspector export request --case "$number" --purpose 行政复议 --recipient "复议机关（演示）" --json | json '["id"]')
ev legal export approve "$req" --reason "演示审批"
out="$PWD/demo-export/$req"
ev inspector export run "$req" --out "$out"
for pkg in "$out"/*/; do .venv/bin/evidock verify "$pkg"; done
ev clerk case show "$number"
echo "demo: catalog and store are in $EVIDOCK_HOME, the package in $out; run it again to see every file reported as duplicate"
