# Sourced by bench/gc.sh and bench/retention.sh: builds the release binary and starts
# one Berth (SQLite + filesystem, open registry, administrator `admin`) on PORT with a
# fresh data directory, extra settings given as VAR=VALUE arguments; stops it and
# removes its data at exit. Exports GCBENCH_URL and GCBENCH_ADMIN for the load scripts.
# Usage: start_lifecycle_server NAME PORT [VAR=VALUE...]
set -euo pipefail
mkdir -p bench/results
cargo build --release -q -p berth
PID=
WORK=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; [ -n "$WORK" ] && rm -rf "$WORK"; }
trap cleanup EXIT

start_lifecycle_server() {
  local name=$1 port=$2; shift 2
  WORK=$(mktemp -d "/var/tmp/berth-$name.XXXXXX")
  export GCBENCH_URL=http://127.0.0.1:$port GCBENCH_ADMIN=admin:Bench-admin-1
  env BERTH_ADMIN_PASSWORD=Bench-admin-1 BERTH_LOG__LEVEL=warn BERTH_AUTH__MODE=open \
    BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT=0 "$@" \
    target/release/berth serve --listen "127.0.0.1:$port" --data-dir "$WORK/data" >"$WORK/log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.1; done
  cat "$WORK/log" >&2
  exit 1
}
