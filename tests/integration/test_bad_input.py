"""
Bad input, one table: what each mistake gives a user (the exception class, a message that names the endpoint
and the job or collection) and what it never gives (the token, a KeyError, a chain of wrapped tracebacks,
a hang).

The rows are the README's troubleshooting table (``docs/troubleshooting.md``). Rows that need an exact
answer from a server run against pytest-httpserver on 127.0.0.1 (``tests.wire_server.FakeImportServer``);
rows about real behaviour run against the project's local import server, started with ``SENTINEL_TOKEN`` as
its required token. Every connection carries ``SENTINEL_TOKEN`` as its password, so every message is also a
secrets check. ``tests/unit/hooks/test_milvus_import.py`` goes deeper on several rows (retries, fallbacks);
here each row is the user-facing contract, checked end to end: through the hook (sync and async) and,
where a waiter is involved, through the real trigger loop and the sensor.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

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
from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
from airflow_milvus_import.models import ImportJobState
from airflow_milvus_import.operators.milvus_import import MilvusBulkImportOperator
from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor
from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger
from tests.conftest import SENTINEL_TOKEN, prepare_rows
from tests.wire_server import FakeImportServer, closed_port, envelope, json_response, text_response

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from pytest_httpserver import HTTPServer

CONN_ID = "ami_bad_input"
LOCAL_CONN_ID = "ami_bad_input_local"
COLLECTION = "bad_input_docs"
ROWS_FILE = "bad_input_rows.json"
ROUTES = "/v2/vectordb/jobs/import/"
NOT_SENT = "nothing was sent"  # marker: the row is refused before any request


# ---- the checks every row gets --------------------------------------------------------------------------


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SENTINEL_TOKEN not in text, text[:300]


def assert_unchained(error: BaseException) -> None:
    """One clear error: no ``__cause__``, no visible ``__context__``, and none in the rendered traceback."""
    assert error.__cause__ is None, repr(error.__cause__)
    assert error.__suppress_context__ or error.__context__ is None, repr(error.__context__)
    rendered = "".join(traceback.format_exception(error))
    assert "During handling of the above exception" not in rendered, rendered
    assert "The above exception was the direct cause" not in rendered, rendered
    assert_no_secret(rendered)


def assert_clean(error: BaseException, cls: type[BaseException], *fragments: str) -> str:
    """The documented class exactly; every fragment in the message; no secret; no chain. Returns the text."""
    assert type(error) is cls, f"{type(error).__name__} (wanted {cls.__name__}): {error}"
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert_no_secret(message, repr(error))
    assert_unchained(error)
    assert "KeyError" not in message
    return message


def catch(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except Exception as error:  # the row decides which class is right
        return error
    raise AssertionError("no exception raised")


# ---- servers and connections ----------------------------------------------------------------------------


def connection(
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str,
    host: str,
    *,
    password: str | None = SENTINEL_TOKEN,
    **extra: Any,
) -> None:
    """An Airflow connection the way users define one: ``AIRFLOW_CONN_*`` in JSON form."""
    value: dict[str, Any] = {"conn_type": "milvus_import", "host": host}
    if password is not None:
        value["password"] = password
    if extra:
        value["extra"] = extra
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


@dataclass
class Env:
    """What a row can use: a scripted server, the real local server, and the connections to both."""

    monkeypatch: pytest.MonkeyPatch
    fake: FakeImportServer
    local: Any
    extras: dict[str, Any] = field(default_factory=dict)

    def hook(self, conn_id: str = CONN_ID, **kwargs: Any) -> MilvusImportHook:
        kwargs.setdefault("retry_min_wait", 0.01)
        kwargs.setdefault("retry_max_wait", 0.05)
        return MilvusImportHook(conn_id, **kwargs)

    def local_hook(self, **kwargs: Any) -> MilvusImportHook:
        return self.hook(LOCAL_CONN_ID, **kwargs)

    def fake_url(self, route: str) -> str:
        return f"POST {self.fake.url(route)}"

    def local_url(self, route: str) -> str:
        return f"POST {self.local.url}{ROUTES}{route}"


def call(mode: str, hook: MilvusImportHook, name: str, *args: Any, **kwargs: Any) -> Any:
    """``name`` on the sync path, or its ``a``-prefixed twin in a fresh event loop."""
    if mode == "sync":
        return getattr(hook, name)(*args, **kwargs)

    async def twin() -> Any:
        try:
            return await getattr(hook, f"a{name}")(*args, **kwargs)
        finally:
            await hook.aclose()

    return asyncio.run(twin())


@pytest.fixture(scope="module")
def prepared_local(secured_local_server: Any) -> Any:
    prepare_rows(secured_local_server, COLLECTION, ROWS_FILE)
    return secured_local_server


@pytest.fixture(autouse=True)
def _fresh_route_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # The remembered progress route is process-wide; each row starts without one.
    monkeypatch.setattr(MilvusImportHook, "_progress_route_by_url", {})


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, httpserver_ipv4: HTTPServer, prepared_local: Any) -> Env:
    fake = FakeImportServer(httpserver_ipv4, token=SENTINEL_TOKEN, collections=("docs",))
    connection(monkeypatch, CONN_ID, fake.base_url)
    connection(monkeypatch, LOCAL_CONN_ID, prepared_local.url)
    return Env(monkeypatch=monkeypatch, fake=fake, local=prepared_local)


# ---- the table ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """
    One line of the troubleshooting table.

    :param name: the input, as the table says it.
    :param provoke: makes the mistake; returns the exception it raised.
    :param cls: the documented exception class.
    :param fragments: what the message must say; a callable gets the Env (for URLs).
    :param requests: how many requests the server may see for this row (None: not counted).
    """

    name: str
    provoke: Callable[[Env], BaseException]
    cls: type[BaseException]
    fragments: Callable[[Env], tuple[str, ...]]
    requests: int | None = None


MODES = ("sync", "async")


def _hook_rows() -> list[Any]:
    rows: list[Any] = []

    def add(row: Row, *marks: Any) -> None:
        rows.append(pytest.param(row, id=row.name, marks=marks))

    def big() -> Any:
        return json_response(envelope({"jobId": "7", "padding": "x" * (10 * 1024 * 1024)}))

    html_502 = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"

    for mode in MODES:
        # -- the job id --
        add(
            Row(
                f"unknown job id (local server, {mode})",
                lambda env, mode=mode: catch(  # type: ignore[misc]
                    lambda: call(mode, env.local_hook(), "get_import_progress", "448761313698322011")
                ),
                MilvusImportNotFoundError,
                lambda env: (
                    "Milvus import job 448761313698322011 not found",
                    env.local_url("describe"),
                    "code 2100: import job does not exist, jobID=448761313698322011",
                ),
            )
        )
        add(
            Row(
                f"non-numeric job id on self-hosted Milvus (local server, {mode})",
                lambda env, mode=mode: catch(  # type: ignore[misc]
                    lambda: call(mode, env.local_hook(), "get_import_progress", "job-01fa0e5d42cjxudhpuehyp")
                ),
                MilvusImportNotFoundError,
                lambda env: (
                    "Milvus import job job-01fa0e5d42cjxudhpuehyp not found",
                    env.local_url("describe"),
                    "parse job id failed",
                ),
            )
        )
        for bad_id in (None, "", "   "):
            add(
                Row(
                    f"empty or None job id {bad_id!r} ({mode})",
                    lambda env, mode=mode, bad_id=bad_id: catch(  # type: ignore[misc]
                        lambda: call(mode, env.hook(), "get_import_progress", bad_id)
                    ),
                    MilvusImportRequestError,
                    lambda env: ("Milvus import job id is empty", "pass the id that create returned"),
                    requests=0,
                )
            )
        # -- unreadable or refusing answers (scripted server) --
        for name, answer, cls, says, count in [
            (
                "HTML 502 page",
                [text_response(html_502, 502, "text/html")] * 2,
                MilvusImportServerError,
                ("HTTP 502: 502 Bad Gateway",),
                2,
            ),
            (
                "invalid JSON",
                [text_response('{"code": 0, "data": {', 200, "application/json")],
                MilvusImportResponseError,
                ("got an unreadable answer", "a body that is not JSON"),
                1,
            ),
            (
                "JSON without code",
                [json_response({"data": {"jobId": "7", "state": "Completed"}})],
                MilvusImportResponseError,
                ("got an unreadable answer", "JSON that has no 'code'"),
                1,
            ),
            (
                "401 (token refused)",
                [json_response(envelope(code=1800, message="user hasn't authenticated"), status=401)],
                MilvusImportAuthError,
                ("credentials were not accepted", "HTTP 401, code 1800: user hasn't authenticated"),
                1,
            ),
            (
                "403 (no Import privilege)",
                [
                    json_response(
                        envelope(code=1401, message="PrivilegeImport: permission deny to reader"), status=403
                    )
                ],
                MilvusImportPermissionError,
                ("permission denied", "HTTP 403, code 1401: PrivilegeImport"),
                1,
            ),
            (
                "403 without a JSON body",
                [text_response("Forbidden", 403)],
                MilvusImportPermissionError,
                ("permission denied", "HTTP 403: Forbidden"),
                1,
            ),
            (
                "408 (server-side request timeout)",
                [json_response(envelope(code=10001, message="request timeout"), status=408)] * 2,
                MilvusImportServerTimeoutError,
                ("timed out on the server", "HTTP 408, code 10001: request timeout"),
                2,
            ),
            (
                "429 (rate limited)",
                [text_response("Too Many Requests", 429, headers={"Retry-After": "0"})] * 2,
                MilvusImportRateLimitError,
                ("rate limited (the server asks to retry after 0 s)", "HTTP 429: Too Many Requests"),
                2,
            ),
            (
                "10 MB response",
                [big],
                MilvusImportResponseError,
                ("got an answer too large to read", f"more than {8 * 1024 * 1024} bytes"),
                1,
            ),
        ]:
            add(
                Row(
                    f"{name} ({mode})",
                    lambda env, mode=mode, answer=answer: _scripted_describe(env, mode, answer),  # type: ignore[misc]
                    cls,
                    lambda env, says=says: ("Milvus import job 7", env.fake_url("describe"), *says),  # type: ignore[misc]
                    requests=count,
                )
            )
        add(
            Row(
                f"401: token refused (local server, {mode})",
                lambda env, mode=mode: _wrong_token(env, mode),  # type: ignore[misc]
                MilvusImportAuthError,
                lambda env: (
                    "Milvus import job 448761313698322011 refused: the credentials were not accepted",
                    env.local_url("describe"),
                    "HTTP 401, code 1800: user hasn't authenticated",
                ),
            )
        )
        # -- the endpoint --
        add(
            Row(
                f"unreachable host: closed port, max_retries=0 ({mode})",
                lambda env, mode=mode: _unreachable(env, mode, max_retries=0, budget=2.0),  # type: ignore[misc]
                MilvusImportConnectError,
                lambda env: (
                    "Milvus import job 5 could not reach the server",
                    f"POST {env.extras['closed_url']}{ROUTES}describe",
                    "connection refused (is the server running, and are Host and Port right?)",
                ),
            )
        )
        add(
            Row(
                f"unreachable host: closed port, default retries ({mode})",
                # three retries with backoff capped at 0.5 + 1 + 2 s (jitter takes half to all of each)
                lambda env, mode=mode: _unreachable(env, mode, max_retries=None, budget=3.5 + 2.0),  # type: ignore[misc]
                MilvusImportConnectError,
                lambda env: (
                    "Milvus import job 5",
                    f"POST {env.extras['closed_url']}{ROUTES}describe",
                    "refused",
                ),
            )
        )
        add(
            Row(
                f"Host is not the REST endpoint: every route 404 ({mode})",
                lambda env, mode=mode: _scripted_describe(  # type: ignore[misc]
                    env, mode, [text_response("404 page not found", 404)] * 2, max_retries=0
                ),
                MilvusImportRouteNotFoundError,
                # describe, then the older get_progress: the message names the last route tried
                lambda env: (
                    "Milvus import job 7 failed: the server has no such route",
                    "is Host the REST endpoint of Milvus 2.4+ or Zilliz Cloud?",
                    env.fake_url("get_progress"),
                    "HTTP 404: 404 page not found",
                ),
                requests=2,
            )
        )
        add(
            Row(
                f"Host is a gRPC port, not the REST one (local server's Milvus Lite, {mode})",
                lambda env, mode=mode: _grpc_port(env, mode),  # type: ignore[misc]
                MilvusImportConnectionError,
                lambda env: (
                    "Milvus import jobs could not reach the server",
                    f"POST http://127.0.0.1:{env.local.milvus_port}{ROUTES}list",
                    "the server closed the connection without answering",
                ),
            )
        )
    # -- create: the collection, files, options (sync only: create has no async twin) --
    add(
        Row(
            "a collection that does not exist (local server)",
            lambda env: catch(
                lambda: env.local_hook().create_import_job("no_such_collection", [[ROWS_FILE]])
            ),
            MilvusImportNotFoundError,
            lambda env: (
                "Milvus import into collection 'no_such_collection' failed: not found",
                env.local_url("create"),
                "code 100: collection not found[database=default][collection=no_such_collection]",
            ),
        )
    )
    add(
        Row(
            "a database that does not exist (local server)",
            lambda env: catch(
                lambda: env.local_hook().create_import_job(COLLECTION, [[ROWS_FILE]], db_name="no_such_db")
            ),
            MilvusImportNotFoundError,
            lambda env: (
                f"Milvus import into collection '{COLLECTION}' failed: not found",
                env.local_url("create"),
                "code 800: database not found[database=no_such_db]",
            ),
        )
    )
    add(
        Row(
            "a partition that does not exist (local server)",
            lambda env: catch(
                lambda: env.local_hook().create_import_job(
                    COLLECTION, [[ROWS_FILE]], partition_name="no_such_partition"
                )
            ),
            MilvusImportNotFoundError,
            lambda env: (
                f"Milvus import into collection '{COLLECTION}' failed: not found",
                env.local_url("create"),
                "code 200: partition not found[partition=no_such_partition]",
            ),
        ),
    )
    add(
        Row(
            "files: a path outside the server's bucket (local server)",
            lambda env: catch(
                lambda: env.local_hook().create_import_job(COLLECTION, [["../../outside.parquet"]])
            ),
            MilvusImportRequestError,
            lambda env: (
                f"Milvus import into collection '{COLLECTION}' rejected by the server",
                env.local_url("create"),
                "code 2100: the file path '../../outside.parquet' is outside the bucket",
            ),
        )
    )
    add(
        Row(
            "files: an empty list",
            lambda env: catch(lambda: env.hook().create_import_job("docs", [])),
            MilvusImportRequestError,
            lambda env: ("Milvus import into collection 'docs'", "files is empty: nothing to import"),
            requests=0,
        )
    )
    add(
        Row(
            "files not a list, through the import operator",
            lambda env: catch(
                lambda: MilvusBulkImportOperator(
                    task_id="import",
                    collection_name="docs",
                    files=42,  # type: ignore[arg-type]
                    milvus_import_conn_id=CONN_ID,
                ).execute({})
            ),
            MilvusImportRequestError,
            lambda env: (
                "Invalid import request for collection 'docs'",
                "files must be a path, a list of paths or a list of lists of paths; got int",
            ),
            requests=0,
        )
    )
    add(
        Row(
            "option value a nested dict, through the import operator",
            lambda env: catch(
                lambda: MilvusBulkImportOperator(
                    task_id="import",
                    collection_name="docs",
                    files=["a.parquet"],
                    options={"timeout": {"seconds": 300}},
                    milvus_import_conn_id=CONN_ID,
                ).execute({})
            ),
            MilvusImportRequestError,
            lambda env: ("Invalid import request for collection 'docs'", "option 'timeout'", "got dict"),
            requests=0,
        )
    )
    for files, kind in (("a.parquet", "str"), ({"a": "a.parquet"}, "dict"), (42, "int")):
        add(
            Row(
                f"files not a list ({kind})",
                lambda env, files=files: catch(lambda: env.hook().create_import_job("docs", files)),  # type: ignore[misc]
                MilvusImportRequestError,
                lambda env, kind=kind: (  # type: ignore[misc]
                    "Milvus import into collection 'docs'",
                    f"files must be a list of paths or a list of lists of paths, got {kind}",
                ),
                requests=0,
            )
        )
    add(
        Row(
            "files: an entry that is not a path",
            lambda env: catch(
                lambda: env.hook().create_import_job("docs", [["a.parquet", 3]])  # type: ignore[list-item]
            ),
            MilvusImportRequestError,
            lambda env: (
                "Milvus import into collection 'docs'",
                "files[0] must hold non-empty path strings, got 3",
            ),
            requests=0,
        )
    )
    add(
        Row(
            "option value a nested dict",
            lambda env: catch(
                lambda: env.hook().create_import_job(
                    "docs", [["a.parquet"]], options={"timeout": {"seconds": 300}}
                )
            ),
            MilvusImportRequestError,
            lambda env: (
                "Milvus import into collection 'docs'",
                "option 'timeout' must be a string, number or boolean, got dict",
            ),
            requests=0,
        )
    )
    add(
        Row(
            "option value None",
            lambda env: catch(
                lambda: env.hook().create_import_job("docs", [["a.parquet"]], options={"timeout": None})
            ),
            MilvusImportRequestError,
            lambda env: ("collection 'docs'", "option 'timeout'", "leave the option out instead"),
            requests=0,
        )
    )
    job_limit = (
        "The number of jobs has reached the limit, please try again later. If your request is set to only "
        "import a single file, please consider importing multiple files in one request for better efficiency."
        ": importing data failed"
    )
    add(
        Row(
            "too many import jobs running on the server (past the retries)",
            lambda env: _scripted_create(env, [json_response(envelope(code=2100, message=job_limit))] * 4),
            MilvusImportJobLimitError,
            lambda env: (
                "Milvus import into collection 'docs' was refused: the server's limit of import jobs",
                "import many files in one job instead of one job per file",
                "dataCoord.import.maxImportJobNum",
                env.fake_url("create"),
                "code 2100: The number of jobs has reached the limit",
            ),
            requests=4,
        )
    )
    add(
        Row(
            "non-numeric job id on Milvus 3.x (code 1100)",
            lambda env: _scripted_describe(
                env,
                "sync",
                [
                    json_response(
                        envelope(
                            code=1100,
                            message='parse job id failed: strconv.ParseInt: parsing "7": invalid syntax: '
                            "invalid parameter",
                        )
                    )
                ],
            ),
            MilvusImportRequestError,
            lambda env: (
                "Milvus import job 7 was refused: the server cannot read the job id",
                env.fake_url("describe"),
                "code 1100: parse job id failed",
            ),
            requests=1,
        )
    )
    for name, kwargs, says in [
        (
            "a URL",
            {"files": [["s3://b/1.json"]]},
            "files[0] 's3://b/1.json' is a URL; with volume_name, files are",
        ),
        (
            "object_urls",
            {"object_urls": [["s3://b/1.json"]]},
            "give files (paths inside the volume), not object_urls",
        ),
        (
            "storage credentials",
            {
                "files": [["a.json"]],
                "storage_credentials": {"access_key": "AK", "secret_key": SENTINEL_TOKEN},
            },
            "a volume needs no storage_credentials",
        ),
    ]:
        add(
            Row(
                f"volume_name with {name}",
                lambda env, kwargs=kwargs: _volume_create(env, kwargs),  # type: ignore[misc]
                MilvusImportRequestError,
                lambda env, says=says: ("Milvus import into collection 'docs' from volume 'my_volume'", says),  # type: ignore[misc]
                requests=0,
            )
        )
    add(
        Row(
            "volume_name on self-hosted Milvus",
            lambda env: catch(
                lambda: env.hook().create_import_job("docs", [["a.json"]], volume_name="my_volume")
            ),
            MilvusImportRequestError,
            lambda env: ("from volume 'my_volume'", "volume_name is for Zilliz Cloud volumes"),
            requests=0,
        )
    )
    return rows


def _scripted_describe(
    env: Env, mode: str, answers: list[Any], *, max_retries: int | None = None
) -> BaseException:
    """``describe`` of job 7 answered with ``answers`` in turn (the hook retrying past all but the last)."""
    env.fake.add_job(job_id="7")
    env.fake.answer_next("*", *(answer() if inspect.isfunction(answer) else answer for answer in answers))
    retries = len(answers) - 1 if max_retries is None else max_retries
    return catch(lambda: call(mode, env.hook(max_retries=retries), "get_import_progress", "7"))


def _scripted_create(env: Env, answers: list[Any]) -> BaseException:
    """``create`` into ``docs`` answered with ``answers`` in turn, at the hook's default ``max_retries``."""
    env.fake.answer_next("create", *answers)
    return catch(lambda: env.hook().create_import_job("docs", [["a.parquet"]]))


def _volume_create(env: Env, kwargs: dict[str, Any]) -> BaseException:
    """A volume import on a Zilliz Cloud connection (to the scripted server, which must see nothing)."""
    connection(env.monkeypatch, "ami_bad_input_zilliz", env.fake.base_url, cluster_id="in01-0123456789abcdef")
    hook = env.hook("ami_bad_input_zilliz")
    return catch(lambda: hook.create_import_job("docs", volume_name="my_volume", **kwargs))


def _wrong_token(env: Env, mode: str) -> BaseException:
    connection(env.monkeypatch, "ami_stale_token", env.local.url, password=f"{SENTINEL_TOKEN}-stale")
    hook = MilvusImportHook("ami_stale_token")
    return catch(lambda: call(mode, hook, "get_import_progress", "448761313698322011"))


def _grpc_port(env: Env, mode: str) -> BaseException:
    connection(env.monkeypatch, "ami_grpc_port", f"http://127.0.0.1:{env.local.milvus_port}", timeout=5)
    return catch(lambda: call(mode, MilvusImportHook("ami_grpc_port", max_retries=0), "list_import_jobs"))


def _unreachable(env: Env, mode: str, *, max_retries: int | None, budget: float) -> BaseException:
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}"
        env.extras["closed_url"] = url
        connection(env.monkeypatch, "ami_closed", url)
        kwargs: dict[str, Any] = {} if max_retries is None else {"max_retries": max_retries}
        hook = MilvusImportHook("ami_closed", **kwargs)  # the hook's own backoff, not the test's
        started = time.monotonic()
        error = catch(lambda: call(mode, hook, "get_import_progress", "5"))
        elapsed = time.monotonic() - started
    assert elapsed < budget, f"took {elapsed:.2f} s, more than the retry budget {budget} s"
    return error


@pytest.mark.integration
@pytest.mark.parametrize("row", _hook_rows())
def test_bad_input(env: Env, row: Row) -> None:
    error = row.provoke(env)
    assert_clean(error, row.cls, *row.fragments(env))
    if row.requests is not None:
        assert env.fake.count() == row.requests, [seen.route for seen in env.fake.seen]


# ---- rows about the connection (refused while reading it: nothing is sent) ------------------------------


@pytest.mark.parametrize(
    ("host", "fragments"),
    [
        pytest.param("", ("Host is empty", "e.g. http://localhost:19530"), id="empty Host"),
        pytest.param(
            "ftp://127.0.0.1:19530",
            ("Host must be an http:// or https:// URL, not ftp://",),
            id="not http(s)",
        ),
        pytest.param(
            "http://127.0.0.1:notaport",
            ("Host is not a valid URL (expected http(s)://host[:port][/path])",),
            id="port not a number",
        ),
        pytest.param("http://[::1", ("Host is not a valid URL",), id="unbalanced IPv6 bracket"),
        pytest.param("http://exa mple.com:19530", ("Host is not a valid URL",), id="space in host"),
        pytest.param(
            f"http://root:{SENTINEL_TOKEN}@127.0.0.1:19530",
            ("Host must not carry credentials: put the token or API key in the Password field",),
            id="credentials in Host",
        ),
        pytest.param(
            "http://127.0.0.1:19530/v2/vectordb/jobs/import",
            ("Host should be the server's root URL, without /v2/vectordb/jobs/import",),
            id="route in Host",
        ),
        pytest.param("http://127.0.0.1:19530?db=x", ("Host must not have a query",), id="query in Host"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_malformed_endpoint_url(
    monkeypatch: pytest.MonkeyPatch, host: str, fragments: tuple[str, ...], mode: str
) -> None:
    connection(monkeypatch, "ami_malformed", host)
    hook = MilvusImportHook("ami_malformed")
    error = catch(lambda: call(mode, hook, "get_import_progress", "5"))
    assert_clean(error, MilvusImportRequestError, "Milvus import connection 'ami_malformed'", *fragments)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"timeout": "soon"}, "'timeout' must be a number of seconds, got 'soon'"),
        ({"timeout": -1}, "'timeout' must be a positive number of seconds"),
        ({"max_retries": "many"}, "'max_retries' must be a whole number >= 0, got 'many'"),
        ({"verify": "/no/such/ca.pem"}, "the CA bundle in extra 'verify' (/no/such/ca.pem) does not exist"),
        ({"cluster_id": {"id": 1}}, "extra 'cluster_id' must be text, got dict"),
    ],
    ids=[
        "timeout not a number",
        "negative timeout",
        "max_retries not a number",
        "missing CA bundle",
        "cluster_id",
    ],
)
def test_malformed_connection_extras(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], fragment: str
) -> None:
    connection(monkeypatch, "ami_bad_extra", "http://127.0.0.1:19530", **extra)
    error = catch(lambda: MilvusImportHook("ami_bad_extra").get_import_progress("5"))
    assert_clean(error, MilvusImportRequestError, "Milvus import connection 'ami_bad_extra'", fragment)


# ---- TLS: the local server serving HTTPS with a certificate from a private CA ---------------------------


@pytest.fixture(scope="module")
def tls_local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """The local server on HTTPS with a trustme certificate for ``localhost`` only (not 127.0.0.1)."""
    trustme = pytest.importorskip("trustme")
    from airflow_milvus_import.local import LocalImportServer

    root = tmp_path_factory.mktemp("tls-local")
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    cert_path, key_path, ca_path = root / "cert.pem", root / "key.pem", root / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert_path))
    certificate.private_key_pem.write_to_path(str(key_path))
    authority.cert_pem.write_to_path(str(ca_path))
    with LocalImportServer(
        data_dir=root / "data",
        bucket=root / "bucket",
        token=SENTINEL_TOKEN,
        ssl_certfile=cert_path,
        ssl_keyfile=key_path,
    ) as server:
        yield server, ca_path


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_tls_verification_failure(
    monkeypatch: pytest.MonkeyPatch, tls_local_server: tuple[Any, Path], mode: str
) -> None:
    server, ca_path = tls_local_server
    port = server.port
    # 1. a certificate from a CA the client does not know
    url = f"https://localhost:{port}"
    connection(monkeypatch, "ami_tls", url)
    error = catch(lambda: call(mode, MilvusImportHook("ami_tls", max_retries=0), "list_import_jobs"))
    assert_clean(
        error,
        MilvusImportConnectError,
        "Milvus import jobs could not reach the server",
        f"POST {url}{ROUTES}list",
        "TLS certificate verification failed",
        "set the extra 'verify' to a CA bundle",
    )
    # 2. the right CA, but the certificate names another host
    ip_url = f"https://127.0.0.1:{port}"
    connection(monkeypatch, "ami_tls", ip_url, verify=str(ca_path))
    error = catch(lambda: call(mode, MilvusImportHook("ami_tls", max_retries=0), "get_import_progress", "9"))
    assert_clean(
        error,
        MilvusImportConnectError,
        "Milvus import job 9",
        f"POST {ip_url}{ROUTES}describe",
        "TLS certificate verification failed",
        "set Host to a name the server's certificate was issued for",
    )
    assert "extra 'verify'" not in str(error)  # the CA is right: the advice is about the host name
    # 3. and right: the CA bundle and the certificate's host name
    connection(monkeypatch, "ami_tls", url, verify=str(ca_path))
    assert call(mode, MilvusImportHook("ami_tls", max_retries=0), "list_import_jobs") == []


def test_tls_failure_is_not_retried_into_a_hang(
    monkeypatch: pytest.MonkeyPatch, httpserver_ipv4: HTTPServer
) -> None:
    """A plain-HTTP server behind an https:// Host: a handshake failure, quickly, even with retries."""
    url = f"https://127.0.0.1:{httpserver_ipv4.port}"
    connection(monkeypatch, "ami_tls_plain", url, timeout=5)
    started = time.monotonic()
    error = catch(lambda: MilvusImportHook("ami_tls_plain", retry_min_wait=0.01).list_import_jobs())
    assert time.monotonic() - started < 10
    assert_clean(error, MilvusImportConnectError, f"POST {url}{ROUTES}list", "TLS handshake failed")


# ---- rows about waiting: duplicate ids, unknown states, unknown jobs, unreachable hosts -------------------


async def first_event(trigger: MilvusImportJobTrigger, limit: float = 60.0) -> dict[str, Any]:
    """The real trigger loop to its end: exactly one event."""

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    events = await asyncio.wait_for(collect(), timeout=limit)
    assert len(events) == 1, events
    payload: dict[str, Any] = events[0].payload
    assert_no_secret(json.dumps(payload))
    return payload


def poke_sensor(**kwargs: Any) -> MilvusImportJobSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("milvus_import_conn_id", CONN_ID)
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("mode", "poke")
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return MilvusImportJobSensor(**kwargs)


@pytest.mark.integration
def test_duplicate_ids_are_waited_for_once(env: Env) -> None:
    """Documented: ids are de-duplicated (first occurrence and order kept); each is polled once a round."""
    hook = env.local_hook()
    first = hook.create_import_job(COLLECTION, [[ROWS_FILE]], options={"local.duration": "0.5"})
    second = hook.create_import_job(COLLECTION, [[ROWS_FILE]], options={"local.duration": "1"})
    hook.close()
    given: list[Any] = [first, second, first, int(second), f" {first} "]

    trigger = MilvusImportJobTrigger(given, milvus_import_conn_id=LOCAL_CONN_ID, poll_interval=0.2)
    assert trigger.job_ids == [first, second]
    assert trigger.serialize()[1]["job_ids"] == [first, second]
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "success", event["message"]
    assert event["job_ids"] == [first, second]
    assert [job["job_id"] for job in event["jobs"]] == [first, second]
    assert event["message"] == "All 2 Milvus import jobs finished: 10 rows from 2 file(s)"

    waited = poke_sensor(job_id=given, milvus_import_conn_id=LOCAL_CONN_ID).execute({})
    assert [job["job_id"] for job in waited] == [first, second]  # a list asked, a list of 2 returned


def test_duplicate_ids_cost_one_request_per_job_and_poll(env: Env) -> None:
    job = env.fake.add_job(state="Completed", progress=100)
    waited = poke_sensor(job_id=[job, job, job]).execute({})
    assert [item["job_id"] for item in waited] == [job]
    assert env.fake.count("describe") == 1


@pytest.mark.parametrize(
    ("state", "reason"),
    [("None", "unknown import job state"), ("Exploded", ""), ("", "")],
    ids=["None (unknown import job state)", "a state never heard of", "empty state"],
)
def test_unknown_state_is_never_success(env: Env, state: str, reason: str) -> None:
    job = env.fake.add_job(state=state, progress=100, reason=reason)
    # the hook reports it as it is: Unknown, not an exception and not Completed
    progress = env.hook().get_import_progress(job)
    assert progress.state is ImportJobState.UNKNOWN
    assert not progress.state.is_success

    trigger = MilvusImportJobTrigger(
        job, milvus_import_conn_id=CONN_ID, poll_interval=0.05, max_consecutive_errors=3
    )
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error"
    said = f" (server said: {reason})" if reason else ""
    expected = (
        f"Milvus import job {job} (collection 'docs') reported an unknown state 3 polls in a row{said}; "
        f"not treating it as success [connection {CONN_ID!r}]"
    )
    assert event["message"] == expected

    error = catch(lambda: poke_sensor(job_id=job, max_consecutive_errors=3).execute({}))
    assert_clean(error, MilvusImportError, expected)
    deferred = catch(lambda: poke_sensor(job_id=job).execute_complete({}, event))
    assert_clean(deferred, MilvusImportError, expected)


@pytest.mark.integration
def test_unknown_job_id_ends_a_wait_at_once_naming_job_and_endpoint(env: Env) -> None:
    trigger = MilvusImportJobTrigger(
        "448761313698322011", milvus_import_conn_id=LOCAL_CONN_ID, poll_interval=0.05
    )
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error"
    assert event["message"].startswith("Cannot wait for Milvus import job 448761313698322011: ")
    for fragment in (
        "Milvus import job 448761313698322011 not found",
        env.local_url("describe"),
        "code 2100: import job does not exist, jobID=448761313698322011",
    ):
        assert fragment in event["message"]
    assert event["error_type"] == "MilvusImportNotFoundError"
    error = catch(lambda: poke_sensor(job_id="448761313698322011").execute_complete({}, event))
    assert_clean(error, MilvusImportNotFoundError, event["message"])


def test_unreachable_host_ends_a_wait_after_the_tolerated_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}"
        connection(monkeypatch, "ami_closed_wait", url, max_retries=0)
        trigger = MilvusImportJobTrigger(
            "5", milvus_import_conn_id="ami_closed_wait", poll_interval=0.05, error_tolerance=0.5
        )
        started = time.monotonic()
        event = asyncio.run(first_event(trigger))
        assert time.monotonic() - started < 10
        assert event["status"] == "error"
        assert event["message"].startswith(
            f"Gave up waiting for Milvus import job 5 on {url}{ROUTES}describe "
            "[connection 'ami_closed_wait']: its polls have been failing for "
        )
        assert f"POST {url}{ROUTES}describe" in event["message"]
        assert "connection refused" in event["message"]

        error = catch(
            lambda: poke_sensor(
                job_id="5", milvus_import_conn_id="ami_closed_wait", error_tolerance=0.5
            ).execute({})
        )
        assert_clean(
            error, MilvusImportError, "Gave up waiting for Milvus import job 5", "connection refused"
        )


@pytest.mark.parametrize("bad_id", [None, "", "  ", [], ["1", None]])
def test_empty_or_none_id_for_a_waiter(bad_id: Any) -> None:
    """The trigger refuses at construction; the sensor when it renders the (templated) id."""
    with pytest.raises(ValueError, match="job id") as caught:
        MilvusImportJobTrigger(bad_id, milvus_import_conn_id=CONN_ID)
    assert_unchained(caught.value)
    error = catch(lambda: poke_sensor(job_id=bad_id).execute({}))
    assert type(error) is ValueError, f"{type(error).__name__}: {error}"
    assert "job id" in str(error)
    assert_unchained(error)


# ---- rows the server takes, after conversion ------------------------------------------------------------


@pytest.mark.integration
def test_number_and_bool_options_are_sent_as_strings(env: Env) -> None:
    """Real Milvus refuses non-string option values (code 1801); the hook converts numbers and booleans."""
    hook = env.local_hook()
    job_id = hook.create_import_job(
        COLLECTION, [[ROWS_FILE]], options={"local.duration": 0.5, "skip_disk_quota_check": True}
    )
    assert job_id.isdigit()
    hook.close()
    env.hook().create_import_job(
        "docs", [["a.parquet"]], options={"n": 3, "x": 1.5, "on": True, "off": False}
    )
    (create,) = [seen for seen in env.fake.seen if seen.route == "create"]
    assert create.body["options"] == {"n": "3", "x": "1.5", "on": "true", "off": "false"}


@pytest.mark.integration
def test_the_local_server_itself_refuses_non_string_options_as_real_milvus_does(env: Env) -> None:
    """What the conversion saves users from: code 1801 from the server (sent raw, past the hook)."""
    import requests

    response = requests.post(
        f"{env.local.url}{ROUTES}create",
        json={"collectionName": COLLECTION, "files": [[ROWS_FILE]], "options": {"local.duration": 0.5}},
        headers={"Authorization": f"Bearer {SENTINEL_TOKEN}"},
        timeout=30,
    )
    assert response.json()["code"] == 1801


# ---- waiters, unknown states, pasted non-ASCII, a CA bundle that is no bundle ----------------------------


@pytest.mark.integration
@pytest.mark.parametrize("path", ["poke", "deferred"])
@pytest.mark.parametrize(
    ("case", "cls"),
    [("unknown job id", MilvusImportNotFoundError), ("token refused", MilvusImportAuthError)],
    ids=["unknown job id", "token refused"],
)
def test_a_waiter_raises_the_class_of_the_error_that_ended_it(
    env: Env, path: str, case: str, cls: type[MilvusImportError]
) -> None:
    conn_id = LOCAL_CONN_ID
    job_id = "448761313698322011"
    if case == "token refused":
        conn_id = "ami_bad_input_wrong_token"
        connection(env.monkeypatch, conn_id, env.local.url, password=f"{SENTINEL_TOKEN}-stale")
        with env.local_hook() as hook:
            job_id = hook.create_import_job(COLLECTION, [[ROWS_FILE]], options={"local.duration": "30"})
    sensor = poke_sensor(job_id=job_id, milvus_import_conn_id=conn_id)
    if path == "poke":
        error = catch(lambda: sensor.execute({}))
    else:
        trigger = MilvusImportJobTrigger(job_id, milvus_import_conn_id=conn_id, poll_interval=0.05)
        event = asyncio.run(first_event(trigger))
        error = catch(lambda: sensor.execute_complete({}, event))
    assert_clean(error, cls, f"Milvus import job {job_id}", env.local_url("describe"))


def test_an_unknown_state_names_the_connection(env: Env) -> None:
    job = env.fake.add_job(state="None", progress=0, reason="unknown import job state")
    trigger = MilvusImportJobTrigger(
        job, milvus_import_conn_id=CONN_ID, poll_interval=0.05, max_consecutive_errors=2
    )
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error"
    assert f"connection {CONN_ID!r}" in event["message"] or env.fake.base_url in event["message"], event[
        "message"
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_token_with_a_non_ascii_character(
    monkeypatch: pytest.MonkeyPatch, httpserver_ipv4: HTTPServer, mode: str
) -> None:
    connection(
        monkeypatch,
        "ami_pasted_token",
        f"http://127.0.0.1:{httpserver_ipv4.port}",
        password=f"{SENTINEL_TOKEN}\u2014",
    )
    error = catch(
        lambda: call(mode, MilvusImportHook("ami_pasted_token", max_retries=0), "get_import_progress", "5")
    )
    assert_clean(error, MilvusImportRequestError, "Milvus import connection 'ami_pasted_token'", "Password")


@pytest.mark.parametrize("mode", MODES)
def test_a_database_name_with_non_ascii_characters(env: Env, mode: str) -> None:
    error = catch(
        lambda: call(mode, env.hook(max_retries=0), "get_import_progress", "5", db_name="b\u00fccher\u2014db")
    )
    assert_clean(error, MilvusImportRequestError, "Milvus import job 5", "db_name")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        pytest.param("not a certificate", "sync"),
        pytest.param("not a certificate", "async"),
        pytest.param("a directory", "sync"),
        pytest.param("a directory", "async"),
    ],
)
def test_extra_verify_that_is_no_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tls_local_server: tuple[Any, Path], tmp_path: Path, kind: str, mode: str
) -> None:
    """The extra ``verify`` names a file that is no CA bundle, or a CA directory without this server's CA."""
    server, _ = tls_local_server
    path = tmp_path / "ca"
    if kind == "a directory":
        path.mkdir()
    else:
        path.write_text("not a certificate\n")
    url = f"https://localhost:{server.port}"
    connection(monkeypatch, "ami_bad_verify", url, verify=str(path))
    error = catch(lambda: call(mode, MilvusImportHook("ami_bad_verify", max_retries=0), "list_import_jobs"))
    if kind == "a directory":
        # a CA directory without this server's CA: verification fails, said plainly
        assert_clean(
            error, MilvusImportConnectError, f"POST {url}{ROUTES}list", "TLS certificate verification failed"
        )
    else:
        assert_clean(
            error, MilvusImportRequestError, "Milvus import connection 'ami_bad_verify'", "verify", str(path)
        )


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_extra_verify_naming_a_ca_directory_that_holds_the_ca(
    monkeypatch: pytest.MonkeyPatch, tls_local_server: tuple[Any, Path], tmp_path: Path, mode: str
) -> None:
    """A CA directory in OpenSSL's hashed layout (``c_rehash``) with the server's CA is trusted."""
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to name the CA file by its subject hash")
    server, ca_path = tls_local_server
    subject_hash = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(ca_path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    directory = tmp_path / "ca-directory"
    directory.mkdir()
    shutil.copy(ca_path, directory / f"{subject_hash}.0")
    connection(monkeypatch, "ami_ca_directory", f"https://localhost:{server.port}", verify=str(directory))
    assert call(mode, MilvusImportHook("ami_ca_directory", max_retries=0), "list_import_jobs") == []
