"""The official client, unchanged, against the local server: pymilvus' bulk_import / get_import_progress /
list_import_jobs on files written by pymilvus' LocalBulkWriter, rows then counted through MilvusClient."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from local_helpers import count_rows, make_collection, rows, unique, wait_for, write_files
from pymilvus.bulk_writer import BulkFileType, bulk_import, get_import_progress, list_import_jobs

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from airflow_milvus_import.local import LocalImportServer

pytestmark = pytest.mark.integration


def _wait_pymilvus(url: str, job_id: str, **kwargs: Any) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        data: dict[str, Any] = get_import_progress(url=url, job_id=job_id, **kwargs).json()["data"]
        return data if data["state"] in ("Completed", "Failed") else None

    result: dict[str, Any] = wait_for(finished, timeout=120, what=f"job {job_id}")
    return result


@pytest.mark.parametrize("file_type", [BulkFileType.PARQUET, BulkFileType.JSON, BulkFileType.NUMPY])
def test_official_client_imports_local_bulk_writer_files(
    shared_server: LocalImportServer, shared_client: MilvusClient, tmp_path: Path, file_type: BulkFileType
) -> None:
    collection, schema = make_collection(shared_client)
    data = rows(250, seed=int(file_type))
    files = write_files(schema, shared_server.bucket / unique("w"), file_type, data)

    response = bulk_import(url=shared_server.url, collection_name=collection, files=files)
    job_id = response.json()["data"]["jobId"]
    progress = _wait_pymilvus(shared_server.url, job_id)

    assert progress["state"] == "Completed", progress
    assert progress["progress"] == 100
    assert progress["importedRows"] == progress["totalRows"] == 250
    assert [detail["state"] for detail in progress["details"]] == ["Completed"] * len(files)
    assert count_rows(shared_client, collection) == 250
    listed = list_import_jobs(url=shared_server.url, collection_name=collection).json()["data"]["records"]
    assert [record["jobId"] for record in listed] == [job_id]
    assert listed[0]["state"] == "Completed"

    stored = shared_client.query(collection, filter="id == 7", output_fields=["*"])
    assert len(stored) == 1
    assert stored[0]["name"] == "row-7"
    assert stored[0]["meta"] == {"n": 7}
    assert stored[0]["extra"] == 7, "the dynamic field ($meta) is imported"
    assert stored[0]["vec"] == pytest.approx(data[7]["vec"], rel=1e-6)


def test_official_client_on_the_zilliz_cloud_flavour(
    shared_server: LocalImportServer, shared_client: MilvusClient
) -> None:
    collection, schema = make_collection(shared_client)
    folder = unique("cloud")
    files = write_files(schema, shared_server.bucket / folder, BulkFileType.PARQUET, rows(40))
    key = Path(files[0][0]).relative_to(shared_server.bucket)
    object_url = f"s3://my-bucket/{key}"

    response = bulk_import(
        url=shared_server.cloud_url,
        collection_name=collection,
        cluster_id=shared_server.cluster_id,
        api_key="any-key",
        object_urls=[[object_url]],
    )
    job_id = response.json()["data"]["jobId"]
    assert job_id.startswith("job-")
    assert len(job_id) == len("job-01fa0e5d42cjxudhpuehyp")
    progress = _wait_pymilvus(shared_server.cloud_url, job_id, cluster_id=shared_server.cluster_id)

    assert progress["state"] == "Completed", progress
    assert progress["reason"] == ""
    assert progress["fileName"] == object_url
    assert progress["details"][0]["fileName"] == object_url
    assert count_rows(shared_client, collection) == 40
    page = list_import_jobs(
        url=shared_server.cloud_url, cluster_id=shared_server.cluster_id, page_size=100, current_page=1
    ).json()["data"]
    assert job_id in [record["jobId"] for record in page["records"]]
    assert {"count", "currentPage", "pageSize"} <= set(page)


def test_a_separate_client_process_sees_the_imported_rows(
    shared_server: LocalImportServer, shared_client: MilvusClient
) -> None:
    """MilvusClient in this (test) process is already a separate process from the server; check a third."""
    import subprocess
    import sys

    collection, schema = make_collection(shared_client)
    files = write_files(schema, shared_server.bucket / unique("w"), BulkFileType.PARQUET, rows(30))
    job_id = bulk_import(url=shared_server.url, collection_name=collection, files=files).json()["data"][
        "jobId"
    ]
    assert _wait_pymilvus(shared_server.url, job_id)["state"] == "Completed"

    script = (
        "import sys; from pymilvus import MilvusClient; "
        "c = MilvusClient(uri=sys.argv[1]); "
        "print(c.query(sys.argv[2], filter='', output_fields=['count(*)'])[0]['count(*)'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, shared_server.milvus_uri, collection],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "30"
