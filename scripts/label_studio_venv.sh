#!/usr/bin/env bash
# The Label Studio *server* in its own virtual environment, so that its pins never meet the
# project's (.venv, constraints.txt). Idempotent: a venv whose stamp matches the pins is reused.
#
# Usage: scripts/label_studio_venv.sh            # prints the venv's label-studio executable
#   LABEL_STUDIO_VENV=/path   where it goes (default ~/.cache/smar/label-studio-venv)
#   PYTHON=python3.11         the interpreter to build it from
#
# The full transitive lock is scripts/label_studio_constraints.txt (pip freeze of a clean install
# of LABEL_STUDIO_VERSION on Python 3.11); refresh it with LABEL_STUDIO_RELOCK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

LABEL_STUDIO_VERSION="1.23.2"
VENV="${LABEL_STUDIO_VENV:-$HOME/.cache/smar/label-studio-venv}"
PYTHON="${PYTHON:-python3.11}"
LOCK="$ROOT/scripts/label_studio_constraints.txt"
STAMP="$VENV/.smar-installed"
lock_hash() { if [ -f "$LOCK" ]; then sha256sum "$LOCK" | cut -c1-16; else echo none; fi; }
WANT="label-studio==$LABEL_STUDIO_VERSION $(lock_hash)"

if [ -x "$VENV/bin/label-studio" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && [ "${LABEL_STUDIO_RELOCK:-0}" != 1 ]; then
  echo "$VENV/bin/label-studio"
  exit 0
fi

echo "label_studio_venv: installing label-studio==$LABEL_STUDIO_VERSION into $VENV" >&2
started=$(date +%s)
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
if [ -f "$LOCK" ] && [ "${LABEL_STUDIO_RELOCK:-0}" != 1 ]; then
  "$VENV/bin/python" -m pip install --quiet "label-studio==$LABEL_STUDIO_VERSION" -c "$LOCK" >&2
else
  "$VENV/bin/python" -m pip install --quiet "label-studio==$LABEL_STUDIO_VERSION" >&2
  {
    echo "# Full lock of the Label Studio server venv (scripts/label_studio_venv.sh): pip freeze of"
    echo "# label-studio==$LABEL_STUDIO_VERSION on $("$VENV/bin/python" -V). Never installed into .venv."
    "$VENV/bin/python" -m pip freeze --all | grep -v -E '^(pip|setuptools|wheel)=='
  } > "$LOCK"
  WANT="label-studio==$LABEL_STUDIO_VERSION $(lock_hash)"
fi
"$VENV/bin/python" -m pip check >&2
echo "$WANT" > "$STAMP"
echo "label_studio_venv: installed in $(( $(date +%s) - started )) s" >&2
echo "$VENV/bin/label-studio"
