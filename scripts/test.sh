#!/usr/bin/env bash
# Install what the tests need (into .venv) and run the whole test suite, plus ruff and mypy; then the core
# suite on every other supported Airflow (scripts/test-matrix.sh all: 2.11, 3.0, 3.1, 3.2, and 3.3 on Python
# 3.13, two at a time; their virtualenvs install in the background while the whole suite runs).
# Extra arguments go to the whole suite's pytest, e.g. `bash scripts/test.sh -m "not slow"`; with
# arguments the matrix is skipped (AMI_MATRIX=1 runs it anyway, AMI_MATRIX=0 never).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh test
echo "==> system packages for the e2e tests (chromium, postgresql)"
bash scripts/install-system-deps.sh

echo "==> ruff"
ruff check .
echo "==> mypy"
mypy airflow_milvus_import
run_matrix=${AMI_MATRIX:-}
if [ -z "$run_matrix" ]; then
  if [ $# -eq 0 ]; then run_matrix=1; else run_matrix=0; fi
fi
matrix_install_pid=
if [ "$run_matrix" = 1 ]; then
  # the other versions' virtualenvs install while the whole suite runs, at the lowest CPU priority so the
  # timing of the suite's real Airflow processes stays as on an idle machine
  echo "==> installing the matrix virtualenvs in the background (log: .matrix-install.log)"
  nice -n 19 bash scripts/test-matrix.sh install all > .matrix-install.log 2>&1 &
  matrix_install_pid=$!
fi
echo "==> pytest (whole suite, $(python -c 'import airflow; print("Airflow", airflow.__version__)'))"
# pytest exits 5 when it collected nothing: that fails this script like any other failure.
status=0
python -m pytest --durations=15 "$@" || status=$?

if [ "$run_matrix" = 1 ]; then
  wait "$matrix_install_pid" || true  # a failed install is reported by the matrix run itself
  cat .matrix-install.log
  echo "==> core suite on every supported Airflow (scripts/test-matrix.sh all)"
  bash scripts/test-matrix.sh all || status=$?
fi
exit $status
