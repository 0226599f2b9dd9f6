"""
Round 2 of docs/milvus-import-api.md through MilvusImportHook on 127.0.0.1: one test per row, each with the
server's body as the page records it and the source it was read from, on the sync and the async path.

Where the page records only part of a message (``...``), the body carries that part as it is and the test
says so; codes the page does not record are named as assumed.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_milvus_import.exceptions import (
    MilvusImportError,
    MilvusImportJobLimitError,
    MilvusImportNotFoundError,
    MilvusImportRequestError,
)
from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
from airflow_milvus_import.models import ImportFileState, ImportJobState
from tests.conftest import SENTINEL_TOKEN
from tests.unit.hooks.test_milvus_import import assert_clean, catch, hook_for, run
from tests.wire_server import FakeImportServer, envelope, json_response

if TYPE_CHECKING:
    from pytest_httpserver import HTTPServer
    from werkzeug import Response

MODES = ["sync", "async"]

#: datacoord ValidateMaxImportJobExceed (internal/datacoord/import_util.go), wrapped by merr
JOB_LIMIT = (
    "The number of jobs has reached the limit, please try again later. If your request is set to only import "
    "a single file, please consider importing multiple files in one request for better efficiency."
)


@pytest.fixture(autouse=True)
def _fresh_route_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MilvusImportHook, "_progress_route_by_url", {})


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> FakeImportServer:
    return FakeImportServer(httpserver_ipv4, token=SENTINEL_TOKEN)


@pytest.fixture
def zilliz(httpserver_ipv4: HTTPServer) -> FakeImportServer:
    return FakeImportServer(httpserver_ipv4, flavour="zilliz", token=SENTINEL_TOKEN)


def answer(code: int, message: str, data: Any = None) -> Response:
    return json_response(envelope(data, code=code, message=message))


# ---- unknown and unreadable job ids ---------------------------------------------------------------------


# (row, source, body, class, text in the message)
PROGRESS_ROWS = [
    (
        "unknown job id, Milvus 3.x",
        "master internal/datacoord/services.go GetImportProgress; pkg/util/merr ErrImportSysFailed = 2101",
        {
            "code": 2101,
            "message": "import job does not exist, jobID=123: importing data failed on server side",
        },
        MilvusImportNotFoundError,
        "Milvus import job 123 not found",
    ),
    (
        "unknown job id, Milvus 2.5 / 2.6",
        "2.5 / 2.6 internal/datacoord/services.go GetImportProgress; merr ErrImportFailed = 2100",
        {"code": 2100, "message": "import job does not exist, jobID=123: importing data failed"},
        MilvusImportNotFoundError,
        "Milvus import job 123 not found",
    ),
    (
        "non-numeric job id, Milvus 3.x",
        "master internal/datacoord/services.go GetImportProgress (merr.WrapErrParameterInvalid)",
        {
            "code": 1100,
            "message": 'parse job id failed: strconv.ParseInt: parsing "job-abc": invalid syntax: '
            "invalid parameter",
        },
        MilvusImportRequestError,
        "Milvus import job job-abc was refused: the server cannot read the job id",
    ),
    (
        "non-numeric job id, Milvus 2.6",
        "2.6 internal/datacoord/services.go GetImportProgress",
        {
            "code": 2100,
            "message": 'parse job id failed: strconv.ParseInt: parsing "job-abc": invalid syntax: '
            "importing data failed",
        },
        MilvusImportNotFoundError,
        "Milvus import job job-abc not found",
    ),
    (
        "required field missing",
        "all: internal/distributed/proxy/httpserver (gin binding of JobIDReq, the Go field name)",
        {
            "code": 1802,
            "message": "missing required parameters, error: Key: 'JobIDReq.JobID' Error:Field validation "
            "for 'JobID' failed on the 'required' tag",
        },
        MilvusImportRequestError,
        "rejected by the server",
    ),
]


@pytest.mark.parametrize(
    ("row", "source", "body", "cls", "text"), PROGRESS_ROWS, ids=[r[0] for r in PROGRESS_ROWS]
)
@pytest.mark.parametrize("mode", MODES)
def test_progress_rows(
    monkeypatch: pytest.MonkeyPatch,
    server: FakeImportServer,
    mode: str,
    row: str,
    source: str,
    body: dict[str, Any],
    cls: type[MilvusImportError],
    text: str,
) -> None:
    job_id = "job-abc" if "job-abc" in body["message"] else "123"
    server.answer_next("describe", json_response(body))
    error = catch(lambda: run(mode, hook_for(monkeypatch, server), "get_import_progress", job_id))
    assert_clean(error, cls, server.url("describe"), text, f"code {body['code']}: {body['message']}")
    assert error.job_id == job_id
    assert server.count() == 1, "answered at once, not retried"


# ---- commit and abort (Milvus master, two-phase jobs) --------------------------------------------------


# (row, source, route, body, class or None for success, text in the message)
SETTLE_ROWS = [
    (
        "commit of a missing job",
        "master internal/datacoord/services.go CommitImport",
        "commit",
        {"code": 2101, "message": "job 123 not found"},
        MilvusImportNotFoundError,
        "Milvus import job 123 not found",
    ),
    (
        "abort of a missing job",
        "master internal/datacoord/services.go AbortImport",
        "abort",
        {"code": 2101, "message": "job 123 not found"},
        MilvusImportNotFoundError,
        "Milvus import job 123 not found",
    ),
    (
        # the page records the message's end only ("...invalid parameter[...]"); that part is sent as is
        "commit with a non-numeric id",
        "master internal/datacoord/services.go CommitImport (merr.WrapErrParameterInvalid)",
        "commit",
        {"code": 1100, "message": "invalid parameter[expected=int64 jobId][actual=job-x]"},
        MilvusImportRequestError,
        "the server cannot read the job id (self-hosted Milvus ids are numbers)",
    ),
    (
        "abort with a non-numeric id",
        "master internal/datacoord/services.go AbortImport (merr.WrapErrParameterInvalid)",
        "abort",
        {"code": 1100, "message": "invalid parameter[expected=int64 jobId][actual=job-x]"},
        MilvusImportRequestError,
        "the server cannot read the job id (self-hosted Milvus ids are numbers)",
    ),
    (
        "commit of a job already Committing or Completed",
        "master internal/datacoord/services.go CommitImport: commit is idempotent",
        "commit",
        {"code": 0, "data": {}},
        None,
        "",
    ),
    (
        "abort of a job already aborted",
        "master internal/datacoord/services.go AbortImport",
        "abort",
        {"code": 0, "data": {}},
        None,
        "",
    ),
    (
        # the page records the message's end and not the code; 2100 (the import error code) is assumed
        "abort of a Completed job",
        "master internal/datacoord/services.go AbortImport",
        "abort",
        {"code": 2100, "message": "terminal/committed state Completed, abort not allowed"},
        MilvusImportRequestError,
        "abort not allowed",
    ),
    (
        "commit of an auto-commit job",
        "master internal/datacoord/services.go CommitImport",
        "commit",
        {
            "code": 2100,
            "message": "job 123 is auto-commit, manual commit/abort not allowed: importing data failed",
        },
        MilvusImportRequestError,
        "is auto-commit",
    ),
    (
        "abort of an auto-commit job",
        "master internal/datacoord/services.go AbortImport",
        "abort",
        {
            "code": 2100,
            "message": "job 123 is auto-commit, manual commit/abort not allowed: importing data failed",
        },
        MilvusImportRequestError,
        "is auto-commit",
    ),
]


@pytest.mark.parametrize(
    ("row", "source", "route", "body", "cls", "text"), SETTLE_ROWS, ids=[r[0] for r in SETTLE_ROWS]
)
def test_commit_and_abort_rows(
    monkeypatch: pytest.MonkeyPatch,
    server: FakeImportServer,
    row: str,
    source: str,
    route: str,
    body: dict[str, Any],
    cls: type[MilvusImportError] | None,
    text: str,
) -> None:
    job_id = "job-x" if "job-x" in body.get("message", "") else "123"
    server.answer_next(route, json_response(body))
    hook = hook_for(monkeypatch, server)
    call = getattr(hook, f"{route}_import_job")
    if cls is None:
        assert call(job_id) is None
    else:
        assert_clean(catch(lambda: call(job_id)), cls, server.url(route), f"Milvus import job {job_id}", text)
    assert server.count() == 1, "answered at once, not retried"


@pytest.mark.parametrize("body", [SETTLE_ROWS[1][3], SETTLE_ROWS[8][3]], ids=["missing", "auto-commit"])
def test_async_abort_rows(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, body: dict[str, Any]
) -> None:
    server.answer_next("abort", json_response(body))
    error = catch(lambda: run("async", hook_for(monkeypatch, server), "abort_import_job", "123"))
    assert isinstance(error, MilvusImportRequestError | MilvusImportNotFoundError)
    assert server.count() == 1


# ---- back-pressure on create ----------------------------------------------------------------------------


# (row, source, code, message)
JOB_LIMIT_ROWS = [
    (
        "Milvus 2.5 / 2.6",
        "2.5 / 2.6 import_util.go ValidateMaxImportJobExceed -> merr.WrapErrImportFailed",
        2100,
        f"{JOB_LIMIT}: importing data failed",
    ),
    (
        "Milvus 3.x",
        "master import_util.go ValidateMaxImportJobExceed -> merr.WrapErrImportSysFailed",
        2101,
        f"{JOB_LIMIT}: importing data failed on server side",
    ),
]


@pytest.mark.parametrize(
    ("row", "source", "code", "message"), JOB_LIMIT_ROWS, ids=[r[0] for r in JOB_LIMIT_ROWS]
)
def test_job_limit_is_retried_for_create(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, row: str, source: str, code: int, message: str
) -> None:
    # Checked before any job is recorded: the create is retried with backoff and the third try lands.
    server.answer_next("create", answer(code, message), answer(code, message))
    job_id = hook_for(monkeypatch, server).create_import_job("docs", [["a.parquet"]])
    assert server.count("create") == 3
    assert list(server.jobs) == [job_id], "one job, created once"


@pytest.mark.parametrize(
    ("row", "source", "code", "message"), JOB_LIMIT_ROWS, ids=[r[0] for r in JOB_LIMIT_ROWS]
)
def test_job_limit_past_the_retries(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, row: str, source: str, code: int, message: str
) -> None:
    server.answer_next("create", *[answer(code, message)] * 4)
    error = catch(lambda: hook_for(monkeypatch, server).create_import_job("docs", [["a.parquet"]]))
    assert_clean(
        error,
        MilvusImportJobLimitError,
        server.url("create"),
        "Milvus import into collection 'docs' was refused: the server's limit of import jobs running or "
        "pending is reached",
        "import many files in one job",
        "dataCoord.import.maxImportJobNum",
        f"code {code}: {message}",
    )
    assert error.transient, "a later task try may create the job"
    assert server.count("create") == 4, "the default max_retries (3) after the first try"
    assert server.jobs == {}


def test_job_limit_waits_the_longest_backoff(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    server.answer_next("create", answer(2100, f"{JOB_LIMIT}: importing data failed"))
    hook = hook_for(monkeypatch, server, retry_min_wait=0.001, retry_max_wait=0.4)
    started = time.monotonic()
    hook.create_import_job("docs", [["a.parquet"]])
    assert time.monotonic() - started >= 0.2, "at least half of retry_max_wait, not retry_min_wait"


# ---- create options -------------------------------------------------------------------------------------


def test_auto_commit_not_true_or_false(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    # Milvus master rejects it while decoding (code 1801); the page records the middle of the message.
    server.answer_next(
        "create",
        answer(
            1801, 'can only accept json format request, options.auto_commit must be one of "true" or "false"'
        ),
    )
    hook = hook_for(monkeypatch, server)
    error = catch(lambda: hook.create_import_job("docs", [["a.parquet"]], options={"auto_commit": "yes"}))
    assert_clean(
        error, MilvusImportRequestError, server.url("create"), "collection 'docs'", "options.auto_commit"
    )
    assert server.seen[0].body["options"] == {"auto_commit": "yes"}
    assert server.count() == 1


def test_unparseable_timeout_option(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    # all versions: the create is refused (the page records the message's start, "parse timeout failed")
    server.answer_next(
        "create", answer(2100, 'parse timeout failed: time: invalid duration "soon": importing data failed')
    )
    hook = hook_for(monkeypatch, server)
    error = catch(lambda: hook.create_import_job("docs", [["a.parquet"]], options={"timeout": "soon"}))
    assert_clean(error, MilvusImportRequestError, server.url("create"), "parse timeout failed")
    assert server.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_job_past_its_timeout_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    job_id = server.add_job(state="Failed", progress=30, reason="import timeout", options={"timeout": "300s"})
    progress = run(mode, hook_for(monkeypatch, server), "get_import_progress", job_id)
    assert progress.state is ImportJobState.FAILED
    assert progress.reason == "import timeout"


# ---- list -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_list_without_a_collection_is_every_job(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    # 2.5 and master: every job of every database
    a = server.add_job("docs")
    b = server.add_job("other")
    jobs = run(mode, hook_for(monkeypatch, server), "list_import_jobs")
    assert [job.job_id for job in jobs] == [a, b]
    assert "collectionName" not in server.seen[0].body


# ---- per-file details -----------------------------------------------------------------------------------


def describe_with_details(details: list[dict[str, Any]]) -> Response:
    return json_response(
        envelope(
            {
                "jobId": "449839014328146739",
                "collectionName": "docs",
                "state": "Importing",
                "progress": 50,
                "details": details,
            }
        )
    )


@pytest.mark.parametrize("mode", MODES)
def test_protobuf_text_file_names_of_milvus_2_4_0(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    # Milvus 2.4.0 to about 2.4.4: the Milvus 2.4 docs' example of describe's details
    name = 'id:449839014328146740 paths:"/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet"'
    server.answer_next(
        "describe",
        describe_with_details(
            [{"fileName": name, "fileSize": 26571700, "progress": 100, "state": "Completed"}]
        ),
    )
    progress = run(mode, hook_for(monkeypatch, server), "get_import_progress", "449839014328146739")
    (detail,) = progress.details
    assert detail.files == ("/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet",)
    assert detail.file_name == "[/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet]"
    assert "paths:" not in json.dumps(progress.to_dict())


@pytest.mark.parametrize("mode", MODES)
def test_go_rendered_file_names_from_june_2024(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    server.answer_next(
        "describe", describe_with_details([{"fileName": "[a.parquet b.parquet]", "state": "Pending"}])
    )
    (detail,) = run(mode, hook_for(monkeypatch, server), "get_import_progress", "449839014328146739").details
    assert detail.files == ("a.parquet", "b.parquet")


@pytest.mark.parametrize("mode", MODES)
def test_file_state_retry(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str) -> None:
    # master pkg/proto/data_coord.proto ImportTaskStateV2: Pending, InProgress, Failed, Completed, Retry
    server.answer_next(
        "describe",
        describe_with_details(
            [
                {"fileName": "[a.parquet]", "state": "Retry", "progress": 20},
                {
                    "fileName": "[b.parquet]",
                    "state": "Throttled",
                    "progress": 10,
                },  # a word newer than this package
            ]
        ),
    )
    progress = run(mode, hook_for(monkeypatch, server), "get_import_progress", "449839014328146739")
    retry, newer = progress.details
    assert retry.state is ImportFileState.RETRY
    assert not retry.state.is_terminal
    assert newer.state is ImportFileState.UNKNOWN
    assert not newer.state.is_terminal
    assert [item["state"] for item in progress.to_dict()["details"]] == ["Retry", "Throttled"]
    assert progress.failed_files == []


def test_early_2_4_pairing(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    # Milvus 2.4.0: "code: 200" with "jobId" (jobID lived only in pre-release builds)
    server.answer_next("create", json_response({"code": 200, "data": {"jobId": "449839014328146739"}}))
    assert hook_for(monkeypatch, server).create_import_job("docs", [["a.parquet"]]) == "449839014328146739"


# ---- Zilliz Cloud ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_zilliz_import_from_a_volume(
    monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer, mode: str
) -> None:
    # Zilliz docs "Import data via volume"; pymilvus bulk_import(volume_name=, data_paths=)
    hook = hook_for(monkeypatch, zilliz)
    job_id = hook.create_import_job(
        "docs", [["json-folder/1.json"], "parquet-folder-2/"], db_name="default", volume_name="my_volume"
    )
    assert zilliz.seen[0].body == {
        "clusterId": zilliz.cluster_id,
        "collectionName": "docs",
        "dbName": "default",
        "volumeName": "my_volume",
        "dataPaths": [["json-folder/1.json"], ["parquet-folder-2/"]],
    }
    assert zilliz.jobs[job_id].volume_name == "my_volume"
    progress = run(mode, hook, "get_import_progress", job_id)
    assert progress.details[0].files == ("json-folder/1.json",)


def test_volume_arguments_are_checked_before_sending(
    monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer
) -> None:
    hook = hook_for(monkeypatch, zilliz)
    for kwargs, text in [
        ({"object_urls": [["s3://b/1.json"]]}, "not object_urls"),
        (
            {"files": [["a.json"]], "storage_credentials": {"access_key": "ak", "secret_key": "sk"}},
            "no storage_credentials",
        ),
        ({"files": [["s3://b/1.json"]]}, "is a URL"),
        ({}, "files is missing"),
    ]:
        error = catch(lambda kwargs=kwargs: hook.create_import_job("docs", volume_name="my_volume", **kwargs))
        assert type(error) is MilvusImportRequestError
        assert text in str(error)
        assert "volume 'my_volume'" in str(error)
    assert zilliz.count() == 0


@pytest.mark.parametrize("mode", MODES)
def test_zilliz_count_per_page_does_not_end_the_listing(
    monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer, mode: str
) -> None:
    # Zilliz docs: count is the "total number of records listed in this response"
    def page(first: int, size: int) -> Response:
        records = [
            {"jobId": f"job-{number:04d}", "state": "Completed"} for number in range(first, first + size)
        ]
        return json_response(envelope({"count": size, "currentPage": 1, "pageSize": 100, "records": records}))

    zilliz.answer_next("list", page(0, 100), page(100, 100), page(200, 7))
    jobs = run(mode, hook_for(monkeypatch, zilliz), "list_import_jobs")
    assert len(jobs) == 207
    assert [seen.body["currentPage"] for seen in zilliz.seen] == [1, 2, 3]


@pytest.mark.parametrize("mode", MODES)
def test_zilliz_empty_page_ends_the_listing(
    monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer, mode: str
) -> None:
    for _ in range(100):
        zilliz.add_job()
    jobs = run(mode, hook_for(monkeypatch, zilliz), "list_import_jobs")
    assert len(jobs) == 100
    assert zilliz.count("list") == 2, "a full page, then the empty one"


def test_zilliz_page_size_out_of_range(monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer) -> None:
    # Zilliz docs: pageSize 1-100, else code 96008; the hook asks for 100, so a server saying this is refused
    zilliz.answer_next("list", answer(96008, "pageSize should be between 1 and 100"))
    error = catch(lambda: hook_for(monkeypatch, zilliz).list_import_jobs())
    assert_clean(
        error, MilvusImportRequestError, zilliz.url("list"), "code 96008: pageSize should be between"
    )
    assert zilliz.seen[0].body["pageSize"] == 100
    assert zilliz.count() == 1
