#!/usr/bin/env bash
# Build what `spark-submit` needs to run the jobs on a cluster (docs/operations.md, "Cluster"):
#
#   dist/smar-<version>-py3-none-any.whl  the smar package (contracts inside)
#   dist/smar-<version>.zip               the same archive, named for --py-files (see below)
#   dist/smar-env.tar.gz                  a pinned environment for spark.pyspark.python, shipped with
#                                         --archives dist/smar-env.tar.gz#environment and used as
#                                         spark.pyspark.python=./environment/bin/python
#
# The environment is a fresh virtual environment built from requirements.txt, locked by
# constraints.txt (torch first, as the CPU wheel, exactly as the Makefile does), without what only
# the scheduler and the tests need (Airflow, pytest), then packed by venv-pack. venv-pack does not
# copy the interpreter: bin/python links to the Python that built the environment, so either build it
# in the image of the cluster's nodes, or name the nodes' Python 3.11 prefix with PYTHON_PREFIX.
#
# Usage: scripts/package.sh [--wheel-only]
#   PYTHON=python3.11     interpreter the environment is built from
#   PYTHON_PREFIX=/usr    prefix of Python 3.11 on the cluster's nodes (default: the building one)
#   VENV_PACK=...         venv-pack binary (default: .venv/bin/venv-pack)
#   EXTRAS=label-studio   also pack these extras of smar (comma-separated)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
VENV_PACK="${VENV_PACK:-.venv/bin/venv-pack}"
TOOL_PYTHON="${TOOL_PYTHON:-.venv/bin/python}"
DIST=dist
STAGING="$DIST/pack-env"
ARCHIVE="$DIST/smar-env.tar.gz"

mkdir -p "$DIST"
echo "== wheel of lib/ (the smar package, contracts included) -> $DIST/"
rm -f "$DIST"/smar-*.whl
# The commit is stamped into the wheel: a run trained from it records where its code came from.
git rev-parse HEAD > lib/smar/_commit.txt 2>/dev/null || echo unknown > lib/smar/_commit.txt
trap 'rm -f lib/smar/_commit.txt' EXIT
# "./lib", not "lib": pip reads a bare name as a PyPI project (there is one called lib).
"$TOOL_PYTHON" -m pip wheel --quiet --no-deps -w "$DIST" ./lib
# The same archive under a .zip name, for --py-files: PySpark's workers put only .zip, .egg and
# .jar files on their Python path (pyspark/core/context.py, PACKAGE_EXTENSIONS), so a .whl given to
# --py-files reaches the driver but not the executors, which then import whatever `smar` their
# interpreter happens to have (measured on the local standalone cluster).
wheel="$(ls "$DIST"/smar-*.whl)"
cp "$wheel" "$DIST/$(basename "$wheel" -py3-none-any.whl).zip"
ls -1 "$DIST"/smar-*.whl "$DIST"/smar-*.zip

if [[ "${1:-}" == "--wheel-only" ]]; then
  exit 0
fi

echo "== pinned environment for spark.pyspark.python -> $ARCHIVE"
# Executors and the cluster driver need the job's libraries, not the scheduler: drop Airflow and pytest.
# Airflow and its providers, and pytest, matched by name, so a pin change in requirements.txt flows through.
grep -v -E '^(apache-airflow[a-z0-9-]*|pytest)([=<>!~\[ ]|$)' requirements.txt > "$DIST/requirements-cluster.txt"
rm -rf "$STAGING"
"$PYTHON" -m venv "$STAGING"
"$STAGING/bin/python" -m pip install --quiet --upgrade pip
# torch first and alone: the CPU wheel, so that no later requirement can pull a CUDA build. A GPU
# cluster replaces this line with its CUDA build of the same version.
"$STAGING/bin/python" -m pip install --quiet "$(grep -E '^torch==' requirements.txt)"
"$STAGING/bin/python" -m pip install --quiet -r "$DIST/requirements-cluster.txt" -c constraints.txt
# Optional extras of smar (lib/pyproject.toml), e.g. EXTRAS=label-studio when the DAGs push to and
# pull from a Label Studio server in cluster deploy mode (the driver then runs in this environment).
if [ -n "${EXTRAS:-}" ]; then
  "$STAGING/bin/python" -m pip install --quiet "./lib[$EXTRAS]" -c constraints.txt
  "$STAGING/bin/python" -m pip uninstall --quiet --yes smar  # smar itself travels as the wheel (--py-files)
fi
"$STAGING/bin/python" -m pip check
"$STAGING/bin/python" -m pip freeze > "$DIST/smar-env.lock.txt"
rm -f "$ARCHIVE"
"$VENV_PACK" --prefix "$STAGING" --output "$ARCHIVE" --quiet ${PYTHON_PREFIX:+--python-prefix "$PYTHON_PREFIX"}
rm -rf "$STAGING"  # 2-3 GB; the archive and the lock file are what is kept
ls -lh "$ARCHIVE"
echo "pinned versions: $DIST/smar-env.lock.txt"
