#!/usr/bin/env bash
# Garbage collection beside traffic, on the embedded default (SQLite + filesystem),
# release build: a store of REFERENCED blobs that images reference and UNREFERENCED
# blobs that nothing does (50 000 each by default) is collected through Harbor's
# /system/gc API while two clients push new images and wrk pulls a blob. Reports the
# collection's wall time, the blobs it deleted a second, and the pull p99 of 3-second
# slices without a collection and during it (bench/gc_load.py).
#
# Usage: [REFERENCED=50000 UNREFERENCED=50000] bench/gc.sh
# Needs: wrk, python3. Output: bench/results/gc.json.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
OUT=bench/results
mkdir -p "$OUT"
cargo build --release -q -p berth
WORK=$(mktemp -d /var/tmp/berth-gc.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=5070
export GCBENCH_URL=http://127.0.0.1:$PORT GCBENCH_ADMIN=admin:Bench-admin-1
# A short grace period, so that the blobs pushed before it are candidates; the ones the
# clients push during the collection are younger, and must survive it.
BERTH_ADMIN_PASSWORD=Bench-admin-1 BERTH_LOG__LEVEL=warn BERTH_AUTH__MODE=open \
  BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT=0 BERTH_GC__GRACE_PERIOD=15s \
  target/release/berth serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
python3 bench/gc_load.py populate "${REFERENCED:-50000}" "${UNREFERENCED:-50000}" | tee "$WORK/populate.json"
sleep 16
python3 bench/gc_load.py measure 10 | tee "$OUT/gc.json"
