"""
MilvusImportHook against a real HTTP server on 127.0.0.1 (pytest-httpserver answering like
docs/milvus-import-api.md, and raw sockets that drop or never answer): every variant and error row, retries
counted on the server, the describe -> get_progress fallback, Zilliz Cloud paging, the async twins and the
secrets.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import traceback
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from pytest_httpserver import HTTPServer

from airflow_milvus_import.exceptions import (
    MilvusImportAuthError,
    MilvusImportConnectError,
    MilvusImportConnectionError,
    MilvusImportError,
    MilvusImportNotFoundError,
    MilvusImportPermissionError,
    MilvusImportRateLimitError,
    MilvusImportRequestError,
    MilvusImportResponseError,
    MilvusImportRouteNotFoundError,
    MilvusImportServerError,
    MilvusImportServerTimeoutError,
)
from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
from airflow_milvus_import.models import ImportFileState, ImportJobState
from tests.airflow_versions import redact, secrets_masker_functions
from tests.conftest import SENTINEL_TOKEN
from tests.wire_server import (
    NOT_FOUND_TEXT,
    FakeImportServer,
    RawSocketServer,
    closed_port,
    envelope,
    json_response,
    slow,
    text_response,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

T = TypeVar("T")
CONN_ID = "milvus_test"
MODES = ["sync", "async"]


# ---- fixtures and helpers -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_route_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # The remembered progress route is process-wide; each test starts without one.
    monkeypatch.setattr(MilvusImportHook, "_progress_route_by_url", {})


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> FakeImportServer:
    return FakeImportServer(httpserver_ipv4, token=SENTINEL_TOKEN)


@pytest.fixture
def zilliz(httpserver_ipv4: HTTPServer) -> FakeImportServer:
    return FakeImportServer(httpserver_ipv4, flavour="zilliz", token=SENTINEL_TOKEN, prefix="/cloud")


@pytest.fixture
def legacy(httpserver_ipv4: HTTPServer) -> FakeImportServer:
    return FakeImportServer(httpserver_ipv4, legacy=True, token=SENTINEL_TOKEN)


def connect(
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    *,
    conn_id: str = CONN_ID,
    token: str | None = SENTINEL_TOKEN,
    **extra: Any,
) -> None:
    """Define the connection the way users do: an AIRFLOW_CONN_* variable in JSON form."""
    connection: dict[str, Any] = {"conn_type": "milvus_import", "host": host}
    if token is not None:
        connection["password"] = token
    if extra:
        connection["extra"] = extra
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


def hook_for(
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeImportServer,
    *,
    token: str | None = SENTINEL_TOKEN,
    **kwargs: Any,
) -> MilvusImportHook:
    extra: dict[str, Any] = {}
    if fake.flavour == "zilliz":
        extra["cluster_id"] = fake.cluster_id
    extra.update(kwargs.pop("extra", {}))
    connect(monkeypatch, fake.base_url, token=token, **extra)
    kwargs.setdefault("retry_min_wait", 0.01)
    kwargs.setdefault("retry_max_wait", 0.05)
    return MilvusImportHook(CONN_ID, **kwargs)


def run(mode: str, hook: MilvusImportHook, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``name`` on the sync path, or its ``a``-prefixed twin in a fresh event loop."""
    if mode == "sync":
        return getattr(hook, name)(*args, **kwargs)

    async def call() -> Any:
        try:
            return await getattr(hook, f"a{name}")(*args, **kwargs)
        finally:
            await hook.aclose()

    return asyncio.run(call())


def catch(call: Callable[[], Any]) -> MilvusImportError:
    try:
        call()
    except MilvusImportError as error:
        return error
    raise AssertionError("no MilvusImportError raised")


def assert_clean(error: MilvusImportError, cls: type[MilvusImportError], url: str, *names: str) -> None:
    """The documented class; names the endpoint and the job/collection; no secret; no chained traceback."""
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    message = str(error)
    assert f"POST {url}" in message, message
    for name in names:
        assert name in message, message
    for text in (message, repr(error), "".join(traceback.format_exception(error))):
        assert SENTINEL_TOKEN not in text
    assert error.__cause__ is None
    assert error.__context__ is None
    assert error.__suppress_context__
    formatted = "".join(traceback.format_exception(error))
    assert "During handling of the above exception" not in formatted
    assert "direct cause" not in formatted


# ---- the connection -------------------------------------------------------------------------------------


def test_settings_from_a_json_connection(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    hook = hook_for(monkeypatch, server, extra={"db_name": "analytics", "timeout": 7, "max_retries": 1})
    settings = hook.get_settings()
    assert settings.base_url == server.base_url
    assert settings.token == SENTINEL_TOKEN
    assert (settings.db_name, settings.timeout, settings.max_retries) == ("analytics", 7.0, 1)
    assert SENTINEL_TOKEN not in repr(hook)
    assert SENTINEL_TOKEN not in repr(settings)
    assert repr(hook) == f"MilvusImportHook(milvus_import_conn_id='{CONN_ID}', base_url='{server.base_url}')"


def test_settings_from_a_uri_connection(monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer) -> None:
    host = zilliz.httpserver.host
    uri = (
        f"milvus-import://:{SENTINEL_TOKEN}@{host}:{zilliz.httpserver.port}/cloud"
        f"?cluster_id={zilliz.cluster_id}&db_name=d1"
    )
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_URI", uri)
    hook = MilvusImportHook("milvus_uri")
    settings = hook.get_settings()
    assert settings.base_url == zilliz.base_url
    assert (settings.cluster_id, settings.db_name, settings.token) == (
        zilliz.cluster_id,
        "d1",
        SENTINEL_TOKEN,
    )
    assert hook.list_import_jobs() == []


def test_hook_arguments_override_the_connection(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    hook = hook_for(monkeypatch, server, extra={"timeout": 7, "max_retries": 5}, timeout=2, max_retries=0)
    assert (hook.get_settings().timeout, hook.get_settings().max_retries) == (2.0, 0)


def test_the_token_is_registered_with_the_secrets_masker(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    masker, sync_name, _ = secrets_masker_functions()
    masked: list[object] = []
    real = getattr(masker, sync_name)

    def spy(secret: object, name: str | None = None) -> None:
        masked.append(secret)
        real(secret, name)

    monkeypatch.setattr(masker, sync_name, spy)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "milvus_import",
                "host": server.base_url,
                "login": "root",
                "password": SENTINEL_TOKEN,
            }
        ),
    )
    MilvusImportHook(CONN_ID).get_settings()
    assert f"root:{SENTINEL_TOKEN}" in masked
    assert SENTINEL_TOKEN in masked

    assert redact(f"Authorization: Bearer root:{SENTINEL_TOKEN}") == "Authorization: Bearer ***"


async def test_async_settings_register_the_token(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    masker, sync_name, async_name = secrets_masker_functions()
    masked: list[object] = []
    real = getattr(masker, async_name)

    if async_name == sync_name:  # before Airflow 3.2: the coroutine registers through the sync call

        def spy(secret: object, name: str | None = None) -> Any:
            masked.append(secret)
            return real(secret, name)

    else:

        async def spy(secret: object, name: str | None = None) -> Any:  # type: ignore[misc]
            masked.append(secret)
            return await real(secret, name)

    monkeypatch.setattr(masker, async_name, spy)
    hook = hook_for(monkeypatch, server)
    settings = await hook.aget_settings()
    assert settings.token == SENTINEL_TOKEN
    assert SENTINEL_TOKEN in masked


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({"host": "ftp://127.0.0.1"}, "http:// or https://"),
        ({"host": "http://127.0.0.1:notaport"}, "not a valid URL"),
        ({"host": ""}, "Host is empty"),
        ({"host": "http://127.0.0.1:1", "extra": {"timeout": "soon"}}, "'timeout' must be a number"),
        ({"host": "http://127.0.0.1:1", "extra": {"verify": "/no/such/ca.pem"}}, "does not exist"),
        ({"host": "http://127.0.0.1:1", "extra": "not json"}, "Extra is not valid JSON"),
    ],
)
def test_malformed_connections_fail_before_any_request(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, connection: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", json.dumps({"conn_type": "milvus_import", **connection}))
    if isinstance(connection.get("extra"), str):
        from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

        try:
            BaseHook.get_connection("broken")
        except AirflowNotFoundException:
            pytest.skip("this Airflow (3.0 / 3.1) refuses a connection whose Extra is not JSON itself")
    hook = MilvusImportHook("broken")
    with pytest.raises(MilvusImportRequestError, match=message) as caught:
        hook.get_import_progress("1")
    assert "'broken'" in str(caught.value)
    ok, reason = MilvusImportHook("broken").test_connection()
    assert not ok
    assert message.replace("\\", "") in reason
    assert server.count() == 0


# ---- create ---------------------------------------------------------------------------------------------


def test_create_on_milvus(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    hook = hook_for(monkeypatch, server)
    job_id = hook.create_import_job(
        "docs",
        [["a.parquet"], ["id.npy", "vec.npy"]],
        db_name="db1",
        partition_name="p1",
        options={"timeout": "300s", "auto_commit": False, "max_rows": 10},
    )
    assert job_id in server.jobs
    assert job_id.isdigit()
    seen = server.seen[-1]
    assert seen.route == "create"
    assert seen.body == {
        "collectionName": "docs",
        "files": [["a.parquet"], ["id.npy", "vec.npy"]],
        "partitionName": "p1",
        "options": {"timeout": "300s", "auto_commit": "false", "max_rows": "10"},
        "dbName": "db1",
    }
    assert seen.headers["Authorization"] == f"Bearer {SENTINEL_TOKEN}"
    assert seen.headers["Db-Name"] == "db1"
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"].startswith("airflow-milvus-import/")
    assert seen.headers["Request-Timeout"] == "29"


def test_create_with_a_flat_file_list_and_the_connection_database(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    hook = hook_for(monkeypatch, server, extra={"db_name": "conn_db"})
    hook.create_import_job("docs", ["a.parquet", "b.parquet"])
    assert server.seen[-1].body["files"] == [["a.parquet"], ["b.parquet"]]
    assert server.seen[-1].body["dbName"] == "conn_db"
    assert server.seen[-1].headers["Db-Name"] == "conn_db"


def test_create_on_legacy_milvus_reads_jobID(
    monkeypatch: pytest.MonkeyPatch, legacy: FakeImportServer
) -> None:
    job_id = hook_for(monkeypatch, legacy).create_import_job("docs", [["a.parquet"]])
    assert job_id in legacy.jobs


def test_create_on_zilliz(monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer) -> None:
    hook = hook_for(monkeypatch, zilliz)
    job_id = hook.create_import_job(
        "docs",
        object_urls=[["s3://bucket/a.parquet"]],
        storage_credentials={"access_key": "AKIA-EXAMPLE", "secret_key": "SK-EXAMPLE-1"},
    )
    assert job_id.startswith("job-")
    assert zilliz.seen[-1].body == {
        "collectionName": "docs",
        "objectUrls": [["s3://bucket/a.parquet"]],
        "accessKey": "AKIA-EXAMPLE",
        "secretKey": "SK-EXAMPLE-1",
        "clusterId": zilliz.cluster_id,
    }


def test_create_into_a_missing_collection(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    hook = hook_for(monkeypatch, server)
    error = catch(lambda: hook.create_import_job("nope", [["a.parquet"]]))
    assert_clean(
        error,
        MilvusImportNotFoundError,
        server.url("create"),
        "collection 'nope'",
        "code 100: collection not found[database=default][collection=nope]",
    )
    assert server.count("create") == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"collection_name": "docs", "files": "a.parquet"}, "files must be a list"),
        ({"collection_name": "docs", "files": []}, "files is empty"),
        ({"collection_name": "docs", "files": [["a"]], "options": {"nested": {"a": 1}}}, "option 'nested'"),
        ({"collection_name": "", "files": [["a"]]}, "collection_name is empty"),
    ],
)
def test_bad_create_input_is_rejected_before_any_request(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, kwargs: dict[str, Any], message: str
) -> None:
    hook = hook_for(monkeypatch, server)
    with pytest.raises(MilvusImportRequestError, match=message):
        hook.create_import_job(**kwargs)
    assert server.count() == 0


@pytest.mark.parametrize("job_id", [None, "", "  "])
@pytest.mark.parametrize("mode", MODES)
def test_empty_job_ids_are_rejected_before_any_request(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str, job_id: Any
) -> None:
    hook = hook_for(monkeypatch, server)
    error = catch(lambda: run(mode, hook, "get_import_progress", job_id))
    assert type(error) is MilvusImportRequestError
    assert "job id is empty" in str(error)
    assert server.count() == 0


# ---- progress -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_progress_on_milvus(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str) -> None:
    job_id = server.add_job(
        "docs",
        [["a.parquet"], ["id.npy", "vec.npy"]],
        state="Importing",
        progress=85,
        imported_rows=1000,
        total_rows=1000,
        file_states=[("Completed", 100, ""), ("InProgress", 70, "")],
    )
    progress = run(mode, hook_for(monkeypatch, server), "get_import_progress", job_id)
    assert progress.job_id == job_id
    assert progress.collection_name == "docs"
    assert progress.state is ImportJobState.IMPORTING
    assert progress.progress == 85
    assert (progress.imported_rows, progress.total_rows, progress.file_size) == (1000, 1000, 3072)
    assert [detail.files for detail in progress.details] == [("a.parquet",), ("id.npy", "vec.npy")]
    assert [detail.state for detail in progress.details] == [
        ImportFileState.COMPLETED,
        ImportFileState.IN_PROGRESS,
    ]
    assert progress.create_time is not None
    assert progress.complete_time is None
    assert server.routes_seen() == ["describe"]
    assert server.seen[0].body == {"jobId": job_id}


@pytest.mark.parametrize("mode", MODES)
def test_job_ids_go_out_as_json_strings(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    job_id = server.add_job(state="Completed", progress=100, complete_time="2024-04-01T06:17:55Z")
    progress = run(mode, hook_for(monkeypatch, server), "get_import_progress", int(job_id))
    assert progress.state is ImportJobState.COMPLETED
    assert progress.complete_time is not None
    assert json.loads(server.seen[0].raw) == {"jobId": job_id}


@pytest.mark.parametrize("mode", MODES)
def test_failed_job_reasons(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str) -> None:
    job_id = server.add_job(
        files=[["a.parquet"], ["b.parquet"]],
        state="Failed",
        progress=40,
        reason="file a.parquet: field 'vec' dim 64 != 128",
        file_states=[("Failed", 10, "dim 64 != 128"), ("Completed", 100, "")],
    )
    progress = run(mode, hook_for(monkeypatch, server), "get_import_progress", job_id)
    assert progress.state is ImportJobState.FAILED
    assert "dim 64" in progress.reason
    assert [(detail.file_name, detail.reason) for detail in progress.failed_files] == [
        ("[a.parquet]", "dim 64 != 128")
    ]


@pytest.mark.parametrize(
    "state", ["Pending", "Importing", "Uncommitted", "Committing", "Completed", "Failed", "None"]
)
def test_every_job_state(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, state: str) -> None:
    job_id = server.add_job(state=state)
    progress = hook_for(monkeypatch, server).get_import_progress(job_id)
    assert progress.state is ImportJobState.from_wire(state)
    assert progress.state.is_terminal is (state in ("Completed", "Failed"))


@pytest.mark.parametrize("mode", MODES)
def test_legacy_milvus_falls_back_to_get_progress_and_remembers(
    monkeypatch: pytest.MonkeyPatch, legacy: FakeImportServer, mode: str
) -> None:
    first = legacy.add_job(state="Importing", progress=30)
    second = legacy.add_job(state="Completed", progress=100)
    hook = hook_for(monkeypatch, legacy)
    assert run(mode, hook, "get_import_progress", first).progress == 30
    assert legacy.routes_seen() == ["describe", "get_progress"]
    assert run(mode, hook, "get_import_progress", second).state is ImportJobState.COMPLETED
    assert legacy.routes_seen() == ["describe", "get_progress", "get_progress"]
    # Another hook of the process, same endpoint: straight to get_progress.
    other = MilvusImportHook(CONN_ID)
    assert run(mode, other, "get_import_progress", first).job_id == first
    assert legacy.routes_seen()[-1] == "get_progress"
    assert legacy.count("describe") == 1


@pytest.mark.parametrize("mode", MODES)
def test_zilliz_describe_then_getProgress(
    monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer, mode: str
) -> None:
    job_id = zilliz.add_job(state="Importing", progress=50, total_rows=10)
    hook = hook_for(monkeypatch, zilliz)
    progress = run(mode, hook, "get_import_progress", job_id)
    assert progress.job_id == job_id
    assert progress.state is ImportJobState.IMPORTING
    assert zilliz.routes_seen() == ["describe"]
    assert zilliz.seen[0].body == {"jobId": job_id, "clusterId": zilliz.cluster_id}
    # A control plane without describe: getProgress answers, and is remembered.
    zilliz.answer_next("describe", text_response(NOT_FOUND_TEXT, 404))
    fresh = hook_for(monkeypatch, zilliz)
    monkeypatch.setattr(MilvusImportHook, "_progress_route_by_url", {})
    assert run(mode, fresh, "get_import_progress", job_id).job_id == job_id
    assert run(mode, fresh, "get_import_progress", job_id).job_id == job_id
    assert zilliz.routes_seen() == ["describe", "describe", "getProgress", "getProgress"]


@pytest.mark.parametrize("mode", MODES)
def test_no_progress_route_at_all(
    monkeypatch: pytest.MonkeyPatch, httpserver_ipv4: HTTPServer, mode: str
) -> None:
    # A Host that is not the Milvus REST endpoint: everything is a plain-text 404.
    fake = FakeImportServer(httpserver_ipv4, token=SENTINEL_TOKEN)
    fake.answer_next("*", *[text_response(NOT_FOUND_TEXT, 404)] * 2)
    error = catch(lambda: run(mode, hook_for(monkeypatch, fake), "get_import_progress", "42"))
    assert_clean(
        error,
        MilvusImportRouteNotFoundError,
        fake.url("get_progress"),
        "Milvus import job 42",
        "no such route",
        "HTTP 404: 404 page not found",
    )
    assert fake.routes_seen() == ["describe", "get_progress"]


def test_a_remembered_route_that_disappears_falls_back_again(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    job_id = server.add_job()
    hook = hook_for(monkeypatch, server)
    server.answer_next("describe", text_response(NOT_FOUND_TEXT, 404))
    hook.get_import_progress(job_id)
    server.answer_next("get_progress", text_response(NOT_FOUND_TEXT, 404))
    hook.get_import_progress(job_id)
    assert server.routes_seen() == ["describe", "get_progress", "get_progress", "describe"]


# ---- list -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_list_on_milvus(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str) -> None:
    server.collections.add("other")
    a = server.add_job("docs", state="Completed", progress=100)
    b = server.add_job("other", state="Failed", progress=20, reason="bad file")
    hook = hook_for(monkeypatch, server)
    jobs = run(mode, hook, "list_import_jobs")
    assert [(job.job_id, job.collection_name, job.state, job.progress) for job in jobs] == [
        (a, "docs", ImportJobState.COMPLETED, 100),
        (b, "other", ImportJobState.FAILED, 20),
    ]
    assert jobs[1].reason == "bad file"
    only = run(mode, hook_for(monkeypatch, server), "list_import_jobs", "other", db_name="db2")
    assert [job.job_id for job in only] == [b]
    assert server.seen[-1].body == {"collectionName": "other", "dbName": "db2"}


@pytest.mark.parametrize("mode", MODES)
def test_zilliz_list_fetches_every_page(
    monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer, mode: str
) -> None:
    ids = [zilliz.add_job(state="Completed") for _ in range(250)]
    jobs = run(mode, hook_for(monkeypatch, zilliz), "list_import_jobs")
    assert [job.job_id for job in jobs] == ids
    assert all(job.progress is None for job in jobs)  # Zilliz records may lack progress
    assert [(seen.body["currentPage"], seen.body["pageSize"]) for seen in zilliz.seen] == [
        (1, 100),
        (2, 100),
        (3, 100),
    ]
    assert all(seen.body["clusterId"] == zilliz.cluster_id for seen in zilliz.seen)


def test_zilliz_list_exact_multiple_of_the_page_size(
    monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer
) -> None:
    for _ in range(200):
        zilliz.add_job()
    assert len(hook_for(monkeypatch, zilliz).list_import_jobs()) == 200
    # two full pages, then the empty third: count alone never ends a listing (it may be per page)
    assert zilliz.count("list") == 3


def test_zilliz_list_with_a_smaller_server_page(
    monkeypatch: pytest.MonkeyPatch, httpserver_ipv4: HTTPServer
) -> None:
    fake = FakeImportServer(httpserver_ipv4, flavour="zilliz", max_page_size=30)
    for _ in range(70):
        fake.add_job()
    assert len(hook_for(monkeypatch, fake, token=None).list_import_jobs()) == 70
    assert fake.count("list") == 3


@pytest.mark.parametrize("mode", MODES)
def test_zilliz_list_stops_when_the_server_ignores_paging(
    monkeypatch: pytest.MonkeyPatch, httpserver_ipv4: HTTPServer, mode: str
) -> None:
    fake = FakeImportServer(httpserver_ipv4, flavour="zilliz", ignore_paging=True, token=SENTINEL_TOKEN)
    ids = [fake.add_job() for _ in range(150)]
    jobs = run(mode, hook_for(monkeypatch, fake), "list_import_jobs")
    assert [job.job_id for job in jobs] == ids[:100]
    assert fake.count("list") == 2


# ---- commit / abort -------------------------------------------------------------------------------------


def test_commit_and_abort(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    hook = hook_for(monkeypatch, server)
    first = server.add_job(state="Uncommitted", progress=99)
    second = server.add_job(state="Uncommitted", progress=99)
    assert hook.commit_import_job(first) is None
    assert hook.abort_import_job(second, db_name="d") is None
    assert server.jobs[first].state == "Committing"
    assert server.jobs[second].state == "Failed"
    assert [seen.body for seen in server.seen] == [{"jobId": first}, {"jobId": second, "dbName": "d"}]


def test_commit_of_a_job_that_is_not_uncommitted(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    job_id = server.add_job(state="Completed")
    error = catch(lambda: hook_for(monkeypatch, server).commit_import_job(job_id))
    assert_clean(
        error,
        MilvusImportRequestError,
        server.url("commit"),
        f"Milvus import job {job_id}",
        "code 2100",
        "is not uncommitted",
    )


def test_commit_on_a_server_without_two_phase_import(
    monkeypatch: pytest.MonkeyPatch, legacy: FakeImportServer
) -> None:
    job_id = legacy.add_job()
    error = catch(lambda: hook_for(monkeypatch, legacy).abort_import_job(job_id))
    assert_clean(
        error,
        MilvusImportRouteNotFoundError,
        legacy.url("abort"),
        f"Milvus import job {job_id}",
        "no such route",
    )
    assert legacy.count() == 1


# ---- every error row of docs/milvus-import-api.md, through the hook ------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_unknown_job(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str) -> None:
    error = catch(lambda: run(mode, hook_for(monkeypatch, server), "get_import_progress", "123"))
    assert_clean(
        error,
        MilvusImportNotFoundError,
        server.url("describe"),
        "Milvus import job 123 not found",
        "code 2100: import job does not exist, jobID=123: importing data failed",
    )
    assert server.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_non_numeric_job_id_on_self_hosted(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    error = catch(lambda: run(mode, hook_for(monkeypatch, server), "get_import_progress", "job-abc"))
    assert_clean(
        error, MilvusImportNotFoundError, server.url("describe"), "job job-abc", "parse job id failed"
    )
    assert server.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_unknown_job_on_zilliz(monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer, mode: str) -> None:
    error = catch(lambda: run(mode, hook_for(monkeypatch, zilliz), "get_import_progress", "job-missing"))
    assert_clean(
        error, MilvusImportNotFoundError, zilliz.url("describe"), "job job-missing", "does not exist"
    )


# (route the hook calls, canned answer, class, text in the message) for rows the hook cannot provoke itself
CANNED_ROWS = [
    (
        "body not JSON / wrong type",
        json_response(envelope(code=1801, message="can only accept json format request, error: invalid")),
        MilvusImportRequestError,
        "code 1801: can only accept json format request",
    ),
    (
        "required field missing",
        json_response(envelope(code=1802, message="missing required parameters, error: jobId")),
        MilvusImportRequestError,
        "code 1802: missing required parameters",
    ),
    (
        "no Import privilege",
        json_response(envelope(code=1401, message="PrivilegeImport: permission deny to reader"), status=403),
        MilvusImportPermissionError,
        "HTTP 403, code 1401: PrivilegeImport: permission deny",
    ),
    ("403 without JSON", text_response("Forbidden", 403), MilvusImportPermissionError, "HTTP 403: Forbidden"),
    (
        "HTML page with 200",
        text_response("<!DOCTYPE html><html><head><title>Sign in</title></head></html>", 200, "text/html"),
        MilvusImportResponseError,
        "an HTML page: Sign in",
    ),
    (
        "invalid JSON",
        text_response('{"code": 0, "data": {', 200, "application/json"),
        MilvusImportResponseError,
        "not JSON",
    ),
    (
        "JSON without code",
        json_response({"data": {"jobId": "1"}}),
        MilvusImportResponseError,
        "has no 'code'",
    ),
    ("400 plain text", text_response("bad request", 400), MilvusImportRequestError, "HTTP 400: bad request"),
]


@pytest.mark.parametrize(("row", "answer", "cls", "text"), CANNED_ROWS, ids=[row[0] for row in CANNED_ROWS])
@pytest.mark.parametrize("mode", MODES)
def test_error_rows_on_progress(
    monkeypatch: pytest.MonkeyPatch,
    server: FakeImportServer,
    mode: str,
    row: str,
    answer: Any,
    cls: type[MilvusImportError],
    text: str,
) -> None:
    job_id = server.add_job()
    server.answer_next("describe", answer)
    error = catch(lambda: run(mode, hook_for(monkeypatch, server), "get_import_progress", job_id))
    assert_clean(error, cls, server.url("describe"), f"Milvus import job {job_id}", text)
    assert server.count() == 1, "not retried"


def test_empty_files_row(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    # The hook refuses empty files itself; a server that still finds the request empty answers 1100.
    server.answer_next(
        "create", json_response(envelope(code=1100, message="import request is empty: invalid parameter"))
    )
    error = catch(lambda: hook_for(monkeypatch, server).create_import_job("docs", [["a.parquet"]]))
    assert_clean(
        error,
        MilvusImportRequestError,
        server.url("create"),
        "collection 'docs'",
        "code 1100: import request is empty",
    )
    assert server.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_missing_or_wrong_token(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str) -> None:
    job_id = server.add_job()
    for token in (None, "wrong-token"):
        error = catch(
            lambda token=token: run(  # type: ignore[misc]
                mode, hook_for(monkeypatch, server, token=token), "get_import_progress", job_id
            )
        )
        assert_clean(
            error,
            MilvusImportAuthError,
            server.url("describe"),
            f"Milvus import job {job_id}",
            "HTTP 401, code 1800: user hasn't authenticated",
            "credentials were not accepted",
        )
        assert "wrong-token" not in str(error)
    assert server.count() == 2, "auth errors are not retried"


@pytest.mark.parametrize("mode", MODES)
def test_zilliz_illegal_api_key(monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer, mode: str) -> None:
    error = catch(lambda: run(mode, hook_for(monkeypatch, zilliz, token="not-the-key"), "list_import_jobs"))
    assert_clean(
        error,
        MilvusImportAuthError,
        zilliz.url("list"),
        "Milvus import jobs",
        "code 21119: The apikey is illegal.",
    )
    assert zilliz.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_server_side_timeout_is_retried_then_reported(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    job_id = server.add_job()
    server.answer_next("describe", *[json_response(envelope(code=10001, message="request timeout"), 408)] * 3)
    error = catch(
        lambda: run(mode, hook_for(monkeypatch, server, max_retries=2), "get_import_progress", job_id)
    )
    assert_clean(
        error,
        MilvusImportServerTimeoutError,
        server.url("describe"),
        f"job {job_id}",
        "HTTP 408, code 10001: request timeout",
    )
    assert error.transient
    assert server.count() == 3


@pytest.mark.parametrize("mode", MODES)
def test_rate_limited_past_the_retries(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    server.answer_next("list", *[text_response("Too Many Requests", 429, headers={"Retry-After": "0"})] * 2)
    error = catch(lambda: run(mode, hook_for(monkeypatch, server, max_retries=1), "list_import_jobs"))
    assert_clean(error, MilvusImportRateLimitError, server.url("list"), "Milvus import jobs", "rate limited")
    assert isinstance(error, MilvusImportRateLimitError)
    assert error.retry_after == 0.0
    assert server.count() == 2


@pytest.mark.parametrize("mode", MODES)
def test_html_502_past_the_retries(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    server.answer_next("describe", *[text_response(page, 502, "text/html")] * 4)
    error = catch(lambda: run(mode, hook_for(monkeypatch, server), "get_import_progress", "7"))
    assert_clean(error, MilvusImportServerError, server.url("describe"), "job 7", "HTTP 502: 502 Bad Gateway")
    assert server.count() == 4, "default max_retries=3: 4 attempts"


@pytest.mark.parametrize("mode", MODES)
def test_a_10_mb_answer_is_refused(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    huge = json.dumps(envelope({"records": [{"jobId": "1", "padding": "x" * (10 * 1024 * 1024)}]}))
    server.answer_next("list", json_response(json.loads(huge)))
    error = catch(lambda: run(mode, hook_for(monkeypatch, server), "list_import_jobs"))
    assert_clean(
        error,
        MilvusImportResponseError,
        server.url("list"),
        "Milvus import jobs",
        "too large",
        f"more than {8 * 1024 * 1024} bytes",
    )


# ---- transport failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_connection_refused(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    with closed_port() as port:
        connect(monkeypatch, f"http://127.0.0.1:{port}")
        hook = MilvusImportHook(CONN_ID, max_retries=1, retry_min_wait=0.01)
        started = time.monotonic()
        error = catch(lambda: run(mode, hook, "get_import_progress", "5"))
    assert_clean(
        error,
        MilvusImportConnectError,
        f"http://127.0.0.1:{port}/v2/vectordb/jobs/import/describe",
        "job 5",
        "connection refused",
    )
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("mode", MODES)
def test_unresolvable_host(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    connect(monkeypatch, "http://no-such-host.invalid:19530")
    hook = MilvusImportHook(CONN_ID, max_retries=0)
    error = catch(lambda: run(mode, hook, "list_import_jobs"))
    assert_clean(
        error,
        MilvusImportConnectError,
        "http://no-such-host.invalid:19530/v2/vectordb/jobs/import/list",
        "Milvus import jobs",
        "could not",
    )


@pytest.mark.parametrize("mode", MODES)
def test_dropped_connections_are_retried_for_progress(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    with RawSocketServer("drop") as raw:
        connect(monkeypatch, raw.url)
        hook = MilvusImportHook(CONN_ID, max_retries=2, retry_min_wait=0.01, retry_max_wait=0.02)
        error = catch(lambda: run(mode, hook, "get_import_progress", "9"))
        assert_clean(
            error,
            MilvusImportConnectionError,
            f"{raw.url}/v2/vectordb/jobs/import/describe",
            "job 9",
            "closed the connection without answering",
        )
        assert raw.connections == 3


def test_a_create_that_may_have_reached_the_server_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    # Retrying here could start the same import twice.
    with RawSocketServer("drop") as raw:
        connect(monkeypatch, raw.url)
        hook = MilvusImportHook(CONN_ID, max_retries=3, retry_min_wait=0.01)
        error = catch(lambda: hook.create_import_job("docs", [["a.parquet"]]))
        assert_clean(
            error,
            MilvusImportConnectionError,
            f"{raw.url}/v2/vectordb/jobs/import/create",
            "collection 'docs'",
        )
        assert raw.connections == 1


@pytest.mark.parametrize("mode", MODES)
def test_no_answer_within_the_timeout(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    with RawSocketServer("silent") as raw:
        connect(monkeypatch, raw.url, timeout=0.3)
        hook = MilvusImportHook(CONN_ID, max_retries=0)
        started = time.monotonic()
        error = catch(lambda: run(mode, hook, "get_import_progress", "9"))
        elapsed = time.monotonic() - started
    assert_clean(
        error,
        MilvusImportConnectionError,
        f"{raw.url}/v2/vectordb/jobs/import/describe",
        "job 9",
        "no answer within 0.3 s",
    )
    assert elapsed < 5


def test_the_default_timeout_is_30_seconds(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    hook = hook_for(monkeypatch, server)
    assert hook.get_settings().timeout == 30.0
    hook.list_import_jobs()
    assert server.seen[-1].headers["Request-Timeout"] == "29"


# ---- retries --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_5xx_twice_then_success_is_three_requests(
    monkeypatch: pytest.MonkeyPatch,
    server: FakeImportServer,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_id = server.add_job(state="Completed")
    server.answer_next(
        "describe", text_response("unavailable", 503), json_response(envelope(code=65535), 500)
    )
    progress = run(mode, hook_for(monkeypatch, server), "get_import_progress", job_id)
    assert progress.state is ImportJobState.COMPLETED
    assert server.count("describe") == 3
    # Airflow's hook loggers write through structlog (to the captured output), not always to caplog.
    logged = caplog.text + "".join(capfd.readouterr())
    assert "retry 1 of 3" in logged
    assert "retry 2 of 3" in logged
    assert "HTTP 503: unavailable" in logged
    assert SENTINEL_TOKEN not in logged


@pytest.mark.parametrize("mode", MODES)
def test_code_errors_are_not_retried(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    server.answer_next("list", json_response(envelope(code=1802, message="missing required parameters")))
    catch(lambda: run(mode, hook_for(monkeypatch, server), "list_import_jobs"))
    assert server.count() == 1


def test_service_not_ready_code_is_retried(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    server.answer_next("list", json_response(envelope(code=1, message="service not ready")))
    assert hook_for(monkeypatch, server).list_import_jobs() == []
    assert server.count() == 2


@pytest.mark.parametrize("mode", MODES)
def test_429_honours_retry_after(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, mode: str
) -> None:
    server.answer_next("list", text_response("slow down", 429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    assert run(mode, hook_for(monkeypatch, server, retry_max_wait=0.01), "list_import_jobs") == []
    assert time.monotonic() - started >= 0.95, "waited as long as Retry-After asked"
    assert server.count() == 2


def test_retry_after_is_capped(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    server.answer_next("list", text_response("slow down", 429, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    assert hook_for(monkeypatch, server, retry_after_cap=0.1).list_import_jobs() == []
    assert time.monotonic() - started < 30
    assert server.count() == 2


def test_max_retries_zero_is_one_attempt(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    server.answer_next("list", text_response("down", 503), text_response("down", 503))
    error = catch(lambda: hook_for(monkeypatch, server, max_retries=0).list_import_jobs())
    assert type(error) is MilvusImportServerError
    assert server.count() == 1


def test_max_retries_from_the_connection(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    server.answer_next("list", *[text_response("down", 503)] * 5)
    catch(lambda: hook_for(monkeypatch, server, extra={"max_retries": 1}).list_import_jobs())
    assert server.count() == 2


def test_create_is_not_retried_after_a_502(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    server.answer_next("create", text_response("bad gateway", 502))
    error = catch(lambda: hook_for(monkeypatch, server).create_import_job("docs", [["a.parquet"]]))
    assert_clean(error, MilvusImportServerError, server.url("create"), "collection 'docs'", "HTTP 502")
    assert server.count() == 1
    assert server.jobs == {}


def test_create_is_retried_after_503_and_429(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    server.answer_next(
        "create",
        text_response("unavailable", 503),
        text_response("slow down", 429, headers={"Retry-After": "0"}),
    )
    job_id = hook_for(monkeypatch, server).create_import_job("docs", [["a.parquet"]])
    assert server.count("create") == 3
    assert list(server.jobs) == [job_id]


def test_a_slow_answer_within_the_timeout_is_fine(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    server.answer_next("list", slow(0.3, json_response(envelope({"records": []}))))
    assert hook_for(monkeypatch, server, extra={"timeout": 5}).list_import_jobs() == []


# ---- test_connection ------------------------------------------------------------------------------------


def test_test_connection_on_milvus(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    server.add_job()
    server.add_job()
    assert hook_for(monkeypatch, server).test_connection() == (
        True,
        f"Connected to {server.base_url} (Milvus); 2 import jobs visible",
    )


def test_test_connection_on_zilliz_counts_every_job(
    monkeypatch: pytest.MonkeyPatch, zilliz: FakeImportServer
) -> None:
    for _ in range(130):
        zilliz.add_job()
    assert hook_for(monkeypatch, zilliz).test_connection() == (
        True,
        f"Connected to {zilliz.base_url} (Zilliz Cloud); 130 import jobs visible",
    )
    assert zilliz.count() == 1, "one cheap call"


def test_test_connection_failures_never_raise(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    ok, reason = hook_for(monkeypatch, server, token="wrong").test_connection()
    assert not ok
    assert "credentials were not accepted" in reason
    assert server.url("list") in reason
    server.answer_next("list", text_response("down", 503), json_response(envelope({"records": []})))
    ok, reason = hook_for(monkeypatch, server).test_connection()
    assert not ok
    assert "HTTP 503" in reason, "no retries behind the Test button"
    ok, reason = MilvusImportHook("no_such_connection").test_connection()
    assert not ok
    assert "no_such_connection" in reason
    with closed_port() as port:
        connect(monkeypatch, f"http://127.0.0.1:{port}")
        ok, reason = MilvusImportHook(CONN_ID).test_connection()
    assert not ok
    assert "connection refused" in reason
    assert SENTINEL_TOKEN not in reason


# ---- TLS ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HTTPServer, Path]]:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    ca_path = tmp_path_factory.mktemp("tls") / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_path))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server, ca_path
    server.clear()
    server.stop()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("mode", MODES)
def test_tls_verification(
    monkeypatch: pytest.MonkeyPatch, tls_server: tuple[HTTPServer, Path], mode: str
) -> None:
    server, ca_path = tls_server
    server.clear()
    server.expect_request("/v2/vectordb/jobs/import/list").respond_with_json(envelope({"records": []}))
    url = f"https://127.0.0.1:{server.port}"
    connect(monkeypatch, url)
    error = catch(lambda: run(mode, MilvusImportHook(CONN_ID, max_retries=0), "list_import_jobs"))
    assert_clean(
        error,
        MilvusImportConnectError,
        f"{url}/v2/vectordb/jobs/import/list",
        "TLS certificate verification failed",
    )
    connect(monkeypatch, url, verify=str(ca_path))
    assert run(mode, MilvusImportHook(CONN_ID), "list_import_jobs") == []
    connect(monkeypatch, url, verify=False)
    assert run(mode, MilvusImportHook(CONN_ID), "list_import_jobs") == []


# ---- clients: one per hook, reused; closed on request ---------------------------------------------------


def test_one_session_is_reused(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    hook = hook_for(monkeypatch, server)
    hook.list_import_jobs()
    session = hook.get_conn()
    hook.list_import_jobs()
    assert hook.get_conn() is session
    hook.close()
    assert hook.get_conn() is not session
    with hook_for(monkeypatch, server) as managed:
        managed.list_import_jobs()
    assert managed._session is None


async def test_one_async_client_is_reused_and_closed(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    job_id = server.add_job()
    hook = hook_for(monkeypatch, server)
    assert hook._async_client is None, "created lazily"
    await hook.aget_import_progress(job_id)
    client = hook._async_client
    await hook.alist_import_jobs()
    await hook.aget_import_progress(job_id)
    assert hook._async_client is client
    assert client is not None
    await hook.aclose()
    assert client.is_closed
    assert hook._async_client is None
    await hook.aget_import_progress(job_id)
    assert hook._async_client is not None
    assert hook._async_client is not client
    await hook.aclose()
    async with hook_for(monkeypatch, server) as managed:
        await managed.alist_import_jobs()
    assert managed._async_client is None


def test_async_calls_from_two_event_loops(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    job_id = server.add_job()
    hook = hook_for(monkeypatch, server)
    # A hook used from a second loop (e.g. a sensor run twice) gets a client bound to that loop.
    assert asyncio.run(hook.aget_import_progress(job_id)).job_id == job_id
    assert asyncio.run(hook.aget_import_progress(job_id)).job_id == job_id


async def test_concurrent_async_polls_share_the_client(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    ids = [server.add_job(state="Completed") for _ in range(20)]
    hook = hook_for(monkeypatch, server)
    try:
        results = await asyncio.gather(*(hook.aget_import_progress(job_id) for job_id in ids))
    finally:
        await hook.aclose()
    assert [result.job_id for result in results] == ids


# ---- host with a path prefix, no auth -------------------------------------------------------------------


def test_host_with_a_path_prefix_and_no_token(
    monkeypatch: pytest.MonkeyPatch, httpserver_ipv4: HTTPServer
) -> None:
    fake = FakeImportServer(httpserver_ipv4, prefix="/milvus")
    job_id = fake.add_job()
    hook = hook_for(monkeypatch, fake, token=None)
    assert hook.get_import_progress(job_id).job_id == job_id
    assert fake.seen[0].path == "/milvus/v2/vectordb/jobs/import/describe"
    assert "Authorization" not in fake.seen[0].headers


# ---- issue 6: async abort, the environment read once, no ~/.netrc over the token -----------------------


async def test_async_abort(monkeypatch: pytest.MonkeyPatch, server: FakeImportServer) -> None:
    hook = hook_for(monkeypatch, server)
    job_id = server.add_job(state="Uncommitted", progress=99)
    try:
        assert await hook.aabort_import_job(job_id, db_name="d") is None
        assert server.jobs[job_id].state == "Failed"
        assert [seen.body for seen in server.seen] == [{"jobId": job_id, "dbName": "d"}]
        done = server.add_job(state="Completed")
        with pytest.raises(MilvusImportRequestError) as caught:
            await hook.aabort_import_job(done)
        assert_clean(caught.value, MilvusImportRequestError, server.url("abort"), f"Milvus import job {done}")
    finally:
        await hook.aclose()


def test_a_netrc_entry_never_replaces_the_bearer_token(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer, tmp_path: Path
) -> None:
    # requests applies ~/.netrc credentials to a session that trusts the environment; ours must not.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-token\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    hook = hook_for(monkeypatch, server)
    assert hook.list_import_jobs() == []
    assert server.seen[-1].headers["Authorization"] == f"Bearer {SENTINEL_TOKEN}"


def test_proxy_environment_is_honoured_and_read_once(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: a proxy would fail
    hook = hook_for(monkeypatch, server, max_retries=0)
    assert hook.list_import_jobs() == []  # NO_PROXY exempts the endpoint, as requests would
    monkeypatch.delenv("NO_PROXY")
    other = hook_for(monkeypatch, server, max_retries=0)
    error = catch(other.list_import_jobs)  # without the exemption, the proxy is used (and unreachable)
    assert isinstance(error, MilvusImportConnectionError)
    assert hook.list_import_jobs() == []  # the first hook read its environment once


async def test_plain_http_async_client_loads_no_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, server: FakeImportServer
) -> None:
    # A CA bundle that does not exist would fail any TLS set-up: plain HTTP must not build one.
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    hook = hook_for(monkeypatch, server)
    try:
        assert await hook.alist_import_jobs() == []
    finally:
        await hook.aclose()
