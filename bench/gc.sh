#!/usr/bin/env bash
# Garbage collection beside traffic, on the embedded default (SQLite + filesystem),
# release build: a store of REFERENCED blobs that images reference and UNREFERENCED
# blobs that nothing does (50 000 each by default) is collected through Harbor's
# /system/gc API while two clients push new images and wrk pulls a blob. Reports the
# collection's wall time, the blobs it deleted a second, and the pull p99 over 30
# seconds without a collection and over the whole collection (bench/gc_load.py).
#
# Usage: [REFERENCED=50000 UNREFERENCED=50000] bench/gc.sh
# Needs: wrk, python3. Output: bench/results/gc.json.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
source bench/lifecycle_server.sh
# A short grace period, so that the blobs pushed before it are candidates; the ones the
# clients push during the collection are younger, and must survive it.
start_lifecycle_server gc 5070 BERTH_GC__GRACE_PERIOD=15s
python3 bench/gc_load.py populate "${REFERENCED:-50000}" "${UNREFERENCED:-50000}" | tee "$WORK/populate.json"
sleep 16
python3 bench/gc_load.py measure 30 | tee bench/results/gc.json
