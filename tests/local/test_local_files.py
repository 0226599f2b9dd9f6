"""Files: where a job may read them (the bucket, never outside it) and what a bad file does to the job."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from local_helpers import Api, count_rows, make_collection, rows, unique, write_files
from pymilvus.bulk_writer import BulkFileType

if TYPE_CHECKING:
    from pathlib import Path

    from pymilvus import MilvusClient

    from airflow_milvus_import.local import LocalImportServer

pytestmark = pytest.mark.integration


def _table(count: int, *, dim: int = 8, **overrides: Any) -> pa.Table:
    columns: dict[str, Any] = {
        "id": list(range(count)),
        "vec": [[0.25] * dim for _ in range(count)],
        "meta": [json.dumps({"k": i}) for i in range(count)],
        "name": [f"n{i}" for i in range(count)],
    }
    columns.update(overrides)
    return pa.table({k: v for k, v in columns.items() if v is not None})


def _failed_reason(api: Api, collection: str, files: list[list[str]]) -> str:
    final = api.wait(api.create(collection, files))
    assert final["state"] == "Failed", final
    reason: str = final["reason"]
    return reason


@pytest.fixture
def folder(bucket: Path) -> Path:
    path = bucket / unique("files")
    path.mkdir()
    return path


@pytest.fixture
def strict_collection(shared_client: MilvusClient) -> str:
    """A collection without a dynamic field."""
    name, _ = make_collection(shared_client, dynamic=False)
    return name


def test_missing_file(api: Api, strict_collection: str) -> None:
    reason = _failed_reason(api, strict_collection, [["nowhere/missing.parquet"]])
    assert reason.startswith("[nowhere/missing.parquet]: no such file in the bucket:")


def test_unreadable_parquet(api: Api, strict_collection: str, folder: Path) -> None:
    (folder / "junk.parquet").write_bytes(b"this is not parquet")
    reason = _failed_reason(api, strict_collection, [[str(folder / "junk.parquet")]])
    assert "not a readable Parquet file" in reason


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not a readable JSON file"),
        ('{"data": []}', 'a JSON import file holds {"rows": [...]}'),
        ('{"rows": [1, 2]}', "row 1 is not a JSON object"),
    ],
)
def test_bad_json(api: Api, strict_collection: str, folder: Path, content: str, expected: str) -> None:
    (folder / "bad.json").write_text(content)
    assert expected in _failed_reason(api, strict_collection, [[str(folder / "bad.json")]])


def test_json_row_missing_a_field(api: Api, strict_collection: str, folder: Path) -> None:
    row = {"id": 1, "vec": [0.1] * 8, "meta": {}}
    (folder / "rows.json").write_text(json.dumps({"rows": [row]}))
    reason = _failed_reason(api, strict_collection, [[str(folder / "rows.json")]])
    assert reason.endswith("rows.json]: row 1: field 'name' is missing")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (_table(3, name=None), "field 'name' is missing (the file has: id, vec, meta)"),
        (_table(3, surprise=[1, 2, 3]), "field 'surprise' is not defined in the collection schema"),
        (
            _table(3, id=["a", "b", "c"]),
            "column 'id' has type string, which cannot hold the collection's INT64",
        ),
        (_table(3, dim=16), "row 1: vector field 'vec' has dim 16, the collection expects 8"),
        (
            _table(2, name=["ok", "x" * 100]),
            "row 2: VARCHAR field 'name' value length 100 exceeds max_length=64",
        ),
        (_table(2, meta=["{}", "{broken"]), "row 2: field 'meta' is not valid JSON"),
    ],
)
def test_parquet_schema_mismatch(
    api: Api, strict_collection: str, folder: Path, table: pa.Table, expected: str
) -> None:
    pq.write_table(table, folder / "data.parquet")
    reason = _failed_reason(api, strict_collection, [[str(folder / "data.parquet")]])
    assert reason.startswith(f"[{folder / 'data.parquet'}]: ")
    assert expected in reason


def test_auto_id_primary_key_must_not_be_given(api: Api, shared_client: MilvusClient, folder: Path) -> None:
    name, _ = make_collection(shared_client, auto_id=True, dynamic=False)
    pq.write_table(_table(2), folder / "with_id.parquet")
    reason = _failed_reason(api, name, [[str(folder / "with_id.parquet")]])
    assert "the primary key 'id' is auto-generated, no need to provide" in reason


def test_auto_id_collection_imports_rows_without_ids(
    api: Api, shared_client: MilvusClient, folder: Path
) -> None:
    name, schema = make_collection(shared_client, auto_id=True)
    files = write_files(schema, folder, BulkFileType.PARQUET, rows(25, with_id=False))
    assert api.wait(api.create(name, files))["state"] == "Completed"
    assert count_rows(shared_client, name) == 25


def test_numpy_files_with_different_row_counts(api: Api, strict_collection: str, folder: Path) -> None:
    np.save(folder / "id.npy", np.arange(3))
    np.save(folder / "vec.npy", np.zeros((2, 8), dtype=np.float32))
    np.save(folder / "meta.npy", np.array(["{}"] * 3))
    np.save(folder / "name.npy", np.array(["a", "b", "c"]))
    files = [[str(folder / f"{n}.npy") for n in ("id", "vec", "meta", "name")]]
    assert "the files hold different numbers of rows" in _failed_reason(api, strict_collection, files)


def test_numpy_vector_of_the_wrong_dim(api: Api, strict_collection: str, folder: Path) -> None:
    np.save(folder / "id.npy", np.arange(2))
    np.save(folder / "vec.npy", np.zeros((2, 3), dtype=np.float32))
    np.save(folder / "meta.npy", np.array(["{}"] * 2))
    np.save(folder / "name.npy", np.array(["a", "b"]))
    files = [[str(folder / f"{n}.npy") for n in ("id", "vec", "meta", "name")]]
    assert "'vec.npy' has shape (2, 3), the collection expects (rows, 8)" in _failed_reason(
        api, strict_collection, files
    )


# -- the bucket boundary --


@pytest.mark.parametrize("path", ["../outside.parquet", "a/../../outside.parquet", "/etc/passwd.json"])
def test_paths_leaving_the_bucket_are_refused_at_create(api: Api, strict_collection: str, path: str) -> None:
    status, code, message = api.error("create", {"collectionName": strict_collection, "files": [[path]]})
    assert (status, code) == (200, 2100)
    assert "outside the bucket" in message


def test_a_symlink_out_of_the_bucket_is_refused(
    api: Api, strict_collection: str, folder: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text('{"rows": []}')
    os.symlink(outside, folder / "link.json")
    status, code, message = api.error(
        "create", {"collectionName": strict_collection, "files": [[str(folder / "link.json")]]}
    )
    assert (status, code) == (200, 2100)
    assert "leads outside the bucket" in message


def test_relative_paths_are_inside_the_bucket(
    api: Api, shared_client: MilvusClient, shared_server: LocalImportServer, folder: Path
) -> None:
    name, schema = make_collection(shared_client)
    files = write_files(schema, folder, BulkFileType.JSON, rows(12))
    relative = os.path.relpath(files[0][0], shared_server.bucket)
    final = api.wait(api.create(name, [[relative]]))
    assert final["state"] == "Completed", final
    assert final["details"][0]["fileName"] == f"[{relative}]"
    assert count_rows(shared_client, name) == 12


@pytest.mark.parametrize("scheme", ["s3://any-bucket/", "minio://b/", "gs://b/", "file://"])
def test_object_urls_on_zilliz_cloud(
    cloud_api: Api, shared_client: MilvusClient, shared_server: LocalImportServer, folder: Path, scheme: str
) -> None:
    name, schema = make_collection(shared_client)
    files = write_files(schema, folder, BulkFileType.PARQUET, rows(9))
    key = os.path.relpath(files[0][0], shared_server.bucket)
    url = f"file://{files[0][0]}" if scheme == "file://" else scheme + key
    final = cloud_api.wait(cloud_api.create(name, [[url]]))
    assert final["state"] == "Completed", final
    assert count_rows(shared_client, name) == 9


def test_a_folder_on_zilliz_cloud(
    cloud_api: Api, shared_client: MilvusClient, shared_server: LocalImportServer, folder: Path
) -> None:
    name, schema = make_collection(shared_client)
    write_files(schema, folder / "one", BulkFileType.PARQUET, rows(5))
    write_files(schema, folder / "two", BulkFileType.NUMPY, rows(7, start=100))
    parquet_dir = next((folder / "one").iterdir())
    numpy_dir = next(next((folder / "two").iterdir()).iterdir())
    urls = [[f"s3://b/{os.path.relpath(d, shared_server.bucket)}/"] for d in (parquet_dir, numpy_dir)]
    final = cloud_api.wait(cloud_api.create(name, urls))
    assert final["state"] == "Completed", final
    assert [d["totalRows"] for d in final["details"]] == [5, 7]
    assert count_rows(shared_client, name) == 12


def test_an_unsupported_object_url_is_refused(cloud_api: Api, strict_collection: str) -> None:
    status, code, message = cloud_api.error(
        "create", {"collectionName": strict_collection, "objectUrls": [["ftp://host/a.parquet"]]}
    )
    assert (status, code) == (200, 2100)
    assert "unsupported object URL" in message
