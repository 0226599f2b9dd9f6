"""
Many files, one import job each (dynamic task mapping), one sensor waiting for all of them.

1. ``create_collection``: (re)create the collection with pymilvus ``MilvusClient``.
2. ``write_files``: write ``files`` Parquet files of ``rows_per_file`` rows with pymilvus' ``LocalBulkWriter``
   into the import server's bucket; returns ``writer.batch_files`` (one inner list per file).
3. ``import_file``: :class:`MilvusBulkImportOperator` mapped over those files with
   ``.partial(...).expand(files=...)``: one task instance and one import job per file, each returning its job
   id at once (``wait_for_completion=False``), so a file's job starts as soon as a worker takes it.
4. ``wait_for_imports``: one :class:`MilvusImportJobSensor` (deferrable) on every job id of the mapped task:
   one trigger instead of one per file; any failed job fails it, naming the job and the file.
5. ``verify_row_count``: the rows in Milvus equal the rows written.

Configuration as in ``example_milvus_import_local_pipeline``: connection ``milvus_import_default``; Variables
``milvus_import_example_bucket`` (default ``~/.local-milvus/bucket``) and ``milvus_import_example_milvus_uri``
(default ``http://127.0.0.1:19531``); params ``collection``, ``files``, ``rows_per_file``, ``dim``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, get_current_context, task

from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator
from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor


@dag(
    dag_id="example_milvus_import_mapped",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "milvus", "milvus-import"],
    params={
        "collection": Param("example_mapped_embeddings", type="string", minLength=1),
        "files": Param(5, type="integer", minimum=1, maximum=1000, description="files, one import job each"),
        "rows_per_file": Param(500, type="integer", minimum=1),
        "dim": Param(32, type="integer", minimum=2, maximum=4096),
    },
    doc_md=__doc__,
)
def example_milvus_import_mapped() -> None:
    @task
    def create_collection() -> str:
        from airflow_milvus_import.local.examples import recreate_collection

        params = get_current_context()["params"]
        return recreate_collection(str(params["collection"]), int(params["dim"]), metric="L2")

    @task
    def write_files(collection: str) -> list[list[str]]:
        from airflow_milvus_import.local.examples import run_folder, write_parquet

        context = get_current_context()
        params = context["params"]
        files, per_file, dim = int(params["files"]), int(params["rows_per_file"]), int(params["dim"])
        target = run_folder("example-mapped", collection, context["run_id"])
        return write_parquet(target, files * per_file, dim, rows_per_file=per_file, seed=11)

    @task
    def verify_row_count(collection: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        from airflow_milvus_import.local.examples import count_rows

        params = get_current_context()["params"]
        expected = int(params["files"]) * int(params["rows_per_file"])
        counted = count_rows(collection)
        imported = sum(job["imported_rows"] for job in jobs)
        summary = {
            "collection": collection,
            "jobs": len(jobs),
            "rows_imported": imported,
            "rows_in_collection": counted,
        }
        print(f"Row check: {summary}")
        if counted != expected or imported != expected:
            raise ValueError(
                f"Row count mismatch in collection {collection!r}: wrote {expected:,} rows, {len(jobs)} jobs "
                f"reported {imported:,}, Milvus counts {counted:,}"
            )
        return summary

    collection = create_collection()
    import_file = MilvusBulkImportOperator.partial(
        task_id="import_file",
        collection_name=collection,
        wait_for_completion=False,
    ).expand(files=write_files(collection))
    wait_for_imports = MilvusImportJobSensor(
        task_id="wait_for_imports",
        job_id=import_file.output,
        deferrable=True,
        poll_interval=2,
        timeout=1800,
    )
    verify_row_count(collection, wait_for_imports.output)


example_milvus_import_mapped()
