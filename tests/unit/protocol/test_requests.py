"""airflow_milvus_import.protocol.requests, tested directly: headers, bodies and argument checks (no I/O)."""

from __future__ import annotations

import json

import pytest

from airflow_milvus_import import __version__, protocol
from airflow_milvus_import.exceptions import (
    MilvusImportRequestError,
)
from airflow_milvus_import.protocol import ConnectionSettings
from tests.conftest import SENTINEL_TOKEN
from tests.unit.protocol.wire import BASE, MILVUS, ZILLIZ

# ---- requests -------------------------------------------------------------------------------------------


class TestRequests:
    def test_headers(self) -> None:
        headers = protocol.build_headers(MILVUS)
        assert headers["Authorization"] == f"Bearer {SENTINEL_TOKEN}"
        assert headers["Accept"] == headers["Content-Type"] == "application/json"
        assert headers["User-Agent"] == f"airflow-milvus-import/{__version__}"
        assert headers["Request-Timeout"] == "29"
        assert "DB-Name" not in headers

    def test_headers_without_token_with_database(self) -> None:
        headers = protocol.build_headers(ConnectionSettings(base_url=BASE, db_name="d", timeout=0.5))
        assert "Authorization" not in headers
        assert headers["DB-Name"] == "d"
        assert headers["Request-Timeout"] == "1"

    def test_request_repr_hides_credentials(self) -> None:
        request = protocol.build_create_request(
            ZILLIZ,
            "docs",
            [["s3://b/a.parquet"]],
            storage_credentials={"access_key": "AK", "secret_key": "SK-secret"},
        )
        assert SENTINEL_TOKEN not in repr(request)
        assert "SK-secret" not in repr(request)
        assert request.body["secretKey"] == "SK-secret"
        assert "SK-secret" in request.secrets
        assert SENTINEL_TOKEN in request.secrets
        assert request.redact(f"x {SENTINEL_TOKEN} SK-secret") == "x *** ***"

    def test_create_milvus(self) -> None:
        request = protocol.build_create_request(
            MILVUS,
            "docs",
            [["a.parquet"], ["id.npy", "vec.npy"]],
            db_name="db1",
            partition_name="p",
            options={"timeout": "300s", "auto_commit": False, "retries": 2, "ratio": 0.5, "whole": 3.0},
        )
        assert request.url == f"{BASE}/v2/vectordb/jobs/import/create"
        assert request.endpoint == f"POST {BASE}/v2/vectordb/jobs/import/create"
        assert request.body == {
            "collectionName": "docs",
            "files": [["a.parquet"], ["id.npy", "vec.npy"]],
            "partitionName": "p",
            "options": {
                "timeout": "300s",
                "auto_commit": "false",
                "retries": "2",
                "ratio": "0.5",
                "whole": "3",
            },
            "dbName": "db1",
        }
        assert request.headers["DB-Name"] == "db1"
        assert not request.idempotent
        assert request.subject == "Milvus import into collection 'docs'"
        assert json.loads(request.content()) == request.body

    def test_create_flat_file_list(self) -> None:
        request = protocol.build_create_request(MILVUS, "docs", ["a.parquet", "b.parquet"])
        assert request.body["files"] == [["a.parquet"], ["b.parquet"]]

    def test_create_zilliz_sends_object_urls_and_cluster(self) -> None:
        request = protocol.build_create_request(
            ZILLIZ,
            "docs",
            object_urls=[["s3://b/a.parquet"]],
            storage_credentials={"access_key": "AK", "secret_key": "SK", "token": "STS"},
        )
        assert request.body == {
            "collectionName": "docs",
            "objectUrls": [["s3://b/a.parquet"]],
            "accessKey": "AK",
            "secretKey": "SK",
            "token": "STS",
            "clusterId": "in01-abc",
        }
        assert protocol.build_create_request(ZILLIZ, "docs", ["s3://b/x"]).body["objectUrls"] == [
            ["s3://b/x"]
        ]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"collection_name": "", "files": [["a"]]}, "collection_name is empty"),
            ({"collection_name": None, "files": [["a"]]}, "collection_name is empty"),
            ({"collection_name": 5, "files": [["a"]]}, "collection_name must be a string"),
            ({"collection_name": "docs", "files": "a.parquet"}, "files must be a list"),
            ({"collection_name": "docs", "files": {"a": 1}}, "files must be a list"),
            ({"collection_name": "docs", "files": []}, "files is empty"),
            ({"collection_name": "docs", "files": None}, "files is missing"),
            ({"collection_name": "docs", "files": [[]]}, r"files\[0\] is an empty list"),
            ({"collection_name": "docs", "files": [["a", 3]]}, r"files\[0\] must hold non-empty path"),
            ({"collection_name": "docs", "files": [[["nested"]]]}, r"files\[0\] must hold"),
            ({"collection_name": "docs", "files": [7]}, r"files\[0\] must be a path"),
            ({"collection_name": "docs", "files": [["a"]], "object_urls": [["b"]]}, "not both"),
            ({"collection_name": "docs", "files": [["a"]], "options": {"x": {"y": 1}}}, "option 'x'"),
            ({"collection_name": "docs", "files": [["a"]], "options": {"x": [1]}}, "option 'x'"),
            ({"collection_name": "docs", "files": [["a"]], "options": {"x": None}}, "leave the option out"),
            ({"collection_name": "docs", "files": [["a"]], "options": {"x": float("nan")}}, "finite"),
            ({"collection_name": "docs", "files": [["a"]], "options": {3: "x"}}, "option names"),
            ({"collection_name": "docs", "files": [["a"]], "options": ["x"]}, "options must be a mapping"),
            (
                {"collection_name": "docs", "files": [["a"]], "storage_credentials": {"access_key": "A"}},
                "storage_credentials are for Zilliz Cloud",
            ),
        ],
    )
    def test_create_rejects_bad_input(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(MilvusImportRequestError, match=message):
            protocol.build_create_request(MILVUS, **kwargs)  # type: ignore[arg-type]

    def test_create_from_a_zilliz_volume(self) -> None:
        # Zilliz docs "Import data via volume"; pymilvus bulk_import(volume_name=, data_paths=)
        request = protocol.build_create_request(
            ZILLIZ,
            "docs",
            ["json-folder/1.json", ["npy/id.npy", "npy/vec.npy"]],
            volume_name=" my_volume ",
            partition_name="p",
            options={"timeout": 300},
        )
        assert request.body == {
            "collectionName": "docs",
            "volumeName": "my_volume",
            "dataPaths": [["json-folder/1.json"], ["npy/id.npy", "npy/vec.npy"]],
            "partitionName": "p",
            "options": {"timeout": "300"},
            "clusterId": "in01-abc",
        }
        assert not request.idempotent
        # an empty volume_name is no volume
        assert (
            "objectUrls" in protocol.build_create_request(ZILLIZ, "docs", [["s3://b/a"]], volume_name="").body
        )

    @pytest.mark.parametrize(
        ("settings", "kwargs", "message"),
        [
            (MILVUS, {"files": [["a"]]}, "volume_name is for Zilliz Cloud volumes"),
            (
                ZILLIZ,
                {"object_urls": [["s3://b/a"]]},
                "give files \\(paths inside the volume\\), not object_urls",
            ),
            (
                ZILLIZ,
                {"files": [["a"]], "storage_credentials": {"access_key": "A"}},
                "needs no storage_credentials",
            ),
            (ZILLIZ, {"files": [["s3://b/a.json"]]}, "is a URL"),
            (ZILLIZ, {}, "files is missing"),
            (ZILLIZ, {"files": []}, "files is empty"),
            (ZILLIZ, {"files": [["a"]], "volume_name": 7}, "volume_name must be a string"),
        ],
    )
    def test_create_from_a_volume_rejects_bad_input(
        self, settings: ConnectionSettings, kwargs: dict[str, object], message: str
    ) -> None:
        kwargs = {"volume_name": "v", **kwargs}
        with pytest.raises(MilvusImportRequestError, match=message):
            protocol.build_create_request(settings, "docs", **kwargs)  # type: ignore[arg-type]

    def test_unknown_storage_credential(self) -> None:
        with pytest.raises(MilvusImportRequestError, match="unknown storage credential 'password'"):
            protocol.build_create_request(ZILLIZ, "docs", [["a"]], storage_credentials={"password": "x"})

    @pytest.mark.parametrize("route", protocol.PROGRESS_ROUTES)
    def test_progress_sends_job_id_as_string(self, route: str) -> None:
        request = protocol.build_progress_request(MILVUS, 448761313698322011, route=route)
        assert request.body == {"jobId": "448761313698322011"}
        assert request.url.endswith(f"/import/{route}")
        assert request.subject == "Milvus import job 448761313698322011"
        assert request.idempotent

    def test_zilliz_bodies_carry_cluster_id(self) -> None:
        assert protocol.build_progress_request(ZILLIZ, "job-1").body == {
            "jobId": "job-1",
            "clusterId": "in01-abc",
        }
        assert protocol.build_list_request(ZILLIZ, "docs", page=3).body == {
            "collectionName": "docs",
            "pageSize": 100,
            "currentPage": 3,
            "clusterId": "in01-abc",
        }
        assert protocol.build_list_request(MILVUS).body == {}

    def test_commit_and_abort(self) -> None:
        assert protocol.build_commit_request(MILVUS, "1").url.endswith("/import/commit")
        assert protocol.build_abort_request(MILVUS, "1", db_name="d").body == {"jobId": "1", "dbName": "d"}

    @pytest.mark.parametrize("job_id", [None, "", "   ", 1.5, True, ["1"], {"id": 1}])
    def test_bad_job_ids_are_rejected(self, job_id: object) -> None:
        with pytest.raises(MilvusImportRequestError, match="job id"):
            protocol.build_progress_request(MILVUS, job_id)

    def test_not_a_progress_route(self) -> None:
        with pytest.raises(ValueError, match="not a progress route"):
            protocol.build_progress_request(MILVUS, "1", route="list")

    def test_progress_route_order(self) -> None:
        assert protocol.progress_routes(MILVUS) == ("describe", "get_progress")
        assert protocol.progress_routes(ZILLIZ) == ("describe", "getProgress", "get_progress")
