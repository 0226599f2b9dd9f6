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

import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from airflow_milvus_import.operators.milvus_import import (
    MilvusBulkImportOperator,
    MilvusListImportJobsOperator,
)

BUCKET_VARIABLE = "milvus_import_example_bucket"
MILVUS_URI_VARIABLE = "milvus_import_example_milvus_uri"
DEFAULT_BUCKET = "~/.local-milvus/bucket"
DEFAULT_MILVUS_URI = "http://127.0.0.1:19531"


def _setting(name: str, default: str) -> str:
    from airflow.sdk import Variable

    # default=None, then the fallback: Variable.get would register a default as a secret to mask.
    value = Variable.get(name, default=None)
    return str(value) if value else default


def _schema(dim: int) -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=256)
    schema.add_field("category", DataType.INT64)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    return schema


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
        from pymilvus import MilvusClient

        params = get_current_context()["params"]
        name = str(params["collection"])
        client = MilvusClient(uri=_setting(MILVUS_URI_VARIABLE, DEFAULT_MILVUS_URI))
        try:
            if client.has_collection(name):
                client.drop_collection(name)
            index_params = client.prepare_index_params()
            index_params.add_index(field_name="embedding", index_type="AUTOINDEX", metric_type="COSINE")
            client.create_collection(name, schema=_schema(int(params["dim"])), index_params=index_params)
        finally:
            client.close()
        return name

    @task
    def write_dataset(collection: str) -> list[list[str]]:
        """Write the rows as Parquet files into the bucket; return ``batch_files`` (absolute paths)."""
        import re
        from pathlib import Path

        import numpy as np
        from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

        context = get_current_context()
        params, run_id = context["params"], context["run_id"]
        rows, dim, files = int(params["rows"]), int(params["dim"]), int(params["files"])
        bucket = Path(os.path.expanduser(_setting(BUCKET_VARIABLE, DEFAULT_BUCKET)))
        target = bucket / "example-pipeline" / collection / re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id or "run")
        target.mkdir(parents=True, exist_ok=True)

        rng = np.random.default_rng(int(params["seed"]))
        embeddings = rng.standard_normal((rows, dim), dtype=np.float32)
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        rows_per_file = -(-rows // files)
        with LocalBulkWriter(
            schema=_schema(dim), local_path=str(target), file_type=BulkFileType.PARQUET
        ) as writer:
            for row in range(rows):
                writer.append_row(
                    {
                        "id": row,
                        "title": f"document {row}",
                        "category": row % 10,
                        "embedding": embeddings[row].tolist(),
                    }
                )
                if (row + 1) % rows_per_file == 0:
                    writer.commit()
            writer.commit()
            batch_files: list[list[str]] = [[str(path) for path in batch] for batch in writer.batch_files]
        print(
            f"Wrote {rows:,} rows of {dim}-dim embeddings as {len(batch_files)} Parquet files under {target}"
        )
        return batch_files

    @task
    def verify_row_count(collection: str, imported: dict[str, Any]) -> dict[str, Any]:
        """Count the rows in Milvus; fail unless they match what was written and what the job reported."""
        from pymilvus import MilvusClient

        expected = int(get_current_context()["params"]["rows"])
        client = MilvusClient(uri=_setting(MILVUS_URI_VARIABLE, DEFAULT_MILVUS_URI))
        try:
            client.load_collection(collection)
            counted = int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])
        finally:
            client.close()
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
    )
    list_file_details = MilvusListImportJobsOperator(
        task_id="list_file_details",
        collection_name="{{ params.collection }}",
        created_since="{{ dag_run.start_date }}",
    )
    check = verify_row_count(collection, import_embeddings.output)
    import_embeddings >> list_file_details >> check


example_milvus_import_local_pipeline()
