"""A large import (100,000 rows x 128-dim float vectors from Parquet) completes, and status reads stay
answered while it runs."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from local_helpers import Api, count_rows, make_collection
from pymilvus import MilvusClient

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import ServerFactory

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 100_000
DIM = 128


def _write_parquet(path: Path) -> None:
    generator = np.random.default_rng(0)
    vectors = generator.random((ROWS, DIM), dtype=np.float32)
    table = pa.table(
        {
            "id": pa.array(np.arange(ROWS, dtype=np.int64)),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            "meta": pa.array(['{"src": "bench"}'] * ROWS),
            "name": pa.array([f"r{i}" for i in range(ROWS)]),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=20_000)


def test_100k_rows_of_128_dim_vectors_from_parquet(server_factory: ServerFactory) -> None:
    server = server_factory()
    client = MilvusClient(uri=server.milvus_uri)
    name, _ = make_collection(client, dim=DIM, dynamic=False)
    path = server.bucket / "large" / "vectors.parquet"
    _write_parquet(path)
    api = Api(server.url)

    job_id = api.create(name, [["large/vectors.parquet"]])
    latencies: list[float] = []
    done = threading.Event()

    def read_status() -> None:
        reader = Api(server.url)
        while not done.is_set():
            started = time.monotonic()
            reader.progress(job_id)
            latencies.append(time.monotonic() - started)
            time.sleep(0.01)

    reader = threading.Thread(target=read_status)
    reader.start()
    try:
        final = api.wait(job_id, timeout=240)
    finally:
        done.set()
        reader.join()

    assert final["state"] == "Completed", final
    assert final["importedRows"] == final["totalRows"] == ROWS
    assert final["fileSize"] == path.stat().st_size
    assert count_rows(client, name) == ROWS
    sample = client.query(name, filter="id == 99999", output_fields=["vec", "name"])
    assert sample[0]["name"] == "r99999"
    assert len(sample[0]["vec"]) == DIM
    assert len(latencies) > 10, "status reads were answered while the import ran"
    assert max(latencies) < 10, "no status read waited for the import"
    client.close()
