#!/usr/bin/env bash
# The main job on the embedded default (SQLite catalog + local store), the way a station
# runs it: the station service (`evidock serve`) runs as its own account and alone opens
# the catalog, the store and the keys; people use the CLI as their own OS accounts and the
# service knows who they are from the kernel. The demo builds a synthetic camera with real
# ffmpeg, has an officer offload it, a clerk link a clip to a case, an inspector request
# its export, a legal reviewer approve it, the inspector download the package, and anyone
# verify it offline.
#
# As root. It creates the service account `evidock` and four demo accounts (evdemo-*,
# system accounts without login), keeps the station in /var/lib/evidock-demo (set
# EVIDOCK_HOME to change it) and the synthetic camera in /var/lib/evidock-demo-camera.
# Run it twice: the second offload reports every file as `duplicate`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/demo_people.sh
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates OS accounts)" >&2; exit 2; }
EVIDOCK_MINIMAL="${EVIDOCK_MINIMAL:-1}" bash scripts/setup.sh

export EVIDOCK_HOME="${EVIDOCK_HOME:-/var/lib/evidock-demo}"
camera="${DEMO_CAMERA:-/var/lib/evidock-demo-camera}"
out_root="${DEMO_EXPORTS:-/tmp/evidock-demo-export}"
run_dir=$(mktemp -d /tmp/evidock-demo-run.XXXXXX)
chmod 0755 "$run_dir"
sock="$run_dir/evidock.sock"
evidock="$PWD/.venv/bin/evidock"

for account in evidock evdemo-officer evdemo-clerk evdemo-inspector evdemo-legal; do
  id "$account" >/dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin "$account"
done
chown evidock "$run_dir"  # the service makes its socket here
# People run evidock as themselves: the checkout must be readable by their accounts.
if ! runuser -u evdemo-clerk -- "$evidock" --help >/dev/null 2>&1; then
  echo "demo: other accounts cannot run $evidock; put the checkout where every account" \
       "can read it (e.g. /opt or /srv) or make its path readable (chmod o+rx)" >&2
  exit 2
fi

if [ ! -d "$camera" ]; then
  .venv/bin/python -m fixtures camera "$camera" --scheme A --serial ZFY0001 --officer 123456
fi
chmod -R a+rX "$camera"  # the service account reads the camera, as the dock does

"$evidock" init --account evidock >/dev/null
config="$EVIDOCK_HOME/evidock.toml"
if ! grep -q 'name = "clerk"' "$config"; then
  { printf '\n# Demo people: each evidock user is an OS account (the service asks the kernel who calls).\n'
    person officer 执法队员 officer 'police_number = "123456"'
    person clerk 文书 clerk
    person inspector 督察 inspector
    person legal 法制审核 legal_reviewer; } >> "$config"
fi
chown root:root "$config" && chmod 0644 "$config"  # the rules are root's

runuser -u evidock -- env EVIDOCK_HOME="$EVIDOCK_HOME" "$evidock" serve --socket "$sock" \
  >"$run_dir/serve.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null || true; rm -rf "$run_dir"' EXIT
ev() { who=$1; shift; runuser -u "evdemo-$who" -- env EVIDOCK_SOCKET="$sock" "$evidock" "$@"; }
for _ in $(seq 200); do  # until the service answers (a few seconds at most)
  ev clerk whoami >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$run_dir/serve.log" >&2; exit 2; }
  sleep 0.1
done
json() { .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)$1)"; }

rc=0
ev officer ingest "$camera" --device ZFY0001 --officer 123456 || rc=$?
echo "demo: offload exit code $rc (0 = all ingested/duplicate, 1 = findings, 2 = fatal)"
[ "$rc" -le 1 ] || exit "$rc"

number="演示城管罚〔2026〕第001号"
ev clerk case show "$number" >/dev/null 2>&1 ||
  ev clerk case create "$number" --type 行政处罚 --unit 城东中队 --title "演示案件"
rec=$(ev clerk case find --device ZFY0001 --json | json '["recordings"][0]["recording"]["id"]')
ev clerk case link "$number" "$rec" --stage 现场检查 --start 0 --end 2 --reason "演示：现场检查"
req=$(ev inspector export request --case "$number" --purpose 行政复议 \
  --recipient "复议机关（演示）" --json | json '["id"]')
echo "demo: an inspector may not approve an export (a legal reviewer does, never their own):"
ev inspector export approve "$req" --reason "自批" || true
ev legal export approve "$req" --reason "演示审批"
install -d -m 1777 "$out_root"
out="$out_root/$req"
ev inspector export run "$req" --out "$out"
# The recipient verifies offline against the station's published key.
ev clerk keys export-public > "$run_dir/station.pem"
# A case export is verified whole: every package, the case/ record and request.json.
"$evidock" verify "$out" --key "$run_dir/station.pem"
ev clerk case show "$number"
# Web desk logins for the demo people (the desk listens on loopback only: scripts/desk.sh).
for who in officer clerk inspector legal; do
  printf 'demo-%s-2026\n' "$who" | "$evidock" admin passwd "$who" --stdin >/dev/null
done
echo "demo: the station is in $EVIDOCK_HOME (owned by the evidock account), the package in $out"
echo "demo: web desk: run  bash scripts/desk.sh  and open http://127.0.0.1:${DESK_PORT:-8750}/desk/"
echo "demo: desk logins: clerk / demo-clerk-2026, inspector / demo-inspector-2026," \
     "legal / demo-legal-2026, officer / demo-officer-2026"
