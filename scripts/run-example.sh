#!/usr/bin/env bash
# The main job (the README's first command): set up the virtualenv, start the local import server
# (Milvus Lite), run example_dags/example_milvus_import_local_pipeline.py with Airflow for real, print what
# happened and stop everything it started. Airflow's own logs go to .airflow-home/airflow.log.
# Usage: bash scripts/run-example.sh [--rows N] [--files N] [--dim N]   (see --help)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh local
exec python scripts/run_example.py "$@"
