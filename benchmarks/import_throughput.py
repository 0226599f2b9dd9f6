"""Import throughput of the local server beside a direct ``MilvusClient.insert`` of the same rows.

Writes N rows of 128-dim float vectors to one Parquet file, starts the local import server (Milvus Lite behind
it), then measures, in the same run:

* import: ``create`` an import job for the file and poll ``describe`` until Completed;
* insert: read the same Parquet file and ``MilvusClient.insert`` its rows, in batches, into the same Milvus
  Lite (through ``server.milvus_uri``, as a DAG task would).

Each side gets its own, identical, empty collection. The last line is the ratio of the two rates (import /
insert): above 1 the import path is faster, which is what the server's overhead being small looks like.

    python benchmarks/import_throughput.py [--rows 100000] [--dim 128] [--batch 5000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import requests
from pymilvus import DataType, MilvusClient

from airflow_milvus_import.local import LocalImportServer


def write_parquet(path: Path, rows: int, dim: int) -> None:
    """``rows`` rows: id INT64, vec FLOAT_VECTOR(dim)."""
    vectors = np.random.default_rng(0).random((rows, dim), dtype=np.float32)
    table = pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        }
    )
    pq.write_table(table, path, row_group_size=50_000)


def create_collection(client: MilvusClient, name: str, dim: int) -> None:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(name, schema=schema)


def count(client: MilvusClient, name: str) -> int:
    return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])


def run_import(server: LocalImportServer, collection: str, file_key: str) -> float:
    """Seconds from ``create`` to Completed."""
    session = requests.Session()
    base = server.url + "/v2/vectordb/jobs/import/"
    started = time.perf_counter()
    body = {"collectionName": collection, "files": [[file_key]]}
    created = session.post(base + "create", json=body, timeout=60)
    job_id = created.json()["data"]["jobId"]
    while True:
        answer = session.post(base + "describe", json={"jobId": job_id}, timeout=60)
        data: dict[str, Any] = answer.json()["data"]
        if data["state"] == "Completed":
            return time.perf_counter() - started
        if data["state"] == "Failed":
            raise RuntimeError(f"the import failed: {data.get('reason')}")
        time.sleep(0.02)


def run_insert(client: MilvusClient, collection: str, path: Path, batch: int) -> float:
    """Seconds to read the Parquet file and insert its rows with ``MilvusClient.insert``."""
    started = time.perf_counter()
    parquet = pq.ParquetFile(path)
    for record_batch in parquet.iter_batches(batch_size=batch):
        ids = record_batch.column(0).to_numpy().tolist()
        vectors = record_batch.column(1)
        dim = vectors.type.list_size
        values = vectors.flatten().to_numpy().reshape(-1, dim).tolist()
        client.insert(collection, [{"id": i, "vec": v} for i, v in zip(ids, values, strict=True)])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to import (default 100000)")
    parser.add_argument("--dim", type=int, default=128, help="vector dimension (default 128)")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per MilvusClient.insert call")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the best is kept")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="import-throughput-") as root:
        bucket = Path(root) / "bucket"
        bucket.mkdir()
        path = bucket / "vectors.parquet"
        write_parquet(path, args.rows, args.dim)
        with LocalImportServer(data_dir=Path(root) / "data", bucket=bucket) as server:
            client = MilvusClient(uri=server.milvus_uri)
            import_times, insert_times = [], []
            for attempt in range(args.repeat):
                imported, inserted = f"imported_{attempt}", f"inserted_{attempt}"
                create_collection(client, imported, args.dim)
                create_collection(client, inserted, args.dim)
                import_times.append(run_import(server, imported, path.name))
                insert_times.append(run_insert(client, inserted, path, args.batch))
                for name in (imported, inserted):
                    if count(client, name) != args.rows:
                        raise RuntimeError(f"{name} holds {count(client, name)} rows, expected {args.rows}")
            client.close()

    import_s, insert_s = min(import_times), min(insert_times)
    import_rate, insert_rate = args.rows / import_s, args.rows / insert_s
    size_mb = args.rows * args.dim * 4 / 1e6
    print(
        f"{args.rows} rows x {args.dim}-dim float32 vectors ({size_mb:.0f} MB of vectors), Parquet, "
        f"best of {args.repeat}"
    )
    print(f"{'path':<40} {'seconds':>9} {'rows/s':>12}")
    print(f"{'local import server (create -> Completed)':<40} {import_s:>9.2f} {import_rate:>12,.0f}")
    print(f"{'MilvusClient.insert (read + insert)':<40} {insert_s:>9.2f} {insert_rate:>12,.0f}")
    print(f"ratio import/insert rows per second: {import_rate / insert_rate:.2f}")


if __name__ == "__main__":
    main()
