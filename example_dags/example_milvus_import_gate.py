"""
Gate downstream work on an import job that some other system started.

A loader outside Airflow (a Spark job, a vendor's pipeline, a colleague's script) starts a Milvus / Zilliz
Cloud bulk import and triggers this DAG with the job id::

    airflow dags trigger example_milvus_import_gate --conf '{"job_id": "448761313698322011"}'

``wait_for_import`` (:class:`MilvusImportJobSensor`, deferrable) waits for the job without holding a worker
slot: the DAG goes on only when the job is ``Completed``, fails (naming the failed files and the reason)
when it fails, and stops waiting after ``timeout``. ``check_import`` then checks the job's numbers (at
least ``min_rows`` rows, no failed file), and only then does ``publish`` run: the downstream work (here a
log line standing in for refreshing a search alias, warming a cache or notifying a team).

Configuration: connection ``milvus_import_default`` (the endpoint that runs the job); DAG params ``job_id``
(required) and ``min_rows``. The sensor's XCom ``return_value`` is the job's final
progress (``ImportJobProgress.to_dict()``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor


@dag(
    dag_id="example_milvus_import_gate",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "milvus", "milvus-import"],
    params={
        "job_id": Param(type="string", minLength=1, description="the import job to wait for"),
        "min_rows": Param(1, type="integer", minimum=0, description="fewer imported rows fail the check"),
    },
    doc_md=__doc__,
)
def example_milvus_import_gate() -> None:
    wait_for_import = MilvusImportJobSensor(
        task_id="wait_for_import",
        job_id="{{ params.job_id }}",
        deferrable=True,
        poll_interval=5,
        timeout=6 * 60 * 60,
    )

    @task
    def check_import(progress: dict[str, Any]) -> dict[str, Any]:
        """Fail unless the job imported at least ``min_rows`` rows and every file completed."""
        from airflow.providers.common.compat.sdk import get_current_context

        min_rows = int(get_current_context()["params"]["min_rows"])
        files = progress.get("details") or []
        not_completed = [item["file_name"] for item in files if item["state"] != "Completed"]
        if progress["imported_rows"] < min_rows or not_completed:
            raise ValueError(
                f"Import job {progress['job_id']} into {progress['collection_name']!r} does not pass: "
                f"{progress['imported_rows']:,} rows (at least {min_rows:,} wanted), "
                f"files not completed: {not_completed or 'none'}"
            )
        return {
            "job_id": progress["job_id"],
            "collection": progress["collection_name"],
            "rows": progress["imported_rows"],
            "files": len(files),
        }

    @task
    def publish(checked: dict[str, Any]) -> str:
        """The downstream work the import gates (a stand-in: refresh an alias, warm a cache, notify...)."""
        message = (
            f"Collection {checked['collection']!r} has {checked['rows']:,} new rows from {checked['files']} "
            f"file(s) (import job {checked['job_id']}): publishing"
        )
        print(message)
        return message

    publish(check_import(wait_for_import.output))


example_milvus_import_gate()
