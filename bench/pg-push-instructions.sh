#!/usr/bin/env bash
# Counts the instructions PostgreSQL spends on a small image's push (two blobs sent
# whole, one request each, then the manifest), with callgrind: repeatable to the
# instruction whatever else the machine does, where a timed run on a shared machine
# varies by a fifth.
#
# A scratch cluster is migrated by Berth and given 50 repositories in project `bench`;
# a single-user backend under callgrind then replays the statements Berth sends per
# image (`complete_whole_upload` twice, `push_manifest` once), prepared as Berth
# prepares them, for 100 and for 300 images. The difference over 200 is the steady cost
# per image, free of start-up and first-call costs. User-space instructions only: the
# kernel's share (sockets, fsync) and the wire protocol are not in the count.
#
# Usage (as root, for `su postgres`): bench/pg-push-instructions.sh [SQL file...]
# Each SQL file is applied after the migrations, before the replay (to measure a
# change to a function or the schema without a build). Needs PostgreSQL's server
# binaries, valgrind and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p berth
BERTH=$PWD/target/release/berth
PG=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d)
chown postgres "$WORK"
trap 'su postgres -c "$PG/pg_ctl -D $WORK/data -m immediate stop" >/dev/null 2>&1 || true;
      kill "${BERTH_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
as_postgres() { su postgres -c "$*"; }
as_postgres "$PG/initdb -D $WORK/data -A trust -U postgres" >/dev/null
start() {
  as_postgres "$PG/pg_ctl -D $WORK/data -w -l $WORK/log \
    -o '-p 5439 -k $WORK -c listen_addresses= -c autovacuum=off' start" >/dev/null
}
start
psql -qh "$WORK" -p 5439 -U postgres -c "CREATE DATABASE bench"

# Berth migrates the database; a blob pushed into each repository creates it.
BERTH_LOG__LEVEL=warn BERTH_AUTH__MODE=open BERTH_LISTEN=127.0.0.1:5439 \
  BERTH_DATA_DIR="$WORK/berth" \
  BERTH_DATABASE__URL="postgres:///bench?host=$WORK&port=5439&user=postgres" \
  "$BERTH" serve >"$WORK/berth.log" 2>&1 &
BERTH_PID=$!
for _ in $(seq 100); do curl -fso /dev/null http://127.0.0.1:5439/v2/ && break; sleep 0.1; done
for i in $(seq -w 0 49); do
  digest=sha256:$(printf 'seed %s' "$i" | sha256sum | cut -d' ' -f1)
  printf 'seed %s' "$i" | curl -fso /dev/null -X POST --data-binary @- \
    -H 'Content-Type: application/octet-stream' \
    "http://127.0.0.1:5439/v2/bench/app$i/blobs/uploads/?digest=$digest"
done
kill "$BERTH_PID"
wait "$BERTH_PID" || true
for sql in "$@"; do
  psql -qh "$WORK" -p 5439 -U postgres -d bench -v ON_ERROR_STOP=1 -f "$sql"
done
as_postgres "$PG/pg_ctl -D $WORK/data -w stop" >/dev/null

# The statements of `images` pushes, with the arguments Berth binds.
statements() {
  python3 - "$1" <<'EOF'
import random, sys
random.seed(7)
hexdigest = lambda: "sha256:%064x" % random.getrandbits(256)
print("PREPARE blob(text, text, text, text, int8, bytea, int8, text, int8, int8, int8,"
      " int8, text, int8, int8) AS SELECT outcome, refusal FROM complete_whole_upload("
      "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15);")
print("PREPARE manifest(text, int8, text, text, text, text, text, bytea, text[], text[],"
      " int8[], text[], int8, int8, text[], int8, text, text, text, text, bool, text, int8)"
      " AS SELECT outcome, failed_at, actual_size, stored_media_type, quota_watched"
      " FROM push_manifest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
      " $15, $16, $17, $18, $19, $20, $21, $22, $23);")
now = "(extract(epoch FROM now()) * 1000)::int8"
for i in range(int(sys.argv[1])):
    repository = "bench/app%02d" % random.randrange(50)
    config, layer, manifest = hexdigest(), hexdigest(), hexdigest()
    for suffix, blob, size in (("c", config, 218), ("l", layer, 1024)):
        print("EXECUTE blob('u%d%s', '%s', '%s', 'sha256', %d, '\\x00', NULL, NULL, 1, 1,"
              " 1, 1, 'bench', %s, 43200000);" % (i, suffix, blob, repository, size, now))
    print("EXECUTE manifest('%s', 1, '%s', 'application/vnd.oci.image.manifest.v1+json',"
          " 'application/vnd.oci.image.config.v1+json', NULL, NULL, '%s', '{blob,blob}',"
          " '{%s,%s}', '{218,1024}', '{v%d}', NULL, 0, '{}', NULL, 'bench', 'create',"
          " 'artifact', '%s:v%d', TRUE, '127.0.0.1', 1);"
          % (repository, manifest, "x" * 400, config, layer, i, repository, i))
EOF
}
count() {
  rm -rf "$WORK/copy"
  cp -a "$WORK/data" "$WORK/copy"
  statements "$1" >"$WORK/replay.sql"
  as_postgres "valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    $PG/postgres --single -D $WORK/copy bench" <"$WORK/replay.sql" >"$WORK/replay.log" 2>&1
  if grep -q ERROR "$WORK/replay.log"; then grep -m3 ERROR "$WORK/replay.log" >&2; exit 1; fi
  grep -c 'outcome = "linked"' "$WORK/replay.log" | grep -qx $(($1 * 2)) ||
    { echo "not every blob was linked at once" >&2; exit 1; }
  grep -Po 'Collected : \K[0-9]+' "$WORK/replay.log"
}
few=$(count 100)
many=$(count 300)
echo "PostgreSQL instructions per image: $(((many - few) / 200))"
