"""
DAGs of the retry tests (``tests/unit/operators/test_milvus_import_retries.py``): an import whose first try's
wait fails (its ``timeout`` is shorter than the job), retried once, on both waiting paths.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator

for dag_id, deferrable in (("ami_test_retry_deferrable", True), ("ami_test_retry_on_worker", False)):
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        render_template_as_native_obj=True,
        params={"collection": "", "files": [], "options": {}},
        tags=["airflow-milvus-import-tests"],
    ):
        MilvusBulkImportOperator(
            task_id="import_files",
            collection_name="{{ params.collection }}",
            files="{{ params.files }}",
            options="{{ params.options }}",
            deferrable=deferrable,
            poll_interval=0.5,
            timeout=3,
            retries=1,
            retry_delay=timedelta(seconds=0),
        )
