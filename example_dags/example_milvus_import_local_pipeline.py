"""
The whole pipeline, on a laptop: embeddings to Parquet, bulk import into Milvus, per-file report, row check.

1. ``create_collection``: (re)create the collection in Milvus with pymilvus ``MilvusClient``.
2. ``write_dataset``: write ``rows`` rows of ``dim``-dimensional embeddings as ``files`` Parquet files with
   pymilvus' ``LocalBulkWriter`` into the import server's bucket; returns ``writer.batch_files``.
3. ``import_embeddings``: :class:`MilvusBulkImportOperator` imports them in one job and waits for it in the
   triggerer (deferrable: no worker slot is held while Milvus works).
4. ``list_file_details``: :class:`MilvusListImportJobsOperator` reports this run's jobs with per-file details
   (XCom ``file_details``).
5. ``verify_row_count``: counts the rows in Milvus and fails unless every row arrived.

It runs against the local import server (``milvus-import-local``, Milvus Lite behind it), or a real Milvus
whose bucket you can write to. Configuration:

* connection ``milvus_import_default``: the import endpoint, e.g.
  ``AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT='{"conn_type": "milvus_import", "host": "http://127.0.0.1:19530"}'``;
* Airflow Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables): ``milvus_import_example_bucket``, the
  folder the server imports from (default ``~/.local-milvus/bucket``, the bucket of
  ``milvus-import-local --data-dir ~/.local-milvus``), and ``milvus_import_example_milvus_uri``, the Milvus
  URI for pymilvus (default ``http://127.0.0.1:19531``, that server's Milvus Lite);
* DAG params: ``collection``, ``rows``, ``dim``, ``files``, ``seed``.

Only Airflow and this provider are imported when the file is parsed; pymilvus and numpy load inside tasks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, get_current_context, task

from airflow_milvus_import.operators.milvus_import import (
    MilvusBulkImportOperator,
    MilvusListImportJobsOperator,
)


@dag(
    dag_id="example_milvus_import_local_pipeline",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "milvus", "milvus-import"],
    params={
        "collection": Param(
            "example_embeddings", type="string", minLength=1, description="target collection"
        ),
        "rows": Param(20_000, type="integer", minimum=1, description="rows to generate"),
        "dim": Param(64, type="integer", minimum=2, maximum=4096, description="embedding dimension"),
        "files": Param(4, type="integer", minimum=1, maximum=1000, description="Parquet files to write"),
        "seed": Param(7, type="integer", description="random seed of the embeddings"),
    },
    doc_md=__doc__,
)
def example_milvus_import_local_pipeline() -> None:
    @task
    def create_collection() -> str:
        """Drop and create the collection (with a vector index, so it is loaded and queryable)."""
        from airflow_milvus_import.local.examples import recreate_collection

        params = get_current_context()["params"]
        return recreate_collection(str(params["collection"]), int(params["dim"]), with_text=True)

    @task
    def write_dataset(collection: str) -> list[list[str]]:
        """Write the rows as Parquet files into the bucket; return ``batch_files`` (absolute paths)."""
        from airflow_milvus_import.local.examples import run_folder, write_parquet

        context = get_current_context()
        params = context["params"]
        rows, dim, files = int(params["rows"]), int(params["dim"]), int(params["files"])
        target = run_folder("example-pipeline", collection, context["run_id"])
        batch_files = write_parquet(
            target, rows, dim, rows_per_file=-(-rows // files), seed=int(params["seed"]), with_text=True
        )
        print(
            f"Wrote {rows:,} rows of {dim}-dim embeddings as {len(batch_files)} Parquet files under {target}"
        )
        return batch_files

    @task
    def verify_row_count(collection: str, imported: dict[str, Any]) -> dict[str, Any]:
        """Count the rows in Milvus; fail unless they match what was written and what the job reported."""
        from airflow_milvus_import.local.examples import count_rows

        expected = int(get_current_context()["params"]["rows"])
        counted = count_rows(collection)
        summary = {
            "collection": collection,
            "job_id": imported["job_id"],
            "files": len(imported["details"]),
            "rows_written": expected,
            "rows_imported": imported["imported_rows"],
            "rows_in_collection": counted,
        }
        print(f"Row check: {summary}")
        if counted != expected or imported["imported_rows"] != expected:
            raise ValueError(
                f"Row count mismatch in collection {collection!r}: wrote {expected:,}, the import job "
                f"{imported['job_id']} reported {imported['imported_rows']:,}, Milvus counts {counted:,}"
            )
        return summary

    collection = create_collection()
    files = write_dataset(collection)
    import_embeddings = MilvusBulkImportOperator(
        task_id="import_embeddings",
        collection_name=collection,
        files=files,
        deferrable=True,
        poll_interval=2,
        timeout=1800,
        # A retry is safe: it reconnects to this try's job instead of importing the files again. It also
        # covers an Airflow scheduler race (apache/airflow#67287, #72716) that can fail a deferred task whose
        # trigger fires within seconds of its deferral.
        retries=2,
        retry_delay=timedelta(seconds=10),
    )
    list_file_details = MilvusListImportJobsOperator(
        task_id="list_file_details",
        collection_name="{{ params.collection }}",
        created_since="{{ dag_run.start_date }}",
    )
    check = verify_row_count(collection, import_embeddings.output)
    import_embeddings >> list_file_details >> check


example_milvus_import_local_pipeline()
