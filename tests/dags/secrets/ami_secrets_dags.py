"""
DAGs tests/integration/test_secrets.py runs under ``dag.test()`` besides the example DAGs: the paths the
examples do not take, where a credential could escape.

* ``ami_secrets_zilliz_object_urls``: Zilliz Cloud's form of an import, object URLs with the bucket's
  credentials taken from another Airflow connection (``storage_conn_id``), waited for in the triggerer;
  then a deferrable sensor on the same job and a listing with per-file details.
* ``ami_secrets_failures``: every way a task can fail with a credential at hand, side by side (no task
  depends on another): a failed import job, a refused token (deferred and in poke mode), a refused
  ``user:password``, a refused Zilliz Cloud API key, an unknown collection.

Connection ids and values come from the test (``AIRFLOW_CONN_*``); the run's params give collection, files
and job ids. Nothing secret is written here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG

from airflow_milvus_import.operators.milvus_import import (
    MilvusBulkImportOperator,
    MilvusListImportJobsOperator,
)
from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor

COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2025, 1, 1),
    "catchup": False,
    "render_template_as_native_obj": True,
    "tags": ["airflow-milvus-import-tests"],
}
CLOUD_CONN = "ami_secrets_cloud"
STORAGE_CONN = "ami_secrets_storage"
WAIT: dict[str, Any] = {"poll_interval": 0.3, "timeout": 60}

with DAG("ami_secrets_zilliz_object_urls", params={"collection": "", "urls": []}, **COMMON):
    imported = MilvusBulkImportOperator(
        task_id="import_object_urls",
        collection_name="{{ params.collection }}",
        object_urls="{{ params.urls }}",
        storage_conn_id=STORAGE_CONN,
        milvus_import_conn_id=CLOUD_CONN,
        options={"local.duration": "1.5"},
        deferrable=True,
        **WAIT,
    )
    waited = MilvusImportJobSensor(
        task_id="wait_for_the_job",
        job_id="{{ ti.xcom_pull(task_ids='import_object_urls', key='job_id') }}",
        milvus_import_conn_id=CLOUD_CONN,
        deferrable=True,
        **WAIT,
    )
    listed = MilvusListImportJobsOperator(
        task_id="list_the_jobs", collection_name="{{ params.collection }}", milvus_import_conn_id=CLOUD_CONN
    )
    imported >> waited >> listed

with DAG("ami_secrets_failures", params={"collection": "", "files": [], "job_id": ""}, **COMMON):
    MilvusBulkImportOperator(
        task_id="import_job_fails",
        collection_name="{{ params.collection }}",
        files="{{ params.files }}",
        options={"local.fail": "row 3 is not readable", "local.duration": "0.5"},
        deferrable=True,
        **WAIT,
    )
    MilvusImportJobSensor(
        task_id="token_refused_deferred",
        job_id="{{ params.job_id }}",
        milvus_import_conn_id="ami_secrets_wrong_token",
        deferrable=True,
        **WAIT,
    )
    MilvusImportJobSensor(
        task_id="token_refused_poke",
        job_id="{{ params.job_id }}",
        milvus_import_conn_id="ami_secrets_wrong_token",
        deferrable=False,
        mode="poke",
        **WAIT,
    )
    MilvusImportJobSensor(
        task_id="user_password_refused",
        job_id="{{ params.job_id }}",
        milvus_import_conn_id="ami_secrets_wrong_login",
        deferrable=False,
        mode="poke",
        **WAIT,
    )
    MilvusListImportJobsOperator(
        task_id="api_key_refused", milvus_import_conn_id="ami_secrets_cloud_wrong_key"
    )
    MilvusBulkImportOperator(
        task_id="unknown_collection",
        collection_name="ami_secrets_no_such_collection",
        object_urls=["s3://ami-bucket/none.json"],
        storage_conn_id=STORAGE_CONN,
        milvus_import_conn_id=CLOUD_CONN,
    )
