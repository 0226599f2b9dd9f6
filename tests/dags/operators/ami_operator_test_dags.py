"""
DAGs the operator tests run with ``dag.test()`` (it only runs DAGs that live in the DAGs folder).

Each DAG reads what varies from its params (``render_template_as_native_obj`` keeps lists and dicts native),
so a test passes ``run_conf``: collection, files, options, filters. What cannot be templated (deferrable,
waiting, timeouts) is spelled out per DAG.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, get_current_context, task

from airflow_milvus_import.operators.milvus_import import (
    MilvusBulkImportOperator,
    MilvusListImportJobsOperator,
)

COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2025, 1, 1),
    "catchup": False,
    "render_template_as_native_obj": True,
    "tags": ["airflow-milvus-import-tests"],
}
IMPORT_PARAMS: dict[str, Any] = {"collection": "", "files": [], "options": {}}

for dag_id, deferrable in (("ami_test_import_deferrable", True), ("ami_test_import_on_worker", False)):
    with DAG(dag_id, params=IMPORT_PARAMS, **COMMON):
        MilvusBulkImportOperator(
            task_id="import_files",
            collection_name="{{ params.collection }}",
            files="{{ params.files }}",
            options="{{ params.options }}",
            deferrable=deferrable,
            poll_interval=0.5,
            timeout=120,
        )

with DAG("ami_test_import_no_wait", params=IMPORT_PARAMS, **COMMON):
    MilvusBulkImportOperator(
        task_id="import_files",
        collection_name="{{ params.collection }}",
        files="{{ params.files }}",
        wait_for_completion=False,
    )

with DAG("ami_test_import_object_urls", params={**IMPORT_PARAMS, "storage_conn_id": ""}, **COMMON):
    # Zilliz Cloud's form: object URLs, and the bucket's credentials from another Airflow connection.
    MilvusBulkImportOperator(
        task_id="import_files",
        collection_name="{{ params.collection }}",
        object_urls="{{ params.files }}",
        storage_conn_id="{{ params.storage_conn_id }}",
        deferrable=True,
        poll_interval=0.5,
        timeout=120,
    )

with DAG("ami_test_import_short_timeout", params=IMPORT_PARAMS, **COMMON):
    MilvusBulkImportOperator(
        task_id="import_files",
        collection_name="{{ params.collection }}",
        files="{{ params.files }}",
        options="{{ params.options }}",
        deferrable=True,
        poll_interval=0.5,
        timeout=2,
    )

with DAG("ami_test_import_killed", params=IMPORT_PARAMS, **COMMON):
    # A two-phase job waits Uncommitted for a commit that never comes: the task's execution_timeout kills
    # it, and Airflow calls on_kill, which must abort the job.
    MilvusBulkImportOperator(
        task_id="import_files",
        collection_name="{{ params.collection }}",
        files="{{ params.files }}",
        options={"auto_commit": False},
        deferrable=False,
        poll_interval=0.5,
        execution_timeout=timedelta(seconds=6),
    )

with DAG("ami_test_import_mapped", params=IMPORT_PARAMS, **COMMON):

    @task
    def files_to_import() -> Any:
        return get_current_context()["params"]["files"]

    MilvusBulkImportOperator.partial(
        task_id="import_file",
        collection_name="{{ params.collection }}",
        deferrable=True,
        poll_interval=0.5,
        timeout=120,
    ).expand(files=files_to_import())

with DAG(
    "ami_test_list_jobs",
    params={"collection": "", "since": None, "states": None},
    **COMMON,
):
    MilvusListImportJobsOperator(task_id="list_all", collection_name="{{ params.collection }}")
    MilvusListImportJobsOperator(
        task_id="list_failed", collection_name="{{ params.collection }}", states=["FAILED"]
    )
    MilvusListImportJobsOperator(
        task_id="list_states_param", collection_name="{{ params.collection }}", states="{{ params.states }}"
    )
    MilvusListImportJobsOperator(
        task_id="list_newest_two", collection_name="{{ params.collection }}", limit=2
    )
    MilvusListImportJobsOperator(
        task_id="list_since", collection_name="{{ params.collection }}", created_since="{{ params.since }}"
    )
    MilvusListImportJobsOperator(
        task_id="list_without_details", collection_name="{{ params.collection }}", include_details=False
    )
    MilvusListImportJobsOperator(
        task_id="list_one_at_a_time", collection_name="{{ params.collection }}", max_concurrency=1
    )
