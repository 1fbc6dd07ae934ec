#!/usr/bin/env bash
# Install the project into ./.venv from poetry.lock, on a machine that has only Python 3.11 and make.
#
# Why not plain `poetry install`: some package mirrors serve only pip's "simple" index, not the JSON
# API Poetry's resolver needs. Poetry still owns the lock; we export it (no network) and let pip
# install the exact pinned, hash-checked files, then `poetry install` confirms nothing is missing.
#
#   bash develop/bootstrap/install.sh [GROUP...]   # the main and dev groups, plus optional ones (distributed)
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
POETRY_VERSION=2.5.1
EXPORT_VERSION=1.10.1
GROUPS_WITH=$(IFS=,; echo "dev${*:+,$*}")
STAMP=.venv/.installed${1:+-$(IFS=-; echo "$*")}

if [ ! -x .tools/bin/poetry ]; then
  echo ">> bootstrapping Poetry $POETRY_VERSION into .tools/"
  "$PYTHON" -m venv .tools
  .tools/bin/pip install -q --disable-pip-version-check \
    "poetry==$POETRY_VERSION" "poetry-plugin-export==$EXPORT_VERSION"
fi

if [ ! -x .venv/bin/python ]; then
  echo ">> creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

echo ">> installing locked dependencies into .venv (first time: a few minutes, TensorFlow is large)"
.tools/bin/poetry export -q -f requirements.txt --with "$GROUPS_WITH" --output .venv/requirements.lock.txt
.venv/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps \
  -r .venv/requirements.lock.txt
.tools/bin/poetry install -q --no-root --with "$GROUPS_WITH"
touch "$STAMP"
echo ">> environment ready: $(.venv/bin/python --version), $(.venv/bin/pip list 2>/dev/null | wc -l) packages"
