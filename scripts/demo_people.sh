# Sourced by scripts/demo.sh and scripts/center.sh: the demo's people as TOML.

# person NAME DISPLAY ROLE [LINE...]: one [[access.users]] entry for the OS account
# evdemo-NAME (the service asks the kernel who calls), plus any extra TOML lines.
person() {
  local name=$1 display=$2 role=$3
  shift 3
  printf '[[access.users]]\nname = "%s"\ndisplay = "%s"\nos_users = ["evdemo-%s"]\n' \
    "$name" "$display" "$name"
  printf 'roles = ["%s"]\n' "$role"
  local line
  for line in "$@"; do printf '%s\n' "$line"; done
}

# station_user NAME SUBJECT: a station's account at a center, its client certificate.
station_user() {
  printf '[[access.users]]\nname = "%s"\nroles = ["station"]\ncert_subjects = ["%s"]\n' \
    "$1" "$2"
}

# witnessed STATION KEYRING: a station whose log the center mirrors and witnesses.
witnessed() {
  printf '[[witness.stations]]\nid = "%s"\nkeyring = "%s"\nkey_prefix = "%s"\n' \
    "$1" "$2" "$1"
}
