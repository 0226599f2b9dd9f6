"""airflow_milvus_import.protocol.responses, tested directly: envelopes, the error table, retries (no I/O)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING

import pytest

from airflow_milvus_import import protocol
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
from tests.conftest import SENTINEL_TOKEN
from tests.unit.protocol.wire import BASE, MILVUS

if TYPE_CHECKING:
    from airflow_milvus_import.protocol import ConnectionSettings

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
