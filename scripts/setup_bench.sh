#!/usr/bin/env bash
# Create (or reuse) the benchmark venv and install the peer tool DVC into it.
#
# Usage: scripts/setup_bench.sh
#   DSV_BENCH_VENV  venv location (default: /work/bench-venv)
#   PYTHON          interpreter used to create the venv (default: python3)
#
# Idempotent: an existing venv is reused and dvc is only installed when
# `dvc --version` does not already work inside it.
set -euo pipefail

VENV="${DSV_BENCH_VENV:-/work/bench-venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv at $VENV"
    "$PYTHON" -m venv "$VENV"
fi

if "$VENV/bin/dvc" --version >/dev/null 2>&1; then
    echo "dvc already installed: $("$VENV/bin/dvc" --version)"
else
    echo "installing dvc into $VENV (this takes a while)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet dvc
    echo "installed dvc $("$VENV/bin/dvc" --version)"
fi
# The remote benchmark (scripts/bench_remote.py) pushes to S3: DVC needs its S3 plugin.
if "$VENV/bin/python" -c "import dvc_s3" >/dev/null 2>&1; then
    echo "dvc-s3 already installed"
else
    echo "installing dvc-s3 into $VENV"
    "$VENV/bin/python" -m pip install --quiet "dvc[s3]"
fi
echo "dvc binary: $VENV/bin/dvc"
