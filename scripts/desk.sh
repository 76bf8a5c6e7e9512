#!/usr/bin/env bash
# The web desk on the demo station: `evidock serve` as the service account, on the
# station socket and on http://127.0.0.1:PORT (loopback only, so plain HTTP is allowed;
# a real station listens with tls_cert/tls_key). Runs in the foreground until Ctrl-C.
# As root, after scripts/demo.sh (which made the station and the demo logins).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "desk: run as root (the service runs as its account)" >&2; exit 2; }
export EVIDOCK_HOME="${EVIDOCK_HOME:-/var/lib/evidock-demo}"
port="${DESK_PORT:-8750}"
[ -f "$EVIDOCK_HOME/evidock.toml" ] || { echo "desk: no station in $EVIDOCK_HOME: run scripts/demo.sh first" >&2; exit 2; }
run_dir=$(mktemp -d /tmp/evidock-desk-run.XXXXXX)
chmod 0755 "$run_dir" && chown evidock "$run_dir"
trap 'rm -rf "$run_dir"' EXIT
echo "desk: http://127.0.0.1:$port/desk/  (logins: clerk / demo-clerk-2026, inspector /" \
     "demo-inspector-2026, legal / demo-legal-2026, officer / demo-officer-2026); Ctrl-C stops"
runuser -u evidock -- env EVIDOCK_HOME="$EVIDOCK_HOME" \
  EVIDOCK_SERVICE__LISTEN="\"127.0.0.1:$port\"" .venv/bin/evidock serve --socket "$run_dir/evidock.sock"
