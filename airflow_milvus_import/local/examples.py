"""
The demo data of the example DAGs (``example_dags/``): its collection, its Parquet files, the row check.

The examples import this inside their tasks, so each of them shows only how the provider is used and parsing
them stays cheap; pymilvus (the ``local`` extra) and numpy load inside these functions. Like the rest of
``local``, it uses nothing of the provider's client code.

Settings come from Airflow Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables):
``milvus_import_example_bucket``, the folder the import server reads (default ``~/.local-milvus/bucket``,
the bucket of ``milvus-import-local --data-dir ~/.local-milvus``), and ``milvus_import_example_milvus_uri``,
the Milvus URI for pymilvus (default ``http://127.0.0.1:19531``, that server's Milvus Lite).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

BUCKET_VARIABLE = "milvus_import_example_bucket"
MILVUS_URI_VARIABLE = "milvus_import_example_milvus_uri"
DEFAULT_BUCKET = "~/.local-milvus/bucket"
DEFAULT_MILVUS_URI = "http://127.0.0.1:19531"


def setting(name: str, default: str) -> str:
    """An Airflow Variable, or ``default`` when it is unset or empty."""
    from airflow.providers.common.compat.sdk import Variable

    # default=None, then the fallback: Variable.get would register a default as a secret to mask.
    value = Variable.get(name, None)  # positional: `default` on 3.x, `default_var` on 2.11
    return str(value) if value else default


def milvus_uri() -> str:
    return setting(MILVUS_URI_VARIABLE, DEFAULT_MILVUS_URI)


def schema(dim: int, *, with_text: bool = False) -> Any:
    """
    The collection's schema: ``id`` and ``embedding``.

    :param dim: the embedding dimension.
    :param with_text: also a ``title`` (text) and a ``category`` (number) field.
    """
    from pymilvus import DataType, MilvusClient

    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field("id", DataType.INT64, is_primary=True)
    if with_text:
        fields.add_field("title", DataType.VARCHAR, max_length=256)
        fields.add_field("category", DataType.INT64)
    fields.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    return fields


def recreate_collection(name: str, dim: int, *, with_text: bool = False, metric: str = "COSINE") -> str:
    """Drop and create the collection, with a vector index so it is loaded and queryable; returns its name."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_uri())
    try:
        if client.has_collection(name):
            client.drop_collection(name)
        index_params = client.prepare_index_params()
        index_params.add_index(field_name="embedding", index_type="AUTOINDEX", metric_type=metric)
        client.create_collection(name, schema=schema(dim, with_text=with_text), index_params=index_params)
    finally:
        client.close()
    return name


def run_folder(*parts: str | None) -> Path:
    """A folder of the bucket for one run's files: ``<bucket>/<part>/...`` (made safe as path segments)."""
    folder = Path(os.path.expanduser(setting(BUCKET_VARIABLE, DEFAULT_BUCKET)))
    for part in parts:
        folder /= re.sub(r"[^A-Za-z0-9_.-]+", "_", part or "run")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_parquet(
    folder: Path, rows: int, dim: int, *, rows_per_file: int, seed: int, with_text: bool = False
) -> list[list[str]]:
    """
    Write ``rows`` rows of unit-length random embeddings as Parquet files of ``rows_per_file`` rows each,
    with pymilvus' ``LocalBulkWriter``; returns its ``batch_files`` (absolute paths, one inner list per file).
    """
    import numpy as np
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    embeddings = np.random.default_rng(seed).standard_normal((rows, dim), dtype=np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    with LocalBulkWriter(
        schema=schema(dim, with_text=with_text), local_path=str(folder), file_type=BulkFileType.PARQUET
    ) as writer:
        for row in range(rows):
            record: dict[str, Any] = {"id": row, "embedding": embeddings[row].tolist()}
            if with_text:
                record.update(title=f"document {row}", category=row % 10)
            writer.append_row(record)
            if (row + 1) % rows_per_file == 0:
                writer.commit()
        writer.commit()
        return [[str(path) for path in batch] for batch in writer.batch_files]


def count_rows(collection: str) -> int:
    """The rows Milvus holds in ``collection`` (loaded first)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_uri())
    try:
        client.load_collection(collection)
        return int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])
    finally:
        client.close()
