"""2PC (commit / abort), legacy Milvus 2.4 answers, Zilliz Cloud pagination, HTTPS."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests
from local_helpers import IMPORT_PATH, Api, count_rows, make_collection, rows, unique, write_files
from pymilvus import MilvusClient
from pymilvus.bulk_writer import BulkFileType

from airflow_milvus_import.local import LocalImportServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conftest import ServerFactory

pytestmark = pytest.mark.integration


# -- 2PC --


def _two_phase_job(api: Api, client: MilvusClient, bucket: Path, count: int = 30) -> tuple[str, str]:
    name, schema = make_collection(client)
    files = write_files(schema, bucket / unique("2pc"), BulkFileType.PARQUET, rows(count))
    return name, api.create(name, files, options={"auto_commit": "false"})


def test_a_2pc_job_waits_uncommitted_until_commit(
    api: Api, shared_client: MilvusClient, bucket: Path
) -> None:
    name, job_id = _two_phase_job(api, shared_client, bucket)
    waiting = api.wait(job_id, ("Uncommitted", "Failed"))
    assert (waiting["state"], waiting["progress"]) == ("Uncommitted", 99)
    assert waiting["importedRows"] == waiting["totalRows"] == 30
    assert waiting["completeTime"] == ""
    assert count_rows(shared_client, name) == 0, "uncommitted rows are not visible"
    assert api.ok("list", {"collectionName": name})["records"][0]["state"] == "Uncommitted"

    assert api.ok("commit", {"jobId": job_id}) == {}
    final = api.wait(job_id)
    assert (final["state"], final["progress"]) == ("Completed", 100)
    assert count_rows(shared_client, name) == 30
    assert api.ok("commit", {"jobId": job_id}) == {}, "commit is idempotent"
    assert count_rows(shared_client, name) == 30, "a second commit imports nothing again"


def test_aborting_an_uncommitted_job(api: Api, shared_client: MilvusClient, bucket: Path) -> None:
    name, job_id = _two_phase_job(api, shared_client, bucket)
    api.wait(job_id, ("Uncommitted", "Failed"))
    api.ok("abort", {"jobId": job_id})
    final = api.progress(job_id)
    assert (final["state"], final["reason"]) == ("Failed", "import job aborted")
    assert count_rows(shared_client, name) == 0
    assert api.error("commit", {"jobId": job_id})[1] == 2100


def test_commit_before_the_job_is_ready_is_refused(
    api: Api, shared_client: MilvusClient, bucket: Path
) -> None:
    name, _ = make_collection(shared_client)
    job_id = api.create(name, [["x.parquet"]], options={"auto_commit": "false", "local.duration": "30"})
    _, code, message = api.error("commit", {"jobId": job_id})
    assert code == 2100
    assert message.startswith(f"import job {job_id} is in state ")
    assert message.endswith(", expected Uncommitted: importing data failed")


# -- legacy: Milvus 2.4 before Oct 2024 --


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalImportServer]:
    root = tmp_path_factory.mktemp("legacy")
    with LocalImportServer(data_dir=root / "data", bucket=root / "bucket", legacy=True) as server:
        yield server


def test_legacy_mode_answers_like_early_milvus_2_4(legacy: LocalImportServer) -> None:
    client = MilvusClient(uri=legacy.milvus_uri)
    name, schema = make_collection(client)
    files = write_files(schema, legacy.bucket / unique("l"), BulkFileType.JSON, rows(6))
    base = legacy.url + IMPORT_PATH

    created = requests.post(base + "create", json={"collectionName": name, "files": files}, timeout=30).json()
    assert created["code"] == 200
    job_id = created["data"]["jobID"]
    assert "jobId" not in created["data"]

    describe = requests.post(base + "describe", json={"jobId": job_id}, timeout=30)
    assert (describe.status_code, describe.text) == (404, "404 page not found")
    for action in ("commit", "abort"):
        assert requests.post(base + action, json={"jobId": job_id}, timeout=30).status_code == 404

    api = Api(legacy.url)

    def finished() -> dict[str, object] | None:
        body = api.post("get_progress", {"jobId": job_id}).json()
        assert body["code"] == 200
        return body["data"] if body["data"]["state"] == "Completed" else None

    from local_helpers import wait_for

    data = wait_for(finished, 60, "the legacy job")
    assert data["jobID"] == job_id
    assert "jobId" not in data
    assert "createTime" not in data
    listed = api.post("list", {}).json()
    assert listed["code"] == 200
    assert listed["data"]["records"][0]["jobID"] == job_id
    error = api.post("get_progress", {"jobId": "1"}).json()
    assert error["code"] == 2100, "errors keep their codes"
    assert count_rows(client, name) == 6
    client.close()


# -- Zilliz Cloud pagination --


def test_zilliz_cloud_list_pages(server_factory: ServerFactory) -> None:
    server = server_factory(stall="paged_*")
    client = MilvusClient(uri=server.milvus_uri)
    name, _ = make_collection(client, unique("paged"))
    api = Api(server.cloud_url, cluster_id=server.cluster_id)
    ids = [api.create(name, [["a.parquet"]]) for _ in range(23)]
    milvus_id = Api(server.url).create(name, [["a.parquet"]])

    pages = [api.ok("list", {"pageSize": 10, "currentPage": page}) for page in (1, 2, 3, 4)]
    assert [len(p["records"]) for p in pages] == [10, 10, 3, 0]
    assert all(p["count"] == 23 and p["pageSize"] == 10 for p in pages)
    assert [p["currentPage"] for p in pages] == [1, 2, 3, 4]
    assert [r["jobId"] for p in pages for r in p["records"]] == ids
    assert milvus_id not in [r["jobId"] for p in pages for r in p["records"]]
    record = pages[0]["records"][0]
    assert set(record) == {"collectionName", "jobId", "state"}, "Zilliz Cloud records carry no progress"
    default = api.ok("list")
    assert (default["pageSize"], default["currentPage"], len(default["records"])) == (10, 1, 10)
    assert Api(server.url).ok("list")["records"] == [
        {"jobId": milvus_id, "collectionName": name, "state": "Importing", "progress": 10}
    ], "self-hosted Milvus lists its own jobs, unpaged"
    client.close()


def test_zilliz_cloud_progress_fields(
    cloud_api: Api, shared_client: MilvusClient, bucket: Path, shared_server: LocalImportServer
) -> None:
    name, schema = make_collection(shared_client)
    files = write_files(schema, bucket / unique("z"), BulkFileType.JSON, rows(4))
    job_id = cloud_api.create(name, files)
    final = cloud_api.wait(job_id)
    assert final["reason"] == ""
    assert final["fileName"] == files[0][0]
    assert final["details"][0]["reason"] == ""
    via_get_progress = cloud_api.ok("getProgress", {"jobId": job_id})
    assert via_get_progress["state"] == "Completed"


# -- HTTPS --


def test_https(server_factory: ServerFactory, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    authority.cert_pem.write_to_path(str(ca_file))

    server = server_factory(ssl_certfile=cert_file, ssl_keyfile=key_file)
    assert server.url.startswith("https://127.0.0.1:")
    assert server.milvus_uri.startswith("http://")
    assert Api(server.url, verify=str(ca_file)).ok("list") == {"records": []}
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(server.url + IMPORT_PATH + "list", json={}, timeout=30)
    assert server.stats["requests"][IMPORT_PATH + "list"] >= 1
