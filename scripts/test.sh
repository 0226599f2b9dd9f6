#!/usr/bin/env bash
# Install what the tests need (into .venv) and run the whole test suite, plus ruff and mypy.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` or `bash scripts/test.sh tests/local`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh test
echo "==> system packages for the e2e tests (chromium, postgresql)"
bash scripts/install-system-deps.sh

echo "==> ruff"
ruff check .
echo "==> mypy"
mypy airflow_milvus_import
echo "==> pytest"
# pytest exits 5 when it collected nothing: that fails this script like any other failure.
python -m pytest "$@"
