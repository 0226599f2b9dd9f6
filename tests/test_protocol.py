"""protocol.py, tested directly: settings, requests, envelopes and the error mapping (no I/O)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from airflow_milvus_import import __version__, protocol
from airflow_milvus_import.exceptions import (
    MilvusImportAuthError,
    MilvusImportConnectError,
    MilvusImportConnectionError,
    MilvusImportError,
    MilvusImportJobLimitError,
    MilvusImportNotFoundError,
    MilvusImportPermissionError,
    MilvusImportRateLimitError,
    MilvusImportRequestError,
    MilvusImportResponseError,
    MilvusImportRouteNotFoundError,
    MilvusImportServerError,
    MilvusImportServerTimeoutError,
)
from airflow_milvus_import.models import ImportJobState
from airflow_milvus_import.protocol import ConnectionSettings, settings_from_connection
from tests.conftest import SENTINEL_TOKEN

BASE = "http://127.0.0.1:19530"
MILVUS = ConnectionSettings(base_url=BASE, token=SENTINEL_TOKEN, conn_id="m")
ZILLIZ = ConnectionSettings(
    base_url="https://api.cloud.zilliz.com", token=SENTINEL_TOKEN, cluster_id="in01-abc", conn_id="z"
)


def settings(**kwargs: object) -> ConnectionSettings:
    values: dict[str, object] = {"conn_id": "c", "host": BASE}
    values.update(kwargs)
    return settings_from_connection(**values)  # type: ignore[arg-type]


# ---- settings_from_connection ---------------------------------------------------------------------------


class TestSettings:
    def test_defaults(self) -> None:
        result = settings(password=SENTINEL_TOKEN)
        assert result.base_url == BASE
        assert result.token == SENTINEL_TOKEN
        assert (result.timeout, result.max_retries, result.verify) == (30.0, 3, True)
        assert result.cluster_id is None
        assert not result.is_zilliz
        assert result.deployment == "Milvus"

    def test_token_never_in_repr_or_str(self) -> None:
        result = settings(login="root", password=SENTINEL_TOKEN)
        assert result.token == f"root:{SENTINEL_TOKEN}"
        assert SENTINEL_TOKEN not in repr(result)
        assert SENTINEL_TOKEN not in str(result)
        assert result.secrets == (f"root:{SENTINEL_TOKEN}", SENTINEL_TOKEN)

    def test_no_password_means_no_token(self) -> None:
        assert settings().token is None

    def test_login_without_password_is_rejected(self) -> None:
        with pytest.raises(MilvusImportRequestError, match=r"'c'.*Password is empty"):
            settings(login="root")

    @pytest.mark.parametrize("bad", ["s3cr3t\nXy", "s3cr3t\rXy", " s3cr3tXy", "s3cr3tXy\t"])
    def test_token_with_control_characters_or_padding_is_rejected_without_echo(self, bad: str) -> None:
        with pytest.raises(MilvusImportRequestError) as caught:
            settings(password=bad)
        assert "s3cr3t" not in str(caught.value)

    @pytest.mark.parametrize(
        ("host", "port", "schema", "expected"),
        [
            ("http://127.0.0.1:19530", None, None, "http://127.0.0.1:19530"),
            ("http://127.0.0.1:19530/", 19530, None, "http://127.0.0.1:19530"),
            ("http://127.0.0.1", 19530, None, "http://127.0.0.1:19530"),
            ("127.0.0.1", 19530, None, "http://127.0.0.1:19530"),
            ("localhost:19530", 0, None, "http://localhost:19530"),
            ("api.cloud.zilliz.com", None, None, "https://api.cloud.zilliz.com"),
            ("example.org", 443, None, "https://example.org"),
            ("https://api.cloud.zilliz.com", 443, None, "https://api.cloud.zilliz.com"),
            ("http://milvus.internal:80", None, None, "http://milvus.internal"),
            ("HTTPS://api.cloud.zilliz.com.cn", None, None, "https://api.cloud.zilliz.com.cn"),
            ("http://127.0.0.1:8000/cloud/", None, None, "http://127.0.0.1:8000/cloud"),
            ("127.0.0.1", 8000, "cloud", "http://127.0.0.1:8000/cloud"),
            ("http://[::1]:19530", None, None, "http://[::1]:19530"),
        ],
    )
    def test_base_url(self, host: str, port: int | None, schema: str | None, expected: str) -> None:
        assert settings(host=host, port=port, schema=schema).base_url == expected

    @pytest.mark.parametrize(
        ("host", "port", "message"),
        [
            ("", None, "Host is empty"),
            (None, None, "Host is empty"),
            ("ftp://x", None, "http:// or https://"),
            ("http://", None, "not a valid URL"),
            ("http://host:notaport", None, "not a valid URL"),
            ("http://host:70000", None, "not a valid URL"),
            ("http://user:secret@host:19530", None, "must not carry credentials"),
            ("http://host:19530?x=1", None, "query"),
            ("http://ho st:19530", None, "not a valid URL"),
            ("http://host:19530", 8080, "port 19530 but the Port field says 8080"),
            ("http://host", 99999, "Port must be"),
            ("http://host:19530/v2/vectordb/jobs/import", None, "root URL"),
        ],
    )
    def test_malformed_endpoint_names_the_connection(
        self, host: str | None, port: int | None, message: str
    ) -> None:
        with pytest.raises(MilvusImportRequestError) as caught:
            settings_from_connection("my_conn", host, port)
        assert "'my_conn'" in str(caught.value)
        assert message in str(caught.value)
        assert "secret" not in str(caught.value)

    def test_extras(self) -> None:
        result = settings(
            extra={
                "cluster_id": " in01-x ",
                "db_name": "analytics",
                "timeout": "12.5",
                "verify": "false",
                "max_retries": "5",
                "max_response_bytes": 1000,
                "rate_limit": 10,
                "console_link": "http://attu/{job_id}",
            }
        )
        assert result.cluster_id == "in01-x"
        assert result.is_zilliz
        assert result.deployment == "Zilliz Cloud"
        assert result.db_name == "analytics"
        assert result.timeout == 12.5
        assert result.max_retries == 5
        assert result.verify is False
        assert result.max_response_bytes == 1000
        assert result.rate_limit == 10.0
        assert result.console_link == "http://attu/{job_id}"

    def test_prefixed_extras_of_older_forms(self) -> None:
        result = settings(
            extra={"extra__milvus_import__cluster_id": "in01-y", "extra__milvus_import__timeout": 3}
        )
        assert result.cluster_id == "in01-y"
        assert result.timeout == 3.0

    def test_empty_extras_mean_defaults(self) -> None:
        result = settings(
            extra={"cluster_id": "", "db_name": "", "timeout": "", "verify": "", "max_retries": ""}
        )
        assert result.cluster_id is None
        assert result.db_name is None
        assert (result.timeout, result.verify, result.max_retries) == (30.0, True, 3)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(True, True), ("TRUE", True), ("no", False), ("/etc/ssl/ca.pem", "/etc/ssl/ca.pem")],
    )
    def test_verify(self, value: object, expected: object) -> None:
        assert settings(extra={"verify": value}).verify == expected

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            ({"timeout": "soon"}, "'timeout' must be a number"),
            ({"timeout": -1}, "positive"),
            ({"timeout": True}, "'timeout' must be a number"),
            ({"max_retries": "-1"}, "'max_retries' must be a whole number"),
            ({"max_retries": 1.5}, "'max_retries' must be a whole number"),
            ({"verify": 3}, "'verify'"),
            ({"cluster_id": ["a"]}, "'cluster_id' must be text"),
        ],
    )
    def test_bad_extras_name_the_connection(self, extra: dict[str, object], message: str) -> None:
        with pytest.raises(MilvusImportRequestError, match=message) as caught:
            settings(extra=extra)
        assert "'c'" in str(caught.value)

    def test_hook_arguments_override_extras(self) -> None:
        result = settings_from_connection(
            "c", BASE, extra={"timeout": 5, "max_retries": 5}, timeout=1, max_retries=0
        )
        assert (result.timeout, result.max_retries) == (1.0, 0)


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


# ---- responses and the error mapping --------------------------------------------------------------------


def describe(settings: ConnectionSettings = MILVUS, job_id: str = "123") -> protocol.ApiRequest:
    return protocol.build_progress_request(settings, job_id)


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


DESCRIBE_URL = f"POST {BASE}/v2/vectordb/jobs/import/describe"

# (row, HTTP status, headers, body, expected class, code, text in message): one per row of
# docs/milvus-import-api.md
ERROR_ROWS = [
    (
        "body not JSON / wrong type",
        200,
        {},
        body({"code": 1801, "message": "can only accept json format request"}),
        MilvusImportRequestError,
        1801,
        "rejected by the server",
    ),
    (
        "required field missing",
        200,
        {},
        body({"code": 1802, "message": "missing required parameters"}),
        MilvusImportRequestError,
        1802,
        "missing required parameters",
    ),
    (
        "unknown job id",
        200,
        {},
        body({"code": 2100, "message": "import job does not exist, jobID=123: importing data failed"}),
        MilvusImportNotFoundError,
        2100,
        "Milvus import job 123 not found",
    ),
    (
        "non-numeric job id",
        200,
        {},
        body({"code": 2100, "message": "parse job id failed: importing data failed"}),
        MilvusImportNotFoundError,
        2100,
        "not found",
    ),
    (
        "unknown job id, Milvus 3.x",
        200,
        {},
        body(
            {
                "code": 2101,
                "message": "import job does not exist, jobID=123: importing data failed on server side",
            }
        ),
        MilvusImportNotFoundError,
        2101,
        "Milvus import job 123 not found",
    ),
    (
        "missing job on commit / abort, Milvus 3.x",
        200,
        {},
        body({"code": 2101, "message": "job 123 not found"}),
        MilvusImportNotFoundError,
        2101,
        "Milvus import job 123 not found",
    ),
    (
        "non-numeric job id, Milvus 3.x",
        200,
        {},
        body(
            {
                "code": 1100,
                "message": 'parse job id failed: strconv.ParseInt: parsing "123": invalid syntax: '
                "invalid parameter",
            }
        ),
        MilvusImportRequestError,
        1100,
        "Milvus import job 123 was refused: the server cannot read the job id",
    ),
    (
        "job limit, Milvus 3.x",
        200,
        {},
        body(
            {
                "code": 2101,
                "message": "The number of jobs has reached the limit, please try again later.: "
                "importing data failed on server side",
            }
        ),
        MilvusImportJobLimitError,
        2101,
        "dataCoord.import.maxImportJobNum",
    ),
    (
        "other server-side import failure, Milvus 3.x",
        200,
        {},
        body({"code": 2101, "message": "allocate segment failed: importing data failed on server side"}),
        MilvusImportRequestError,
        2101,
        "rejected by the server",
    ),
    (
        "unknown collection",
        200,
        {},
        body({"code": 100, "message": "collection not found[database=default][collection=x]"}),
        MilvusImportNotFoundError,
        100,
        "collection not found",
    ),
    (
        "empty files",
        200,
        {},
        body({"code": 1100, "message": "import request is empty"}),
        MilvusImportRequestError,
        1100,
        "import request is empty",
    ),
    (
        "job limit",
        200,
        {},
        body({"code": 2100, "message": "The number of jobs has reached the limit"}),
        MilvusImportJobLimitError,
        2100,
        "reached the limit",
    ),
    (
        "auth missing",
        401,
        {},
        body({"code": 1800, "message": "user hasn't authenticated"}),
        MilvusImportAuthError,
        1800,
        "credentials were not accepted",
    ),
    (
        "no privilege",
        403,
        {},
        body({"code": 1401, "message": "PrivilegeImport: permission deny to user"}),
        MilvusImportPermissionError,
        1401,
        "permission denied",
    ),
    (
        "server-side timeout",
        408,
        {},
        body({"code": 10001, "message": "request timeout"}),
        MilvusImportServerTimeoutError,
        10001,
        "timed out on the server",
    ),
    (
        "zilliz bad key",
        200,
        {},
        body({"code": 21119, "message": "The apikey is illegal."}),
        MilvusImportAuthError,
        21119,
        "The apikey is illegal.",
    ),
    ("unknown route", 404, {}, b"404 page not found", MilvusImportRouteNotFoundError, None, "no such route"),
    (
        "rate limited",
        429,
        {"Retry-After": "7"},
        b"Too Many Requests",
        MilvusImportRateLimitError,
        None,
        "retry after 7 s",
    ),
    (
        "rate limited JSON",
        429,
        {},
        body({"code": 1807, "message": "request is rejected by limiter"}),
        MilvusImportRateLimitError,
        1807,
        "rate limited",
    ),
    (
        "server error HTML",
        502,
        {},
        b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        MilvusImportServerError,
        None,
        "HTTP 502: 502 Bad Gateway",
    ),
    (
        "server error JSON",
        500,
        {},
        body({"code": 65535, "message": "unexpected error"}),
        MilvusImportServerError,
        65535,
        "unexpected error",
    ),
    (
        "service not ready",
        200,
        {},
        body({"code": 1, "message": "service not ready"}),
        MilvusImportServerError,
        1,
        "service not ready",
    ),
    (
        "HTML with 200",
        200,
        {},
        b"<!doctype html><html><body>Login</body></html>",
        MilvusImportResponseError,
        None,
        "an HTML page",
    ),
    ("invalid JSON", 200, {}, b'{"code": 0, "data": ', MilvusImportResponseError, None, "not JSON"),
    (
        "JSON without code",
        200,
        {},
        body({"data": {"jobId": "1"}}),
        MilvusImportResponseError,
        None,
        "JSON that has no 'code'",
    ),
    ("empty body", 200, {}, b"", MilvusImportResponseError, None, "empty body"),
    (
        "non-numeric code",
        200,
        {},
        body({"code": "oops"}),
        MilvusImportResponseError,
        None,
        "non-numeric code",
    ),
    (
        "data not an object",
        200,
        {},
        body({"code": 0, "data": [1]}),
        MilvusImportResponseError,
        0,
        "not an object",
    ),
    (
        "redirect",
        301,
        {"Location": "https://user:pw@elsewhere:443/v2?x=1"},
        b"",
        MilvusImportResponseError,
        None,
        "redirected",
    ),
    ("other 4xx", 400, {}, b"bad request", MilvusImportRequestError, None, "HTTP 400: bad request"),
]


@pytest.mark.parametrize(
    ("row", "status", "headers", "payload", "cls", "code", "text"),
    ERROR_ROWS,
    ids=[row[0] for row in ERROR_ROWS],
)
def test_error_rows(
    row: str,
    status: int,
    headers: dict[str, str],
    payload: bytes,
    cls: type[MilvusImportError],
    code: int | None,
    text: str,
) -> None:
    with pytest.raises(MilvusImportError) as caught:
        protocol.parse_response(describe(), status, headers, payload)
    error = caught.value
    assert type(error) is cls
    message = str(error)
    assert message.startswith("Milvus import job 123 ")
    assert DESCRIBE_URL in message
    assert text in message
    assert error.endpoint == DESCRIBE_URL
    assert error.job_id == "123"
    assert error.code == code
    assert error.http_status == status
    assert SENTINEL_TOKEN not in message
    assert SENTINEL_TOKEN not in repr(error)
    assert "pw" not in message


def test_the_documented_example_message() -> None:
    with pytest.raises(MilvusImportNotFoundError) as caught:
        protocol.parse_response(
            describe(),
            200,
            {},
            body({"code": 2100, "message": "import job does not exist, jobID=123: importing data failed"}),
        )
    assert str(caught.value) == (
        f"Milvus import job 123 not found ({DESCRIBE_URL}): code 2100: import job does "
        "not exist, jobID=123: importing data failed"
    )


def test_collection_errors_name_the_collection() -> None:
    request = protocol.build_create_request(MILVUS, "missing_one", [["a.parquet"]])
    with pytest.raises(MilvusImportNotFoundError) as caught:
        protocol.parse_response(
            request,
            200,
            {},
            body({"code": 100, "message": "collection not found[database=default][collection=missing_one]"}),
        )
    assert "Milvus import into collection 'missing_one' failed: not found" in str(caught.value)
    assert f"POST {BASE}/v2/vectordb/jobs/import/create" in str(caught.value)
    assert caught.value.collection_name == "missing_one"


def test_a_server_echoing_the_token_is_redacted() -> None:
    with pytest.raises(MilvusImportAuthError) as caught:
        protocol.parse_response(describe(), 401, {}, f"bad token Bearer {SENTINEL_TOKEN}".encode())
    assert SENTINEL_TOKEN not in str(caught.value)
    assert "Bearer ***" in str(caught.value)


def test_rate_limit_carries_retry_after() -> None:
    with pytest.raises(MilvusImportRateLimitError) as caught:
        protocol.parse_response(describe(), 429, {"retry-after": "2.5"}, b"")
    assert caught.value.retry_after == 2.5
    assert caught.value.transient


def test_too_large_answer() -> None:
    with pytest.raises(MilvusImportResponseError, match="too large"):
        protocol.parse_response(describe(), 200, {}, b" " * 101, max_bytes=100)


def test_long_messages_are_cut() -> None:
    with pytest.raises(MilvusImportServerError) as caught:
        protocol.parse_response(describe(), 503, {}, b"x" * 5000)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("code", [0, 200])
def test_success_codes(code: int) -> None:
    assert protocol.parse_response(
        describe(), 200, {}, body({"code": code, "data": {"state": "Completed"}})
    ) == {"state": "Completed"}


def test_success_without_data_is_empty() -> None:
    assert protocol.parse_response(describe(), 200, {}, body({"code": 0})) == {}


@pytest.mark.parametrize("message", [None, "", "success", "OK"])
def test_early_milvus_code_200_without_data_is_a_success(message: str | None) -> None:
    envelope: dict[str, object] = {"code": 200}
    if message is not None:
        envelope["message"] = message
    assert protocol.parse_response(describe(), 200, {}, body(envelope)) == {}


def test_code_200_with_only_a_message_is_partition_not_found() -> None:
    """200 is also Milvus' ErrPartitionNotFound: a message and no data is that error, not a success."""
    create = protocol.build_create_request(MILVUS, "docs", [["a"]], partition_name="p9")
    with pytest.raises(MilvusImportNotFoundError) as caught:
        protocol.parse_response(
            create, 200, {}, body({"code": 200, "message": "partition not found[partition=p9]"})
        )
    assert "Milvus import into collection 'docs' failed: not found" in str(caught.value)
    assert "code 200: partition not found[partition=p9]" in str(caught.value)


def test_a_database_name_outside_ascii_is_refused_before_sending() -> None:
    with pytest.raises(MilvusImportRequestError) as caught:
        protocol.build_progress_request(MILVUS, "5", db_name="b\u00fccher")
    assert "Milvus import job 5 was not sent" in str(caught.value)
    assert "db_name 'b\u00fccher'" in str(caught.value)


@pytest.mark.parametrize("token", ["abc\u2014def", "caf\u00e9"])
def test_a_token_outside_ascii_is_the_connections_error(token: str) -> None:
    with pytest.raises(MilvusImportRequestError) as caught:
        protocol.settings_from_connection("ami_conn", "http://localhost:19530", password=token)
    assert "Milvus import connection 'ami_conn'" in str(caught.value)
    assert token not in str(caught.value)


def test_success_code_with_error_status_trusts_the_status() -> None:
    with pytest.raises(MilvusImportServerError):
        protocol.parse_response(describe(), 503, {}, body({"code": 0, "message": "overloaded"}))


def test_json_404_is_mapped_by_code_not_as_missing_route() -> None:
    with pytest.raises(MilvusImportNotFoundError) as caught:
        protocol.parse_response(
            describe(), 404, {}, body({"code": 2100, "message": "import job does not exist"})
        )
    assert type(caught.value) is MilvusImportNotFoundError


def test_create_and_list_answers() -> None:
    create = protocol.build_create_request(MILVUS, "docs", [["a"]])
    assert protocol.parse_create_response(create, {"jobId": "448761313698322011"}) == "448761313698322011"
    assert protocol.parse_create_response(create, {"jobID": 448761313698322011}) == "448761313698322011"
    with pytest.raises(MilvusImportResponseError, match="no job id"):
        protocol.parse_create_response(create, {})
    listing = protocol.build_list_request(MILVUS)
    assert protocol.parse_list_page(listing, {"records": [{"jobId": "1"}, "junk"], "count": "5"}) == (
        [{"jobId": "1"}],
        5,
    )
    assert protocol.parse_list_page(listing, {"tasks": [{"jobId": "1"}]}) == ([{"jobId": "1"}], None)
    assert protocol.parse_list_page(listing, {}) == ([], None)
    with pytest.raises(MilvusImportResponseError, match="'records' is a str"):
        protocol.parse_list_page(listing, {"records": "x"})


# ---- retry decisions ------------------------------------------------------------------------------------


def _error(cls: type[MilvusImportError], **kwargs: object) -> MilvusImportError:
    return cls("x", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "idempotent_retry", "create_retry"),
    [
        (_error(MilvusImportConnectError), True, True),
        (_error(MilvusImportConnectionError), True, False),
        (_error(MilvusImportServerError, http_status=502), True, False),
        (_error(MilvusImportServerError, http_status=503), True, True),
        (_error(MilvusImportServerError, code=1, http_status=200), True, True),
        (_error(MilvusImportServerTimeoutError, http_status=408), True, False),
        (_error(MilvusImportRateLimitError, http_status=429), True, True),
        (_error(MilvusImportJobLimitError, code=2100), True, True),
        (_error(MilvusImportJobLimitError, code=2101), True, True),
        (_error(MilvusImportRequestError, code=1801), False, False),
        (_error(MilvusImportRequestError, code=1100), False, False),
        (_error(MilvusImportNotFoundError, code=2100), False, False),
        (_error(MilvusImportAuthError, http_status=401), False, False),
        (_error(MilvusImportResponseError), False, False),
        (ValueError("not ours"), False, False),
    ],
)
def test_is_retryable(error: BaseException, idempotent_retry: bool, create_retry: bool) -> None:
    assert protocol.is_retryable(describe(), error) is idempotent_retry
    create = protocol.build_create_request(MILVUS, "docs", [["a"]])
    assert protocol.is_retryable(create, error) is create_retry


def test_connection_error() -> None:
    error = protocol.connection_error(describe(), f"refused {SENTINEL_TOKEN}", request_sent=False)
    assert type(error) is MilvusImportConnectError
    assert error.transient
    assert str(error) == f"Milvus import job 123 could not reach the server ({DESCRIBE_URL}): refused ***"
    assert type(protocol.connection_error(describe(), "x", request_sent=True)) is MilvusImportConnectionError


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ([("RETRY-AFTER", "2")], 2.0),
        (None, None),
        ({"Retry-After": "nan"}, None),
    ],
)
def test_retry_after_seconds(headers: object, expected: float | None) -> None:
    assert protocol.retry_after_seconds(headers) == expected  # type: ignore[arg-type]


def test_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=timezone.utc), usegmt=True)
    assert protocol.retry_after_seconds({"Retry-After": later}, now=now.timestamp()) == 30.0


# ---- list paging ----------------------------------------------------------------------------------------


def page(ids: list[str], count: int | None = None) -> dict[str, object]:
    data: dict[str, object] = {"records": [{"jobId": job_id, "state": "Completed"} for job_id in ids]}
    if count is not None:
        data["count"] = count
    return data


def run_pager(pager: protocol.ListPager, pages: list[dict[str, object]]) -> list[int]:
    asked: list[int] = []
    answers = iter(pages)
    while (request := pager.next_request()) is not None:
        asked.append(int(request.body.get("currentPage", 0)))
        pager.feed(request, next(answers))
    return asked


def test_milvus_lists_in_one_request() -> None:
    pager = protocol.ListPager(MILVUS, "docs")
    assert run_pager(pager, [page(["1", "2"])]) == [0]
    assert [job.job_id for job in pager.jobs] == ["1", "2"]
    assert pager.jobs[0].state is ImportJobState.COMPLETED


def test_zilliz_pages_until_count() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 5), page(["c", "d"], 5), page(["e"], 5)]) == [1, 2, 3]
    assert [job.job_id for job in pager.jobs] == ["a", "b", "c", "d", "e"]


def test_zilliz_stops_on_empty_page() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 9), page([], 9)]) == [1, 2]
    assert len(pager.jobs) == 2


def test_zilliz_stops_on_a_repeated_page() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 6), page(["a", "b"], 6)]) == [1, 2]
    assert [job.job_id for job in pager.jobs] == ["a", "b"]


def test_zilliz_without_count_stops_on_a_short_page() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"]), page(["c"])]) == [1, 2]


def test_zilliz_shifted_pages_are_deduplicated() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 4), page(["b", "c"], 4), page(["d"], 4)]) == [1, 2, 3]
    assert [job.job_id for job in pager.jobs] == ["a", "b", "c", "d"]


def test_zilliz_count_per_page_never_ends_a_listing() -> None:
    # the Zilliz docs call count the "total number of records listed in this response"
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 2), page(["c", "d"], 2), page(["e"], 1)]) == [1, 2, 3]
    assert len(pager.jobs) == 5


def test_zilliz_full_last_page_ends_on_the_empty_one() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a", "b"], 4), page(["c", "d"], 4), page([], 4)]) == [1, 2, 3]


def test_zilliz_short_page_ends_even_when_count_says_more() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=2)
    assert run_pager(pager, [page(["a"], 10)]) == [1]


def test_a_server_paging_by_less_is_followed_by_its_page_size() -> None:
    listing = protocol.build_list_request(ZILLIZ, page=1, page_size=100)
    records = [{"jobId": str(number)} for number in range(30)]
    assert not protocol.is_last_list_page(ZILLIZ, {"pageSize": 30}, records, page_size=100)
    assert protocol.is_last_list_page(ZILLIZ, {"pageSize": 30}, records[:29], page_size=100)
    assert protocol.is_last_list_page(ZILLIZ, {"pageSize": "junk"}, records, page_size=100)
    assert protocol.is_last_list_page(ZILLIZ, {}, [], page_size=100)
    assert protocol.is_last_list_page(MILVUS, {}, records, page_size=30)
    assert listing.body["pageSize"] == 100


def test_pager_max_pages() -> None:
    pager = protocol.ListPager(ZILLIZ, page_size=1, max_pages=2)
    assert run_pager(pager, [page(["a"], 10), page(["b"], 10)]) == [1, 2]
    assert pager.done
