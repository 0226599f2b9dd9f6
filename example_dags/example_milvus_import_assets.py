"""
Data-aware scheduling: a downstream DAG runs when an import lands in a collection.

Two DAGs share one asset, the collection ``example_asset_books`` of the endpoint the
``milvus_import_default`` connection names (``milvus://{host}:{port}/default/example_asset_books``):

* ``example_milvus_import_assets_producer`` writes embeddings to Parquet (pymilvus' ``LocalBulkWriter``,
  into the local import server's bucket), imports them with :class:`MilvusBulkImportOperator` and declares
  the collection as the import's outlet. When the import has landed, Airflow records an asset event whose
  ``extra`` holds the job id, collection, database and row counts.
* ``example_milvus_import_assets_consumer`` is scheduled on that asset. Its first step is
  :class:`MilvusImportJobSensor` on the job ids of the asset events that triggered the run
  (``JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS``): it confirms they are Completed (and would wait for them, if
  the producer used ``wait_for_completion=False`` to fire the event as soon as the job was created). Then
  ``publish`` does the downstream work (here a log line standing in for refreshing a search alias).

An asset's URI is fixed when the DAG file is parsed, so the endpoint is read from the environment variable
``MILVUS_IMPORT_EXAMPLE_ENDPOINT`` (default ``http://127.0.0.1:19530``, the local server's default port):
set it to the Host of the ``milvus_import_default`` connection. Other settings as in
``example_milvus_import_local_pipeline``: Airflow Variables ``milvus_import_example_bucket`` and
``milvus_import_example_milvus_uri``.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, get_current_context, task

from airflow_milvus_import.lineage import milvus_collection_asset
from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator
from airflow_milvus_import.sensors.milvus_import import (
    JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS,
    MilvusImportJobSensor,
)

ENDPOINT = os.environ.get("MILVUS_IMPORT_EXAMPLE_ENDPOINT", "http://127.0.0.1:19530")
COLLECTION = "example_asset_books"
BOOKS = milvus_collection_asset(COLLECTION, endpoint=ENDPOINT)


@dag(
    dag_id="example_milvus_import_assets_producer",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "milvus", "milvus-import", "assets"],
    params={
        "rows": Param(1_000, type="integer", minimum=1, description="rows to import"),
        "dim": Param(16, type="integer", minimum=2, maximum=4096, description="embedding dimension"),
    },
    doc_md=__doc__,
)
def example_milvus_import_assets_producer() -> None:
    @task
    def prepare_files() -> list[list[str]]:
        """(Re)create the collection and write the rows as Parquet into the bucket; return batch_files."""
        from airflow_milvus_import.local.examples import recreate_collection, run_folder, write_parquet

        context = get_current_context()
        rows, dim = int(context["params"]["rows"]), int(context["params"]["dim"])
        recreate_collection(COLLECTION, dim)
        target = run_folder("example-assets", context["run_id"])
        return write_parquet(target, rows, dim, rows_per_file=rows, seed=11)

    MilvusBulkImportOperator(
        task_id="import_books",
        collection_name=COLLECTION,
        files=prepare_files(),
        outlets=[BOOKS],
        deferrable=True,
        poll_interval=2,
        timeout=1800,
    )


@dag(
    dag_id="example_milvus_import_assets_consumer",
    schedule=[BOOKS],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "milvus", "milvus-import", "assets"],
    doc_md=__doc__,
)
def example_milvus_import_assets_consumer() -> None:
    wait_for_imports = MilvusImportJobSensor(
        task_id="wait_for_imports",
        job_id=JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS,
        deferrable=True,
        poll_interval=5,
        timeout=6 * 60 * 60,
    )

    @task
    def publish(jobs: list[dict[str, Any]]) -> dict[str, Any]:
        """The downstream work (a stand-in): report what the triggering imports brought."""
        events = [
            event
            for asset_events in get_current_context()["triggering_asset_events"].values()
            for event in asset_events
        ]
        summary = {
            "collection": COLLECTION,
            "jobs": [job["job_id"] for job in jobs],
            "rows": sum(job["imported_rows"] for job in jobs),
            "events": [
                {
                    "source": f"{event.source_dag_id}/{event.source_run_id}",
                    "job_id": event.extra.get("job_id"),
                }
                for event in events
            ],
        }
        print(
            f"Collection {COLLECTION!r} received {summary['rows']:,} rows from import job(s) "
            f"{', '.join(summary['jobs'])}: publishing"
        )
        return summary

    publish(wait_for_imports.output)


example_milvus_import_assets_producer()
example_milvus_import_assets_consumer()
