#!/usr/bin/env bash
# Install what the tests need (into .venv) and run the whole test suite, plus ruff and mypy; then the core
# suite on every other supported Airflow (scripts/test-matrix.sh 2.11, 3.0, 3.1, 3.2, 3.3 on Python 3.13).
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
echo "==> pytest (whole suite, $(python -c 'import airflow; print("Airflow", airflow.__version__)'))"
# pytest exits 5 when it collected nothing: that fails this script like any other failure.
status=0
python -m pytest "$@" || status=$?

run_matrix=${AMI_MATRIX:-}
if [ -z "$run_matrix" ]; then
  if [ $# -eq 0 ]; then run_matrix=1; else run_matrix=0; fi
fi
if [ "$run_matrix" = 1 ]; then
  echo "==> core suite on every supported Airflow (scripts/test-matrix.sh all)"
  bash scripts/test-matrix.sh all || status=$?
fi
exit $status
