#!/usr/bin/env bash
# Tag retention's dry run over TAGS tags in REPOSITORIES repositories (10 000 in 100 by
# default), on the embedded default (SQLite + filesystem), release build: the images are
# pushed, then a policy keeping each repository's 10 latest tags is run as a dry run
# through Harbor's /retentions API; reports its wall time (bench/retention_load.py).
#
# Usage: [REPOSITORIES=100 TAGS=10000] bench/retention.sh
# Needs: python3. Output: bench/results/retention.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/results
mkdir -p "$OUT"
cargo build --release -q -p berth
WORK=$(mktemp -d /var/tmp/berth-retention.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=5071
export GCBENCH_URL=http://127.0.0.1:$PORT GCBENCH_ADMIN=admin:Bench-admin-1
BERTH_ADMIN_PASSWORD=Bench-admin-1 BERTH_LOG__LEVEL=warn BERTH_AUTH__MODE=open \
  BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT=0 \
  target/release/berth serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
cd bench
python3 retention_load.py populate "${REPOSITORIES:-100}" "${TAGS:-10000}"
python3 retention_load.py dry-run | tee "results/retention.json"
