"""
Event-driven: this DAG runs once for every import into a collection that completes, whoever started it
(a Spark job with pymilvus' ``bulk_import``, another team's script, the Zilliz console, or Airflow).

The collection ``example_event_books`` of the endpoint the ``milvus_import_default`` connection names is an
asset with an ``AssetWatcher``: :class:`MilvusImportJobEventTrigger` runs in the triggerer, lists the
endpoint's import jobs every 10 seconds (one list for every watcher of the endpoint) and, for each job into
the collection that reaches ``Completed``, fires one event; the asset event's ``extra["payload"]`` holds the
job id, collection, database, state, rows, files and reason. Jobs that had finished before the watcher
first ran are not replayed (``since=`` would). Each job is reported once, across triggerer restarts
(Airflow 3.3's asset state store remembers what was reported).

* ``wait_for_imports``: :class:`MilvusImportJobSensor` on the triggering jobs
  (``JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS``), which confirms them and returns their progress;
* ``evaluate``: the downstream work (here a summary standing in for an evaluation or index refresh).

Try it: start the local server (``python -m airflow_milvus_import.local``), then start any import into
``example_event_books``, e.g. with pymilvus:
``bulk_import(url=..., collection_name="example_event_books", files=[["rows.json"]])``.
The endpoint is read when the file is parsed, from the environment variable
``MILVUS_IMPORT_EXAMPLE_ENDPOINT`` (default ``http://127.0.0.1:19530``): set it to the connection's Host.
Needs Airflow 3.0+ (3.3 for the restart guarantee).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow_milvus_import.compat import HAS_EVENT_TRIGGERS
from airflow_milvus_import.lineage import milvus_collection_asset
from airflow_milvus_import.sensors.milvus_import import (
    JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS,
    MilvusImportJobSensor,
)
from airflow_milvus_import.triggers.milvus_import_event import MilvusImportJobEventTrigger

# Event-driven scheduling is Airflow 3.0+: on 2.11 this file defines no DAG (and raises no import error).
if HAS_EVENT_TRIGGERS:
    from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task

    ENDPOINT = os.environ.get("MILVUS_IMPORT_EXAMPLE_ENDPOINT", "http://127.0.0.1:19530")
    COLLECTION = "example_event_books"
    _BOOKS = milvus_collection_asset(COLLECTION, endpoint=ENDPOINT)
    BOOKS = Asset(
        name=_BOOKS.name,
        uri=_BOOKS.uri,
        watchers=[
            AssetWatcher(
                name="example_event_books_imports",
                trigger=MilvusImportJobEventTrigger(collection_name=COLLECTION, states=["Completed"]),
            )
        ],
    )

    @dag(
        dag_id="example_milvus_import_event_driven",
        schedule=[BOOKS],
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["example", "milvus", "milvus-import", "assets", "event-driven"],
        doc_md=__doc__,
    )
    def example_milvus_import_event_driven() -> None:
        wait_for_imports = MilvusImportJobSensor(
            task_id="wait_for_imports",
            job_id=JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS,
            deferrable=True,
            poll_interval=5,
            timeout=60 * 60,
        )

        @task
        def evaluate(jobs: list[dict[str, Any]]) -> dict[str, Any]:
            """The downstream work (a stand-in): what the imports that started this run brought."""
            payloads = [
                event.extra.get("payload") or {}
                for events in get_current_context()["triggering_asset_events"].values()
                for event in events
            ]
            summary = {
                "collection": COLLECTION,
                "jobs": [job["job_id"] for job in jobs],
                "rows": sum(job["imported_rows"] for job in jobs),
                "states": sorted({str(payload.get("state")) for payload in payloads}),
            }
            print(
                f"Collection {COLLECTION!r}: import job(s) {', '.join(summary['jobs'])} brought "
                f"{summary['rows']:,} rows: evaluating"
            )
            return summary

        evaluate(wait_for_imports.output)

    example_milvus_import_event_driven()
