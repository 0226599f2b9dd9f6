#!/usr/bin/env bash
# Run the core test suite on one supported Airflow version, in its own virtualenv in the checkout.
# Usage: bash scripts/test-matrix.sh VERSION [pytest args...]     VERSION: 2.11, 3.0, 3.1, 3.2 or 3.3
#        bash scripts/test-matrix.sh all [pytest args...]          every version, AMI_MATRIX_LANES (default 2)
#                                                                  at a time, each version's output printed
#                                                                  whole when it ends
#        bash scripts/test-matrix.sh install VERSION|all          only create/refresh the virtualenvs
# The virtualenv is .venv-airflow-VERSION/ (reused while pyproject.toml, the version's pin file and this
# script's install steps are unchanged); the pins are constraints/airflow-VERSION.txt (the Airflow release itself first,
# then each pin that release needs, with the reason). Prints one summary line per version:
#   matrix: airflow 3.1 (apache-airflow 3.1.8, Python 3.11.7): PASSED in 212s (install 95s, tests 117s)
# Exits non-zero when any version fails, including pytest's exit 5 (nothing collected).
set -uo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

versions_all=(2.11 3.0 3.1 3.2 3.3)

# Python per Airflow version: the oldest Airflow on the oldest Python, the newest on the newest, so each
# declared Python (3.10-3.13) runs the suite at least once (the whole suite runs on 3.3 with Python 3.11).
python_for() {
  case "$1" in
    2.11) echo 3.10 ;;
    3.0 | 3.1) echo 3.11 ;;
    3.2) echo 3.12 ;;
    3.3) echo 3.13 ;;
  esac
}

# The interpreter python3.X: from PATH when it runs, else from pyenv's versions (its shims refuse a
# version that is not selected).
find_python() {
  local minor=$1 candidate
  if candidate=$(command -v "python$minor") && "$candidate" -c '' 2>/dev/null; then
    echo "$candidate"; return 0
  fi
  if command -v pyenv >/dev/null; then
    for candidate in "$(pyenv root)"/versions/"$minor".*/bin/"python$minor"; do
      if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
    done
  fi
  return 1
}

# Create (or reuse) .venv-airflow-VERSION; returns non-zero with a "matrix: ... FAILED" line on failure.
ensure_venv() {
  local version=$1
  local pins="constraints/airflow-$version.txt" venv="$repo_root/.venv-airflow-$version"
  local minor python_bin rc=0
  if [ ! -f "$pins" ]; then
    echo "matrix: airflow $version: FAILED: unknown version (no $pins; supported: ${versions_all[*]})"; return 2
  fi
  minor=$(python_for "$version")
  if ! python_bin=$(find_python "$minor"); then
    echo "matrix: airflow $version: FAILED: python$minor not found"; return 2
  fi
  local stamp_value
  # what the virtualenv is made of: the project's metadata, the pins, and this function's install steps
  stamp_value="$({ cat pyproject.toml "$pins"; declare -f ensure_venv; } | sha256sum | cut -c1-16) $python_bin"
  if [ "$(cat "$venv/.ami-matrix-installed" 2>/dev/null || true)" != "$stamp_value" ]; then
    echo "==> airflow $version: creating $venv with $python_bin and installing (a few minutes)"
    rm -rf "$venv"
    "$python_bin" -m venv "$venv" || rc=$?
    if [ $rc -eq 0 ]; then
      # the pin file names the Airflow release; constraints hold every other package where it must be
      local airflow_pin
      airflow_pin=$(grep -E '^apache-airflow==' "$pins" | sed 's/[[:space:]]*#.*//')
      { "$venv/bin/python" -m pip install --disable-pip-version-check -q -U pip wheel \
          && "$venv/bin/python" -m pip install --disable-pip-version-check -q -c "$pins" \
               "$airflow_pin" -e "$repo_root[local,test-core]"; } 2>&1 \
        | { grep -v "is ignored: it is neither" || true; }
      rc=${PIPESTATUS[0]}
    fi
    if [ $rc -ne 0 ]; then
      echo "matrix: airflow $version: FAILED: install into $venv failed (exit $rc)"; return 1
    fi
    echo "$stamp_value" > "$venv/.ami-matrix-installed"
  else
    echo "==> airflow $version: reusing $venv"
  fi
}

run_version() {
  local version=$1; shift
  local venv="$repo_root/.venv-airflow-$version"
  local started install_done finished rc=0
  started=$(date +%s)
  ensure_venv "$version" || return $?
  install_done=$(date +%s)
  local airflow_version python_version
  airflow_version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')
  python_version=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
  echo "==> airflow $version: core suite (apache-airflow $airflow_version, Python $python_version)"
  # the subset that runs on every version (tests/conftest.py marks it `core`); pytest's exit 5 fails too
  local selection=(-m core)
  [ $# -gt 0 ] && selection=("$@")
  ( export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv"; unset PYTHONPATH
    "$venv/bin/python" -m pytest -p no:cacheprovider --durations=10 "${selection[@]}" ) || rc=$?
  finished=$(date +%s)
  local outcome=PASSED
  [ $rc -ne 0 ] && outcome="FAILED (pytest exit $rc)"
  echo "matrix: airflow $version (apache-airflow $airflow_version, Python $python_version): $outcome" \
    "in $((finished - started))s (install $((install_done - started))s, tests $((finished - install_done))s)"
  return $rc
}

if [ $# -lt 1 ]; then
  echo "usage: bash scripts/test-matrix.sh VERSION|all [pytest args...]   (VERSION: ${versions_all[*]})" >&2
  exit 2
fi
target=$1; shift
if [ "$target" = install ]; then
  [ $# -eq 1 ] || { echo "usage: bash scripts/test-matrix.sh install VERSION|all" >&2; exit 2; }
  targets=("$1"); [ "$1" = all ] && targets=("${versions_all[@]}")
  failed=0
  for version in "${targets[@]}"; do ensure_venv "$version" || failed=1; done
  exit $failed
fi
if [ "$target" = all ]; then
  lanes=${AMI_MATRIX_LANES:-2}
  logs_dir=$(mktemp -d)
  trap 'rm -rf "$logs_dir"' EXIT
  # the slowest versions first, so the lanes end close together
  order=(3.2 3.1 3.0 2.11 3.3)
  running=0 failed=0
  finish_one() {
    local done_version status
    wait -n -p done_pid || true
    for done_version in "${order[@]}"; do
      if [ "$(cat "$logs_dir/$done_version.pid" 2>/dev/null)" = "$done_pid" ]; then
        status=$(cat "$logs_dir/$done_version.rc" 2>/dev/null || echo 1)
        cat "$logs_dir/$done_version.log"
        [ "$status" -ne 0 ] && failed=1
        rm -f "$logs_dir/$done_version.pid"
      fi
    done
    running=$((running - 1))
  }
  for version in "${order[@]}"; do
    [ "$running" -ge "$lanes" ] && finish_one
    ( run_version "$version" "$@" > "$logs_dir/$version.log" 2>&1; echo $? > "$logs_dir/$version.rc" ) &
    echo $! > "$logs_dir/$version.pid"
    echo "==> airflow $version: started (output follows when it ends)"
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do finish_one; done
  for version in "${versions_all[@]}"; do grep '^matrix: ' "$logs_dir/$version.log" | tail -n1; done
  exit $failed
fi
run_version "$target" "$@"
