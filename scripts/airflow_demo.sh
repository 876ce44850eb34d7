#!/usr/bin/env bash
# The whole pipeline through Airflow, on one machine, from scratch (docs/operations.md, "Local runs"):
# an Airflow home under the repository (SQLite), the `spark_default` connection from an environment
# variable (`local[*]`, the spark-submit that ships with pyspark in .venv), every job on the
# embedded engine, then the DAGs one after the other with `airflow dags test`:
#
#   bootstrap   ingest the two days before DS (rankers need click logs to train on)
#   single_modal_training   rankers trained on DS-2..DS, registered as CURRENT
#   daily_scoring           DS: ingest -> score -> build annotation tasks -> export them
#   (annotators)            the simulated annotators answer the exported tasks (outside Airflow, as people would)
#   page_labels             DS: the sensor finds the export, the labels are merged
#   train_and_replay        DS: train the page reranker -> replay against production -> decision
#
# Usage: scripts/airflow_demo.sh   (DS=2026-11-01 SIZE=demo by default; SIZE=tiny for a quick run)
# Output (under ./airflow_home unless SMAR_* say otherwise): warehouse/ (Delta tables), artifacts/
# (models), reports/ (GX Data Docs, annotation
# exports, replay report), ./airflow_home (Airflow's SQLite database and task logs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

DS="${DS:-2026-11-01}"
SIZE="${SIZE:-demo}"
EPOCHS="${EPOCHS:-8}"
VENV="$ROOT/.venv"
test -x "$VENV/bin/airflow" || { echo "no $VENV/bin/airflow: run 'make venv' first" >&2; exit 1; }

# Airflow: its own home under the repository, SQLite, no example DAGs, our dags/ folder.
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# The spark_default connection from the environment: master local[*], the `spark-submit` on PATH,
# i.e. the one pyspark installs into .venv/bin.
export AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]", "extra": {"spark-binary": "spark-submit"}}'
export PATH="$VENV/bin:$PATH"

# The jobs: embedded engine, settings from SMAR_* (absolute, so every process agrees).
export SMAR_ENGINE=embedded
# Outputs go under the Airflow home by default, so this demo never mixes its tables with those of
# `make demo` (possibly of another SIZE) in ./warehouse; set SMAR_* to choose other places.
export SMAR_WAREHOUSE="${SMAR_WAREHOUSE:-$AIRFLOW_HOME/warehouse}"
export SMAR_ARTIFACTS="${SMAR_ARTIFACTS:-$AIRFLOW_HOME/artifacts}"
export SMAR_REPORTS="${SMAR_REPORTS:-$AIRFLOW_HOME/reports}"
export RUST_LOG="${RUST_LOG:-error}"

day_before() { "$VENV/bin/python" -c "import datetime,sys; print(datetime.date.fromisoformat(sys.argv[1]) - datetime.timedelta(days=int(sys.argv[2])))" "$1" "$2"; }
step() { printf '\n== %s\n' "$*"; }

step "airflow db migrate (SQLite under $AIRFLOW_HOME)"
mkdir -p "$AIRFLOW_HOME"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }

for offset in 2 1; do
  day="$(day_before "$DS" "$offset")"
  step "bootstrap: ingest $day (task ingest_search_logs of daily_scoring)"
  airflow tasks test daily_scoring ingest_search_logs "$day" -t "{\"size\": \"$SIZE\"}"
done
step "bootstrap: ingest $DS, then train the single-modal rankers on $(day_before "$DS" 2)..$DS"
airflow tasks test daily_scoring ingest_search_logs "$DS" -t "{\"size\": \"$SIZE\"}"
airflow dags test single_modal_training "$DS" -c "{\"last_day\": \"$DS\", \"training_days\": 3, \"epochs\": $EPOCHS}"

step "daily_scoring $DS"
airflow dags test daily_scoring "$DS" -c "{\"size\": \"$SIZE\"}"

step "the simulated annotators answer the exported tasks of $DS"
for tasks_file in "$SMAR_REPORTS/annotation/$DS"/*/tasks.json; do
  "$VENV/bin/python" jobs/simulate_annotators.py --ds "$DS" --tasks-file "$tasks_file"
done

step "page_labels $DS"
airflow dags test page_labels "$DS"

step "train_and_replay $DS"
airflow dags test train_and_replay "$DS" -c '{"window_days": 1}'

step "tables"
"$VENV/bin/smar" tables
echo "Great Expectations Data Docs: $SMAR_REPORTS/gx"
echo "replay reports:               $SMAR_REPORTS/replay/"
echo "model artifacts:              $SMAR_ARTIFACTS/"
echo "Airflow home (SQLite):        $AIRFLOW_HOME (airflow dags test printed the task logs above)"
