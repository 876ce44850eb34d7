# Two promises: `make demo` and `make test` each work on a fresh machine with Python 3.11 and Java 17.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SIZE ?= demo
DS ?= 2026-11-01

.PHONY: venv lint demo test test-all bench bench-cluster airflow-demo package clean demo-s3 cluster-demo label-studio-sdk test-label-studio label-studio-demo

$(STAMP): requirements.txt constraints.txt lib/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and alone, pinned with its CUDA runtime wheels (PyPI's Linux build; it runs on CPU
	# where there is no GPU), so that no later requirement can move it.
	$(BIN)/python -m pip install --quiet torch==2.13.0 -c constraints.txt
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e ./lib
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/smar demo --size $(SIZE) --ds $(DS)

# ruff (lint and format) and mypy: the code's own rules, checked before any test runs.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "(slow or not slow) and not label_studio"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py --size large
	$(BIN)/python benchmarks/bench_scoring.py --size demo
	$(BIN)/python benchmarks/bench_ranker_quality.py --size large --days 1
	$(BIN)/python benchmarks/bench_reranker.py
	$(BIN)/python benchmarks/lightgbm_sanity.py
	$(BIN)/python benchmarks/bench_metrics.py --rows 10000000

# The scale benchmark of issue 14 (about 30 min here): embedded vs a local standalone cluster of 1
# and 2 workers, tiny and demo days; appends to benchmarks/results/cluster_scale.jsonl.
bench-cluster: $(STAMP)
	bash scripts/moto_env.sh
	bash scripts/spark_jars.sh
	bash scripts/package.sh --wheel-only
	$(BIN)/python benchmarks/bench_cluster_scale.py

package: $(STAMP)
	bash scripts/package.sh

airflow-demo: $(STAMP)
	SIZE=$(SIZE) DS=$(DS) bash scripts/airflow_demo.sh

# The whole demo with every location on an S3-compatible server on loopback (moto, in its own
# venv), started and stopped here; the decision is then read back with delta-rs, as an analyst would.
S3_SIZE ?= tiny
demo-s3: $(STAMP)
	bash scripts/moto_env.sh
	$(BIN)/python tests/integration/servers.py with-s3 --bucket lake -- \
	  env SIZE=$(S3_SIZE) DS=$(DS) PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo_s3.sh

# The whole tiny pipeline on a local Spark standalone cluster (two workers, one in its own mount
# namespace when root) with delta-spark and the warehouse on the S3-compatible server; its tables
# are compared with the embedded engine's run of the same days. CLUSTER_MODE=single (the default,
# measured: exit 0, every table equal, about 11 min here) submits the whole `smar demo` as one job
# (jobs/demo.py); CLUSTER_MODE=jobs submits one spark-submit per job (about 35 min here).
CLUSTER_SIZE ?= tiny
CLUSTER_MODE ?= single
cluster-demo: $(STAMP)
	bash scripts/moto_env.sh
	bash scripts/spark_jars.sh
	bash scripts/package.sh --wheel-only
	$(BIN)/python scripts/cluster_demo.py --size $(CLUSTER_SIZE) --ds $(DS) --mode $(CLUSTER_MODE)

clean:
	rm -rf warehouse artifacts reports dist .pytest_cache label_studio_demo

# -- Label Studio (docs/annotation.md): the SDK as an optional extra of smar, the server in its own
# venv (scripts/label_studio_venv.sh, ~/.cache/smar/label-studio-venv), never in .venv.
LABEL_STUDIO_SDK_STAMP := $(VENV)/.label-studio-sdk

$(LABEL_STUDIO_SDK_STAMP): $(STAMP) lib/pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e './lib[label-studio]'
	touch $(LABEL_STUDIO_SDK_STAMP)

# The client `smar annotation push/simulate/pull` need (label-studio-sdk and its pins).
label-studio-sdk: $(LABEL_STUDIO_SDK_STAMP)

# The integration tests against a real server (marker label_studio; .ci/run's Label Studio lane).
test-label-studio: $(LABEL_STUDIO_SDK_STAMP)
	bash scripts/label_studio_venv.sh >/dev/null
	$(BIN)/python -m pytest -q -p no:cacheprovider -m label_studio tests/integration

# A local server, the round trip on tiny data through it, the server stopped (SIZE=tiny by default).
label-studio-demo: $(LABEL_STUDIO_SDK_STAMP)
	DS=$(DS) SIZE=$(if $(filter file,$(origin SIZE)),tiny,$(SIZE)) bash scripts/label_studio_demo.sh
