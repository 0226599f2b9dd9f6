#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install the package with the given extras.
# Usage: source scripts/bootstrap.sh [extras]   (default extras: local)
# Re-installs only when pyproject.toml or the extras changed; prints where it is.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=${1:-local}
python_bin=${PYTHON:-python3}
venv="${AMI_VENV:-$repo_root/.venv}"
stamp="$venv/.ami-installed"
wanted="$(cat "$repo_root/pyproject.toml" | sha256sum | cut -c1-16)-$extras"

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating virtualenv $venv"
  "$python_bin" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  echo "==> installing airflow-milvus-import[$extras] into $venv (first run takes a few minutes)"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -U pip wheel
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -e "$repo_root[$extras]"
  echo "$wanted" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
