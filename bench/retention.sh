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
source bench/lifecycle_server.sh
start_lifecycle_server retention 5071
cd bench
python3 retention_load.py populate "${REPOSITORIES:-100}" "${TAGS:-10000}"
python3 retention_load.py dry-run | tee "results/retention.json"
