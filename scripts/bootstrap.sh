#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install the package with the given extras.
# Usage: source scripts/bootstrap.sh [extras]   (default extras: local)
# Re-installs only when pyproject.toml or the extras changed; prints where it is.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=${1:-local}
python_bin=${PYTHON:-python3}
venv="${AMI_VENV:-$repo_root/.venv}"
project_hash="$(sha256sum < "$repo_root/pyproject.toml" | cut -c1-16)"
stamp="$venv/.ami-installed-$extras"

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating virtualenv $venv"
  "$python_bin" -m venv "$venv"
fi
installed() { [ "$(cat "$venv/.ami-installed-$1" 2>/dev/null || true)" = "$project_hash" ]; }
# the test extra includes the local one
if ! installed "$extras" && ! { [ "$extras" = local ] && installed test; }; then
  echo "==> installing airflow-milvus-import[$extras] into $venv (first run takes a few minutes)"
  # grep drops the "Location ... is ignored" lines some pip configurations print per package; pipefail keeps pip's exit status
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -U pip wheel 2>&1 | { grep -v "is ignored: it is neither" || true; }
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -e "$repo_root[$extras]" 2>&1 \
    | { grep -v "is ignored: it is neither" || true; }
  echo "$project_hash" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
