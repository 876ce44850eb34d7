#!/usr/bin/env bash
# `make label-studio-demo`: the annotation round trip through a real Label Studio server, on tiny
# data, from scratch (docs/annotation.md, "A Label Studio server"):
#
#   server      label-studio (its own venv, scripts/label_studio_venv.sh) on 127.0.0.1, a free port,
#               a generated admin and API token, SQLite under $WORK/server; stopped by PID at the end
#   data        three tiny generator days ingested, single-modal rankers trained (2 epochs), DS scored
#   tasks       smar build-tasks (top, budget 0.2, plus the fully labelled evaluation set)
#   push        smar annotation push --predictions single_modal (one project per slice, ids recorded)
#   annotators  smar annotation simulate (the simulated team, through the server's API)
#   pull        smar annotation pull (export through the API -> the import path -> silver.page_labels)
#   again       push and pull once more: nothing is created, no Delta version is added
#   cost        smar annotation-cost
#
# Usage: scripts/label_studio_demo.sh   (DS=2026-11-01 SIZE=tiny by default)
#   LABEL_STUDIO_DEMO_DIR=...   where tables, reports and the server's data go (default ./label_studio_demo)
#   LABEL_STUDIO_DEMO_KEEP=1    leave the server up at the end until Enter, to look at it in a browser
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DS="${DS:-2026-11-01}"
SIZE="${SIZE:-tiny}"
VENV="${VENV:-$ROOT/.venv}"
SMAR="$VENV/bin/smar"
WORK="${LABEL_STUDIO_DEMO_DIR:-$ROOT/label_studio_demo}"
test -x "$SMAR" || { echo "no $SMAR: run 'make venv' first" >&2; exit 1; }
started=$(date +%s)
step() { printf '\n== [%3d s] %s\n' "$(( $(date +%s) - started ))" "$*"; }

rm -rf "$WORK"
mkdir -p "$WORK"
export SMAR_WAREHOUSE="$WORK/warehouse" SMAR_ARTIFACTS="$WORK/artifacts" SMAR_REPORTS="$WORK/reports"
export SMAR_ENGINE=embedded RUST_LOG="${RUST_LOG:-error}"

step "the Label Studio server's own venv (installed on first use, about 3 minutes)"
bash scripts/label_studio_venv.sh >/dev/null

step "start Label Studio on 127.0.0.1 (data under $WORK/server)"
"$VENV/bin/python" tests/integration/label_studio_server.py --data-dir "$WORK/server" \
  >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"  # the helper stops the server's process group, then exits
    wait "$SERVER_PID" 2>/dev/null || true
    echo "Label Studio stopped (helper pid $SERVER_PID); label-studio-demo took $(( $(date +%s) - started )) s"
  fi
}
trap stop_server EXIT
for _ in $(seq 1 600); do
  [ -s "$WORK/server/server.json" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
  sleep 0.5
done
[ -s "$WORK/server/server.json" ] || { echo "Label Studio did not start" >&2; cat "$WORK/server.err" >&2; exit 1; }
server_field() { "$VENV/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/server/server.json" "$1"; }
LABEL_STUDIO_URL="$(server_field url)"
LABEL_STUDIO_API_KEY="$(server_field token)"
export LABEL_STUDIO_URL LABEL_STUDIO_API_KEY
tail -1 "$WORK/server.err"

day_before() { "$VENV/bin/python" -c "import datetime,sys; print(datetime.date.fromisoformat(sys.argv[1]) - datetime.timedelta(days=int(sys.argv[2])))" "$1" "$2"; }
days=("$(day_before "$DS" 2)" "$(day_before "$DS" 1)" "$DS")
for day in "${days[@]}"; do
  step "ingest the $SIZE generator day $day"
  "$SMAR" ingest --ds "$day" --source generator --size "$SIZE" >/dev/null
done
step "train the single-modal rankers on ${days[*]} (2 epochs) and score $DS"
"$SMAR" train-single-modal --ds "${days[0]}" --ds "${days[1]}" --ds "${days[2]}" --epochs 2 >/dev/null
"$SMAR" score --ds "$DS" >/dev/null

step "smar build-tasks --ds $DS --strategy top --budget 0.2"
"$SMAR" build-tasks --ds "$DS" --strategy top --budget 0.2
step "smar annotation push --ds $DS --predictions single_modal   (to $LABEL_STUDIO_URL)"
"$SMAR" annotation push --ds "$DS" --predictions single_modal
step "smar annotation simulate --ds $DS   (the simulated annotators, through the API)"
"$SMAR" annotation simulate --ds "$DS"
step "smar annotation pull --ds $DS"
"$SMAR" annotation pull --ds "$DS"

versions() {
  "$VENV/bin/python" -c "
from deltalake import DeltaTable
import sys
print(', '.join(f'{t} v{DeltaTable(sys.argv[1] + \"/\" + t.replace(\".\", \"/\")).version()}'
                for t in ('silver.annotation_tasks', 'silver.page_labels', 'bronze.rejects')))" "$SMAR_WAREHOUSE"
}
before="$(versions)"
step "push and pull again: nothing new on the server, no Delta version ($before)"
"$SMAR" annotation push --ds "$DS" --predictions single_modal
"$SMAR" annotation pull --ds "$DS"
after="$(versions)"
echo "Delta versions before: $before"
echo "Delta versions after:  $after"
[ "$before" = "$after" ] || { echo "the second push and pull changed a table" >&2; exit 1; }

step "smar annotation-cost --ds $DS"
"$SMAR" annotation-cost --ds "$DS"

if [ "${LABEL_STUDIO_DEMO_KEEP:-0}" = 1 ]; then
  echo
  echo "Label Studio: $LABEL_STUDIO_URL  user $(server_field username)  password $(server_field password)"
  read -r -p "press Enter to stop the server "
fi
step "done: tables under $SMAR_WAREHOUSE, pulled exports under $SMAR_REPORTS/annotation/$DS/"
