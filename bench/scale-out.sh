#!/usr/bin/env bash
# Measures Berth's scale-out configurations against each other on one machine, with the
# same HTTP harness (regbench), release build, fresh data each time:
#   sqlite    one node, SQLite + filesystem (the embedded default)
#   postgres  one node, PostgreSQL + filesystem
#   s3        one node, PostgreSQL + Garage (S3), and Garage itself through `aws s3 cp`
#   lb1/lb3   one and three nodes (PostgreSQL + Garage) behind nginx round robin
#
# Usage: [STAGES="local s3 lb"] bench/scale-out.sh PATH/TO/regbench.py [extra regbench args]
# STAGES picks some of: local (sqlite, postgres), s3 (postgres + Garage, Garage alone),
# lb (lb1, lb3); all by default.
# Needs: PostgreSQL on 127.0.0.1:5432 (user postgres), garage (cargo install
# garage@2.5.0 --locked), nginx-light, wrk, awscli. Output: bench/results/scale-*.json.
# The nodes run with auth.mode = "open": this measures storage and metadata, not logins.
# They reach PostgreSQL on loopback without TLS (sslmode=disable), as nodes on a
# private network to their database may: Debian's server offers TLS by default, and
# encrypting loopback traffic would measure that instead.
set -euo pipefail
cd "$(dirname "$0")/.."
REGBENCH=${1:?usage: bench/scale-out.sh PATH/TO/regbench.py [args]}
shift
OUT=bench/results
mkdir -p "$OUT"
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
GARAGE=$(command -v garage || echo "$HOME/.cargo/bin/garage")
WORK=$(mktemp -d)
PIDS=()
DATABASES=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${DATABASES[@]}"; do
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

KEY_ID=GK0123456789abcdef01234567
SECRET=c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789
export AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET AWS_DEFAULT_REGION=garage

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# Nothing a run wrote is deleted before the end: on ext4, a burst of deletions makes
# inode allocation slower for the next half minute, which would weigh on the next run.
# fresh_database NAME: creates database NAME (dropped at exit) and points PG at it.
fresh_database() {
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $1" >/dev/null
  DATABASES+=("$1")
  PG=("BERTH_DATABASE__URL=postgres://postgres@127.0.0.1:5432/$1?sslmode=disable")
}

start_garage() { # NAME
  local dir=$WORK/$1
  mkdir -p "$dir"
  cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:23901"
rpc_public_addr = "127.0.0.1:23901"
rpc_secret = "$(printf '5ec2%.0s' $(seq 16))"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:23900"
root_domain = ".s3.garage.localhost"
TOML
  GARAGE_DEFAULT_ACCESS_KEY=$KEY_ID GARAGE_DEFAULT_SECRET_KEY=$SECRET GARAGE_DEFAULT_BUCKET=berth \
    RUST_LOG=warn "$GARAGE" -c "$dir/garage.toml" server --single-node --default-bucket \
    >"$dir/log" 2>&1 &
  GARAGE_PID=$!; PIDS+=("$GARAGE_PID")
  wait_port 23900; sleep 1
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# start_node NAME PORT [VAR=VALUE...]: one berth node in the background; sets NODE_PID.
# Every node shares one token key (the first node makes it), as nodes behind one
# balancer must: upload URLs are sealed with a key derived from it.
start_node() {
  local name=$1 port=$2; shift 2
  env BERTH_LOG__LEVEL=warn BERTH_AUTH__MODE=open BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT=0 \
    BERTH_AUTH__TOKEN_KEY="$WORK/token-key.pem" "$@" "$BERTH" serve --listen "127.0.0.1:$port" --data-dir "$WORK/$name" >/dev/null 2>&1 &
  NODE_PID=$!; PIDS+=("$NODE_PID")
  wait_port "$port"
}

bench() { # LABEL PORT PID ONLY
  python3 "$REGBENCH" --url "http://127.0.0.1:$2" --pid "$3" --label "$1" --only "$4" \
    --out "$OUT/scale-$1.json" "${EXTRA[@]}" >/dev/null
}
EXTRA=("$@")
S3=(BERTH_STORAGE__KIND=s3 BERTH_STORAGE__ENDPOINT=http://127.0.0.1:23900
    BERTH_STORAGE__REGION=garage BERTH_STORAGE__BUCKET=berth BERTH_STORAGE__PATH_STYLE=true
    BERTH_STORAGE__ACCESS_KEY_ID=$KEY_ID BERTH_STORAGE__SECRET_ACCESS_KEY=$SECRET)
ALL=push,pull,manifest,head
META=$ALL,images

STAGES=${STAGES:-local s3 lb}
want() { [[ " $STAGES " == *" $1 "* ]]; }
RAN=()

if want local; then
echo "== sqlite + filesystem" >&2
start_node sqlite 5101; bench sqlite 5101 "$NODE_PID" "$META"; stop "$NODE_PID"

echo "== postgres + filesystem" >&2
fresh_database berth_bench_postgres
start_node postgres 5102 "${PG[@]}"; bench postgres 5102 "$NODE_PID" "$META"; stop "$NODE_PID"
RAN+=(sqlite postgres)
fi

if want s3; then
echo "== garage, raw (aws s3 cp, 1 GiB)" >&2
start_garage garage-s3
head -c 1073741824 /dev/urandom > "$WORK/gib"
S3CP=(aws --endpoint-url http://127.0.0.1:23900 s3 cp --only-show-errors)
t0=$(date +%s.%N); "${S3CP[@]}" "$WORK/gib" s3://berth/raw/gib; t1=$(date +%s.%N)
"${S3CP[@]}" s3://berth/raw/gib "$WORK/gib.back"; t2=$(date +%s.%N)
cmp -s "$WORK/gib" "$WORK/gib.back" || { echo "raw round trip differs" >&2; exit 1; }
python3 - "$t0" "$t1" "$t2" > "$OUT/scale-s3-raw.json" <<'PY'
import json, sys
t0, t1, t2 = map(float, sys.argv[1:])
mb = (1 << 30) / 1e6
print(json.dumps({"raw_put_MBps": mb / (t1 - t0), "raw_get_MBps": mb / (t2 - t1)}))
PY
rm -f "$WORK/gib" "$WORK/gib.back"
aws --endpoint-url http://127.0.0.1:23900 s3 rm --only-show-errors s3://berth/raw/gib

echo "== postgres + garage" >&2
fresh_database berth_bench_s3
start_node s3 5103 "${PG[@]}" "${S3[@]}"; bench s3 5103 "$NODE_PID" push,pull; stop "$NODE_PID"
stop "$GARAGE_PID"
RAN+=(s3)
fi

if want lb; then
echo "== one and three nodes behind nginx (postgres + garage)" >&2
start_garage garage-lb
fresh_database berth_bench_lb
# One node on its own, with a worker per core; three nodes that share the same two cores,
# each with one worker (`worker_threads`, its share of the cores, as README.md advises).
start_node n0 5110 "${PG[@]}" "${S3[@]}"; SOLO=$NODE_PID
NODES=()
for i in 1 2 3; do
  start_node "n$i" $((5110 + i)) "${PG[@]}" "${S3[@]}" BERTH_WORKER_THREADS=1
  NODES+=("$NODE_PID")
done
lb() { # NAME UPSTREAM_PORTS... : nginx on 5120 in front of the ports; sets LB_PID
  local name=$1; shift
  mkdir -p "$WORK/$name/temp"
  {
    echo "daemon off; worker_processes 2; pid $WORK/$name/pid; error_log $WORK/$name/error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off; client_body_temp_path $WORK/$name/temp; proxy_temp_path $WORK/$name/temp;"
    echo "upstream berth {"; for p in "$@"; do echo "server 127.0.0.1:$p;"; done
    echo "keepalive 64; keepalive_timeout 60s; }"
    echo "server { listen 127.0.0.1:5120; client_max_body_size 0; location / {"
    echo "proxy_pass http://berth; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    echo "proxy_set_header Host \$http_host; proxy_request_buffering off; proxy_buffering off; } } }"
  } > "$WORK/$name/nginx.conf"
  nginx -c "$WORK/$name/nginx.conf" -p "$WORK/$name" &
  LB_PID=$!; PIDS+=("$LB_PID")
  wait_port 5120
}
lb lb1 5110; bench lb1 5120 "$SOLO" "$ALL"; stop "$LB_PID"
lb lb3 5111 5112 5113; bench lb3 5120 "${NODES[0]}" "$ALL"; stop "$LB_PID"
RAN+=(lb1 lb3)
fi

for name in "${RAN[@]}"; do
  echo "## $name"
  python3 "$(dirname "$REGBENCH")/summarize.py" "$OUT/scale-$name.json"
done
if want s3; then echo "## garage raw"; cat "$OUT/scale-s3-raw.json"; fi
