"""Fixtures of the end-to-end tests (marker ``e2e``): they start real processes (Airflow's components,
PostgreSQL, Chromium) on 127.0.0.1 and stop them afterwards. Helpers live in ``e2e_harness.py``."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
from e2e_harness import E2E_SENTINEL_TOKEN, EXAMPLE_DAGS, ImportServerClient

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def import_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImportServerClient]:
    """The local import server (Milvus Lite behind it), token-protected with the e2e sentinel token.

    Imports are throttled (2,000 rows/s) so that an example pipeline's import is still running when its
    operator first checks, and it has to wait in the triggerer.
    """
    from airflow_milvus_import.local import LocalImportServer

    root = tmp_path_factory.mktemp("e2e-import-server")
    bucket = root / "bucket"
    bucket.mkdir()
    with LocalImportServer(
        data_dir=root / "data", bucket=bucket, token=E2E_SENTINEL_TOKEN, rows_per_second=2000
    ) as server:
        yield ImportServerClient(server, bucket, E2E_SENTINEL_TOKEN)


@pytest.fixture(scope="module")
def example_dags_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DAGs folder holding copies of the project's example DAGs, as a user would deploy them."""
    folder = tmp_path_factory.mktemp("e2e-dags")
    dag_files = sorted(EXAMPLE_DAGS.glob("*.py"))
    assert dag_files, f"no example DAGs in {EXAMPLE_DAGS}"
    for path in dag_files:
        shutil.copy(path, folder / path.name)
    return folder
