"""Every error row of milvus-import-api.md, with its HTTP status, code and message, on both flavours."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import requests
from local_helpers import IMPORT_PATH, Api, make_collection, unique
from pymilvus import MilvusClient

from airflow_milvus_import.local import LocalImportServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conftest import ServerFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def collection(shared_client: MilvusClient) -> str:
    name, _ = make_collection(shared_client)
    return name


# -- 1801: not JSON, or a field of the wrong type --


@pytest.mark.parametrize(
    ("action", "raw"),
    [
        ("describe", b"this is not json"),
        ("describe", b""),
        ("describe", b"[1, 2]"),
        ("describe", b'{"jobId": 448761313698322011}'),
        ("describe", b'{"jobId": true}'),
        ("create", b'{"collectionName": "c", "files": "a.parquet"}'),
        ("create", b'{"collectionName": "c", "files": ["a.parquet"]}'),
        ("create", b'{"collectionName": "c", "files": [[1]]}'),
        ("create", b'{"collectionName": 5, "files": [["a.parquet"]]}'),
        ("create", b'{"collectionName": "c", "files": [["a.parquet"]], "options": {"timeout": 300}}'),
        ("create", b'{"collectionName": "c", "files": [["a.parquet"]], "options": ["x"]}'),
        ("list", b'{"collectionName": ["c"]}'),
    ],
)
def test_not_json_or_wrong_type_is_1801(api: Api, action: str, raw: bytes) -> None:
    status, code, message = api.error(action, raw=raw)
    assert (status, code) == (200, 1801)
    assert message.startswith("can only accept json format request")


def test_a_numeric_job_id_is_accepted_on_zilliz_cloud(
    cloud_api: Api, shared_server: LocalImportServer
) -> None:
    """Zilliz Cloud's own docs send ``"jobId": 44870776388440916`` (a number): it is read, and not found."""
    status, code, message = cloud_api.error("getProgress", {"jobId": 44870776388440916})
    assert (status, code) == (200, 2100)
    assert message == "import job does not exist, jobID=44870776388440916: importing data failed"


# -- 1802: a required field missing --


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("describe", {}, "JobID"),
        ("describe", {"jobId": ""}, "JobID"),
        ("get_progress", {"jobId": None}, "JobID"),
        ("commit", {}, "JobID"),
        ("abort", {}, "JobID"),
        ("create", {"files": [["a.parquet"]]}, "CollectionName"),
        ("create", {"collectionName": "c"}, "Files"),
    ],
)
def test_missing_required_parameter_is_1802(
    api: Api, action: str, body: dict[str, object], field: str
) -> None:
    status, code, message = api.error(action, body)
    assert (status, code) == (200, 1802)
    assert message.startswith("missing required parameters")
    assert f"'{field}'" in message


@pytest.mark.parametrize("action", ["create", "list", "describe", "getProgress"])
def test_zilliz_cloud_requires_cluster_id(shared_server: LocalImportServer, action: str) -> None:
    api = Api(shared_server.cloud_url)
    status, code, message = api.error(
        action, {"jobId": "job-x", "collectionName": "c", "objectUrls": [["a"]]}
    )
    assert (status, code) == (200, 1802)
    assert message.startswith("missing required parameters")
    assert "ClusterId" in message


def test_zilliz_cloud_create_needs_object_urls(cloud_api: Api, collection: str) -> None:
    status, code, message = cloud_api.error("create", {"collectionName": collection})
    assert (status, code) == (200, 1802)
    assert "ObjectUrls" in message


# -- 2100: unknown job, non-numeric id --


@pytest.mark.parametrize("action", ["describe", "get_progress", "commit", "abort"])
def test_unknown_job_is_2100(api: Api, action: str) -> None:
    status, code, message = api.error(action, {"jobId": "448761313698322011"})
    assert (status, code) == (200, 2100)
    assert message == "import job does not exist, jobID=448761313698322011: importing data failed"


def test_unknown_job_on_zilliz_cloud_is_2100(cloud_api: Api) -> None:
    status, code, message = cloud_api.error("describe", {"jobId": "job-00000000000000000000zz"})
    assert (status, code) == (200, 2100)
    assert message.startswith("import job does not exist, jobID=job-00000000000000000000zz")


@pytest.mark.parametrize("job_id", ["job-01fa0e5d42cjxudhpuehyp", "12a", "99999999999999999999"])
def test_non_numeric_job_id_on_self_hosted_milvus_is_2100(api: Api, job_id: str) -> None:
    status, code, message = api.error("describe", {"jobId": job_id})
    assert (status, code) == (200, 2100)
    assert message.startswith("parse job id failed")
    assert message.endswith(": importing data failed")
    assert f'parsing "{job_id}"' in message


def test_a_job_of_one_cluster_is_unknown_to_another(
    cloud_api: Api, shared_server: LocalImportServer, collection: str
) -> None:
    job_id = cloud_api.create(collection, [["nothing-here.parquet"]])
    other = Api(shared_server.cloud_url, cluster_id="in02-other")
    assert other.error("describe", {"jobId": job_id})[1] == 2100
    assert job_id not in [r["jobId"] for r in other.ok("list")["records"]]


# -- 100, 800, 200: unknown collection, database, partition --


@pytest.mark.parametrize("flavour", ["milvus", "cloud"])
def test_unknown_collection_is_100(shared_server: LocalImportServer, flavour: str) -> None:
    api = Api(shared_server.url) if flavour == "milvus" else Api(shared_server.cloud_url, cluster_id="in01-x")
    status, code, message = api.error(
        "create",
        {"collectionName": "no_such_collection", "files": [["a.parquet"]], "objectUrls": [["a.parquet"]]},
    )
    assert (status, code) == (200, 100)
    assert message == "collection not found[database=default][collection=no_such_collection]"


def test_list_filtered_by_an_unknown_collection_is_100(api: Api) -> None:
    status, code, message = api.error("list", {"collectionName": "no_such_collection"})
    assert (status, code) == (200, 100)
    assert message.startswith("collection not found")


@pytest.mark.parametrize("how", ["body", "header"])
def test_unknown_database_is_800(api: Api, collection: str, how: str) -> None:
    body: dict[str, object] = {"collectionName": collection, "files": [["a.parquet"]]}
    headers = None
    if how == "body":
        body["dbName"] = "no_such_db"
    else:
        headers = {"DB-Name": "no_such_db"}
    status, code, message = api.error("create", body, headers=headers)
    assert (status, code, message) == (200, 800, "database not found[database=no_such_db]")


def test_unknown_partition_is_200(api: Api, collection: str) -> None:
    body = {"collectionName": collection, "files": [["a.parquet"]], "partitionName": "nope"}
    assert api.error("create", body) == (200, 200, "partition not found[partition=nope]")


# -- 1100: empty files; 2100: files Milvus refuses at create --


@pytest.mark.parametrize("flavour", ["milvus", "cloud"])
def test_empty_files_is_1100(shared_server: LocalImportServer, collection: str, flavour: str) -> None:
    if flavour == "milvus":
        api, body = Api(shared_server.url), {"collectionName": collection, "files": []}
    else:
        api = Api(shared_server.cloud_url, cluster_id=shared_server.cluster_id)
        body = {"collectionName": collection, "objectUrls": []}
    status, code, message = api.error("create", body)
    assert (status, code) == (200, 1100)
    assert message.startswith("import request is empty")


@pytest.mark.parametrize(
    ("files", "start"),
    [
        ([["a.parquet", "b.parquet"]], "for Parquet import, accepts only one file"),
        ([["a.json", "b.json"]], "for JSON import, accepts only one file"),
        ([["id.npy", "vec.parquet"]], "inconsistency in file types"),
        ([["a.txt"]], "unexpect file type"),
        ([["a-folder"]], "unexpect file type"),
        ([["a.csv"]], "the local server does not import CSV files"),
        ([[]], "no file to import"),
    ],
)
def test_files_milvus_refuses_at_create_are_2100(
    api: Api, collection: str, files: list[list[str]], start: str
) -> None:
    status, code, message = api.error("create", {"collectionName": collection, "files": files})
    assert (status, code) == (200, 2100)
    assert message.startswith(start)
    assert message.endswith(": importing data failed")


def test_too_many_files_is_2100(api: Api, collection: str) -> None:
    files = [[f"f{i}.parquet"] for i in range(1025)]
    status, code, message = api.error("create", {"collectionName": collection, "files": files})
    assert (status, code) == (200, 2100)
    assert "should not exceed 1024" in message


def test_too_many_jobs_is_2100(server_factory: ServerFactory) -> None:
    server = server_factory(max_active_jobs=2, stall="stuck_*")
    client = MilvusClient(uri=server.milvus_uri)
    name, _ = make_collection(client, "stuck_jobs")
    api = Api(server.url)
    for _ in range(2):
        api.create(name, [["a.parquet"]])
    status, code, message = api.error("create", {"collectionName": name, "files": [["a.parquet"]]})
    assert (status, code) == (200, 2100)
    assert message.startswith("The number of jobs has reached the limit")
    client.close()


# -- 401 / 1800 and Zilliz Cloud's 21119 --


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalImportServer]:
    root = tmp_path_factory.mktemp("secured")
    with LocalImportServer(data_dir=root / "data", bucket=root / "bucket", token="root:Milvus") as server:
        yield server


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic cm9vdDpNaWx2dXM=", "Bearer "])
def test_missing_or_wrong_token_is_401_1800(secured: LocalImportServer, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.post(secured.url + IMPORT_PATH + "list", json={}, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.json() == {"code": 1800, "message": "user hasn't authenticated"}


def test_zilliz_cloud_bad_api_key_is_21119(secured: LocalImportServer) -> None:
    api = Api(secured.cloud_url, token="wrong", cluster_id=secured.cluster_id)
    assert api.error("list") == (200, 21119, "The apikey is illegal.")


def test_the_right_user_password_token_is_accepted(secured: LocalImportServer) -> None:
    assert Api(secured.url, token="root:Milvus").ok("list") == {"records": []}
    assert Api(secured.cloud_url, token="root:Milvus", cluster_id="in01-x").ok("list")["count"] == 0


def test_collection_routes_need_the_token_too(secured: LocalImportServer) -> None:
    response = requests.post(secured.url + "/v2/vectordb/collections/list", json={}, timeout=30)
    assert response.status_code == 401


# -- 408 / 10001 --


def test_latency_beyond_request_timeout_is_408_10001(server_factory: ServerFactory) -> None:
    server = server_factory(latency_ms=1500)
    api = Api(server.url)
    started = time.monotonic()
    response = api.post("list", {}, headers={"Request-Timeout": "1"})
    elapsed = time.monotonic() - started
    assert response.status_code == 408
    assert response.json() == {"code": 10001, "message": "request timeout"}
    assert elapsed >= 0.9
    slow_but_in_time = api.post("list", {}, headers={"Request-Timeout": "5"})
    assert slow_but_in_time.status_code == 200
    assert server.stats["faults"]["timeout"] == 1


# -- 404: unknown route, plain text --


@pytest.mark.parametrize(
    "path",
    [
        "/v2/vectordb/jobs/import/getProgress",
        "/cloud/v2/vectordb/jobs/import/get_progress",
        "/cloud/v2/vectordb/jobs/import/commit",
        "/v2/vectordb/jobs/import/nothing",
        "/v1/vector/collections/import",
        "/",
    ],
)
def test_unknown_route_is_plain_text_404(shared_server: LocalImportServer, path: str) -> None:
    response = requests.post(shared_server.url + path, json={}, timeout=30)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "404 page not found"


def test_wrong_method_is_plain_text_404(shared_server: LocalImportServer) -> None:
    response = requests.get(shared_server.url + IMPORT_PATH + "list", timeout=30)
    assert (response.status_code, response.text) == (404, "404 page not found")


def test_messages_never_echo_the_token(server_factory: ServerFactory, tmp_path: Path) -> None:
    secret = "sentinel-secret-3141"
    server = server_factory(token=secret)
    response = requests.post(
        server.url + IMPORT_PATH + "list", json={}, headers={"Authorization": "Bearer x"}, timeout=30
    )
    assert secret not in response.text
    assert secret not in repr(server)
    server.stop()
    assert secret not in server.log_path.read_text()


def test_collection_names_are_checked_before_files(api: Api) -> None:
    """Milvus resolves the collection first: an unknown collection with empty files is 100, not 1100."""
    assert api.error("create", {"collectionName": unique("nope"), "files": []})[1] == 100
