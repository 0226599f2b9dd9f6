"""
The example DAGs: cheap to parse, and each one runs green under ``dag.test()`` against the local server.

They are configured as a user would: the ``milvus_import_default`` connection and the example Variables
through ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` environment variables, sizes through the run's conf.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_milvus_import import compat
from tests.airflow_versions import DAGBAG_IMPORT_SOURCE
from tests.conftest import REPO_ROOT
from tests.unit.operators.test_milvus_import import count_rows, run_dag, task_states, use_dags_folder, xcom

if TYPE_CHECKING:
    from pathlib import Path

EXAMPLE_DAGS = REPO_ROOT / "example_dags"
EXAMPLE_DAG_IDS = {
    "example_milvus_import_local_pipeline",
    "example_milvus_import_gate",
    "example_milvus_import_mapped",
    "example_milvus_import_assets_producer",
    "example_milvus_import_assets_consumer",
    "example_milvus_import_event_driven",
}


@pytest.fixture
def examples(airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_dags_folder(monkeypatch, EXAMPLE_DAGS)
    # The assets example reads its endpoint when parsed: the same as every other test parsing the folder
    monkeypatch.setenv("MILVUS_IMPORT_EXAMPLE_ENDPOINT", local_server.url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT",
        json.dumps({"conn_type": "milvus_import", "host": local_server.url}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_BUCKET", str(local_server.bucket))
    monkeypatch.setenv("AIRFLOW_VAR_MILVUS_IMPORT_EXAMPLE_MILVUS_URI", local_server.milvus_uri)
    return local_server


def test_example_dags_parse_without_errors_and_without_heavy_imports() -> None:
    code = (
        "import sys, json\n"
        f"{DAGBAG_IMPORT_SOURCE}"
        "before = set(sys.modules)\n"
        f"bag = DagBag(dag_folder={str(EXAMPLE_DAGS)!r})\n"
        "new = set(sys.modules) - before\n"
        "heavy = sorted(m for m in new if m.split('.')[0] in ('pymilvus', 'numpy', 'pyarrow', 'pandas', "
        "'milvus_lite') or m.startswith('airflow_milvus_import.hooks'))\n"
        "print(json.dumps({'dags': sorted(bag.dag_ids), 'errors': bag.import_errors, 'heavy': heavy}))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    parsed = json.loads(output.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    expected = set(EXAMPLE_DAG_IDS)
    if not compat.HAS_EVENT_TRIGGERS:
        expected.discard("example_milvus_import_event_driven")
    assert set(parsed["dags"]) == expected
    assert parsed["heavy"] == []


@pytest.mark.integration
def test_local_pipeline_example(examples: Any) -> None:
    collection = f"example_pipeline_{uuid.uuid4().hex[:8]}"

    run = run_dag(
        "example_milvus_import_local_pipeline",
        {"collection": collection, "rows": 1500, "files": 3, "dim": 16},
        folder=EXAMPLE_DAGS,
    )

    assert str(run.state) == "success", task_states(run)
    imported = xcom(run, "import_embeddings")
    assert imported["state"] == "Completed"
    assert imported["imported_rows"] == 1500
    assert len(imported["details"]) == 3
    assert xcom(run, "import_embeddings", "job_id") == imported["job_id"]
    listed = xcom(run, "list_file_details")
    assert [job["job_id"] for job in listed] == [imported["job_id"]]
    details = xcom(run, "list_file_details", "file_details")
    assert len(details) == 3
    assert sum(record["imported_rows"] for record in details) == 1500
    assert xcom(run, "verify_row_count") == {
        "collection": collection,
        "job_id": imported["job_id"],
        "files": 3,
        "rows_written": 1500,
        "rows_imported": 1500,
        "rows_in_collection": 1500,
    }
    assert count_rows(examples, collection) == 1500


@pytest.mark.integration
def test_mapped_example(examples: Any) -> None:
    collection = f"example_mapped_{uuid.uuid4().hex[:8]}"

    run = run_dag(
        "example_milvus_import_mapped",
        {"collection": collection, "files": 3, "rows_per_file": 40, "dim": 8},
        folder=EXAMPLE_DAGS,
    )

    assert str(run.state) == "success", task_states(run)
    states = task_states(run)
    assert sorted(index for task_id, index in states if task_id == "import_file") == [0, 1, 2]
    job_ids = [xcom(run, "import_file", map_index=index) for index in range(3)]
    assert len(set(job_ids)) == 3
    waited = xcom(run, "wait_for_imports")
    assert sorted(job["job_id"] for job in waited) == sorted(job_ids)
    assert xcom(run, "verify_row_count") == {
        "collection": collection,
        "jobs": 3,
        "rows_imported": 120,
        "rows_in_collection": 120,
    }


@pytest.mark.integration
def test_gate_example_passes_a_finished_import_and_blocks_a_failed_one(examples: Any) -> None:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from tests.unit.operators.test_milvus_import import new_collection, relative, write_files

    collection = new_collection(examples, "gate")
    batches = relative(examples, write_files(examples, collection, [15, 25]))
    with MilvusImportHook() as hook:
        good = hook.create_import_job(collection, batches, options={"local.duration": "2"})
        bad = hook.create_import_job(collection, batches[:1], options={"local.fail": "object not readable"})

    passed = run_dag("example_milvus_import_gate", {"job_id": good, "min_rows": 40}, folder=EXAMPLE_DAGS)
    assert str(passed.state) == "success", task_states(passed)
    assert xcom(passed, "check_import") == {"job_id": good, "collection": collection, "rows": 40, "files": 2}
    assert "40 new rows from 2 file(s)" in xcom(passed, "publish")

    blocked = run_dag("example_milvus_import_gate", {"job_id": bad}, folder=EXAMPLE_DAGS)
    assert str(blocked.state) == "failed"
    states = task_states(blocked)
    assert states[("wait_for_import", -1)] == "failed"
    assert states[("publish", -1)] == "upstream_failed"
