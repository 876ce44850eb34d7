#!/usr/bin/env bash
# Builds, once per machine, the virtualenv that runs the S3-compatible test server (moto's
# server mode). Idempotent: does nothing when the venv matches the pinned lock.
#   SMAR_CACHE   cache root (default ~/.cache/smar); the venv goes to $SMAR_CACHE/moto-venv
#   PYTHON       interpreter to build it with (default python3.11, else python3)
# moto lives outside the project's .venv on purpose: every botocore release requires
# python-dateutil<3 while the project's constraints.txt pins python-dateutil==4.0.0.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
lock="$here/tests/integration/requirements-moto.txt"
cache="${SMAR_CACHE:-$HOME/.cache/smar}"
venv="$cache/moto-venv"
stamp="$venv/.lock.sha256"
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ -x "$venv/bin/moto_server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "moto_env: $venv is up to date"
  exit 0
fi
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
mkdir -p "$cache"
# The stamp is written last, so an interrupted build is redone on the next call.
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock"
"$venv/bin/python" -m pip check
echo "$want" > "$stamp"
echo "moto_env: built $venv ($("$venv/bin/python" -m pip show moto 2>/dev/null | grep -i '^version'))"
