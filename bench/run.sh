#!/usr/bin/env bash
# Measures Berth and CNCF Distribution (Debian's docker-registry) back to back with the
# same HTTP harness, on loopback, release build, fresh data directories.
#
# Usage: bench/run.sh PATH/TO/regbench.py [extra regbench args]
# Output: bench/results/{berth,distribution}.json and a side-by-side summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
REGBENCH=${1:?usage: bench/run.sh PATH/TO/regbench.py [args]}
shift
OUT=bench/results
mkdir -p "$OUT"
command -v docker-registry >/dev/null && command -v wrk >/dev/null || {
  echo "needs: apt-get install -y docker-registry wrk" >&2; exit 1; }
cargo build --release -q -p berth

DR_DIR=$(mktemp -d) BE_DIR=$(mktemp -d)
trap 'kill $DR_PID $BE_PID 2>/dev/null || true; rm -rf "$DR_DIR" "$BE_DIR"' EXIT
cat > "$DR_DIR.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {cache: {blobdescriptor: inmemory}, filesystem: {rootdirectory: $DR_DIR}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5055}
YML
docker-registry serve "$DR_DIR.yml" >/dev/null 2>&1 & DR_PID=$!
BERTH_LOG__LEVEL=warn target/release/berth serve --listen 127.0.0.1:5056 --data-dir "$BE_DIR" & BE_PID=$!
sleep 1
python3 "$REGBENCH" --url http://127.0.0.1:5055 --pid $DR_PID --label distribution --out "$OUT/distribution.json" "$@" > /dev/null
python3 "$REGBENCH" --url http://127.0.0.1:5056 --pid $BE_PID --label berth --out "$OUT/berth.json" "$@" > /dev/null
kill $DR_PID $BE_PID
wait $DR_PID $BE_PID 2>/dev/null || true
for port_cmd in "5055|docker-registry serve $DR_DIR.yml" "5056|target/release/berth serve --listen 127.0.0.1:5056 --data-dir $BE_DIR"; do
  python3 "$REGBENCH" --url "http://127.0.0.1:${port_cmd%%|*}" --repeat 5 --cold-start "${port_cmd#*|}" \
    --out "$OUT/cold-${port_cmd%%|*}.json" > /dev/null
done
for name in distribution:5055 berth:5056; do
  echo "## ${name%%:*}"
  python3 "$(dirname "$REGBENCH")/summarize.py" "$OUT/${name%%:*}.json" "$OUT/cold-${name##*:}.json"
done
