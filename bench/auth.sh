#!/usr/bin/env bash
# Measures what authentication costs, with the same HTTP harness (regbench), release
# build, fresh data each time, in one session:
#   distribution            Debian's docker-registry (CNCF Distribution), no auth
#   distribution-htpasswd   the same with auth.htpasswd (bcrypt cost 5)
#   berth-open              Berth with auth.mode = "open" (every /v2/ request allowed)
#   berth-bearer            Berth with auth on: tokens from its realm, as docker does
#   berth-basic             Berth with auth on: Basic credentials on every request
# Berth's client is a project administrator of `regbench`, not a system administrator.
#
# Usage: [CONFIGS="berth-open berth-bearer"] bench/auth.sh PATH/TO/regbench.py [regbench args]
# Needs: docker-registry, wrk, htpasswd (apache2-utils), curl.
#
# regbench asks for a token's scope with a non-greedy match up to the first `/blobs/`,
# which names the repository `regbench/blobs` as `regbench`; the script runs a copy of
# regbench whose match is greedy, so the token names the repository pushed to.
# Output: bench/results/auth-*.json and one summary per configuration on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
REGBENCH=${1:?usage: bench/auth.sh PATH/TO/regbench.py [args]}
shift
for tool in docker-registry wrk htpasswd curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y docker-registry wrk apache2-utils curl)" >&2; exit 1; }
done
OUT=bench/results
mkdir -p "$OUT"
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
WORK=$(mktemp -d)
sed 's#(\.+?)/(blobs|manifests|tags|referrers)/#(.+)/(blobs|manifests|tags|referrers)/#' \
  "$REGBENCH" > "$WORK/regbench.py"
grep -q '(.+)/(blobs|manifests' "$WORK/regbench.py" || { echo "regbench's scope match not found" >&2; exit 1; }
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=5060
ADMIN_PASSWORD=Bench-admin-1
USER=bench PASSWORD=Bench-pass-1

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

start_distribution() { # NAME [htpasswd]
  local dir=$WORK/$1 auth=""
  mkdir -p "$dir/data"
  if [ "${2:-}" = htpasswd ]; then
    htpasswd -Bbn -C 5 "$USER" "$PASSWORD" > "$dir/htpasswd"
    auth="auth: {htpasswd: {realm: regbench, path: $dir/htpasswd}}"
  fi
  cat > "$dir/config.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {cache: {blobdescriptor: inmemory}, filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
$auth
YML
  docker-registry serve "$dir/config.yml" >/dev/null 2>&1 & PID=$!
  wait_port $PORT
}

start_berth() { # NAME open|secure
  local dir=$WORK/$1
  mkdir -p "$dir"
  BERTH_LOG__LEVEL=warn BERTH_AUTH__MODE=$2 BERTH_ADMIN_PASSWORD=$ADMIN_PASSWORD \
    "$BERTH" serve --listen 127.0.0.1:$PORT --data-dir "$dir" >/dev/null 2>&1 & PID=$!
  wait_port $PORT
  [ "$2" = open ] && return
  # The benchmark's user: a project administrator of `regbench`, not a system administrator.
  local api=http://127.0.0.1:$PORT/api/v2.0
  curl -sf -u "admin:$ADMIN_PASSWORD" -H 'Content-Type: application/json' "$api/users" \
    -d "{\"username\":\"$USER\",\"email\":\"$USER@example.com\",\"realname\":\"Bench\",\"password\":\"$PASSWORD\"}" >/dev/null
  curl -sf -u "admin:$ADMIN_PASSWORD" -H 'Content-Type: application/json' "$api/projects" \
    -d '{"project_name":"regbench","metadata":{"public":"false"}}' >/dev/null
  curl -sf -u "admin:$ADMIN_PASSWORD" -H 'Content-Type: application/json' "$api/projects/regbench/members" \
    -d "{\"role_id\":1,\"member_user\":{\"username\":\"$USER\"}}" >/dev/null
}

measure() { # NAME [regbench args]
  local name=$1; shift
  python3 "$WORK/regbench.py" --url "http://127.0.0.1:$PORT" --pid "$PID" --label "$name" \
    --out "$OUT/auth-$name.json" "$@" > /dev/null
  stop
  echo "## $name"
  python3 "$(dirname "$REGBENCH")/summarize.py" "$OUT/auth-$name.json"
}

for config in ${CONFIGS:-distribution distribution-htpasswd berth-open berth-bearer berth-basic}; do
  case $config in
    distribution) start_distribution "$config"; measure "$config" "$@" ;;
    distribution-htpasswd) start_distribution "$config" htpasswd
      measure "$config" --auth "$USER:$PASSWORD" --auth-mode basic "$@" ;;
    berth-open) start_berth "$config" open; measure "$config" "$@" ;;
    berth-bearer) start_berth "$config" secure
      measure "$config" --auth "$USER:$PASSWORD" --auth-mode bearer "$@" ;;
    berth-basic) start_berth "$config" secure
      measure "$config" --auth "$USER:$PASSWORD" --auth-mode basic "$@" ;;
    *) echo "unknown configuration $config" >&2; exit 1 ;;
  esac
done
