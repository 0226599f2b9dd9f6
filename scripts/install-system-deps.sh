#!/usr/bin/env bash
# Install the Debian packages the end-to-end tests need: chromium (the browser test, driven by PyPI's
# playwright with executable_path=/usr/bin/chromium; no browser download) and postgresql (the two-triggerer
# HA test starts a throwaway cluster with initdb / pg_ctl from /usr/lib/postgresql/<version>/bin).
# Idempotent and quiet: runs `apt-get update` and `apt-get install` only when something is missing, and only
# as root (otherwise it says what is missing and leaves it; the tests that need it then skip and say why).
# Prints one line saying what it did. Usage: bash scripts/install-system-deps.sh
set -euo pipefail

missing=()
if [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "==> system deps: chromium and postgresql already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "==> system deps: missing ${missing[*]}; not root, so not installing (the e2e tests needing them will skip)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "==> system deps: missing ${missing[*]}; no apt-get here, so not installing (the e2e tests needing them will skip)" >&2
  exit 0
fi

echo "==> system deps: installing ${missing[*]} with apt-get (about a minute)"
export DEBIAN_FRONTEND=noninteractive
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  # The tests start throwaway clusters of their own: no need for Debian's default one on port 5432.
  mkdir -p /etc/postgresql-common/createcluster.d
  conf=/etc/postgresql-common/createcluster.d/00-airflow-milvus-import.conf
  [ -e "$conf" ] || echo "create_main_cluster = false" > "$conf"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "==> system deps: apt-get failed; its output:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
echo "==> system deps: installed ${missing[*]}"
