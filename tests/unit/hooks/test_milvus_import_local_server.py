"""
MilvusImportHook against the project's local import server (an independent, server-side implementation of
the API on Milvus Lite), in both flavours: self-hosted Milvus (``server.url``) and Zilliz Cloud
(``server.cloud_url`` with its cluster id). Real jobs import real rows.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_milvus_import.exceptions import (
    MilvusImportAuthError,
    MilvusImportError,
    MilvusImportNotFoundError,
)
from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
from airflow_milvus_import.models import ImportFileState, ImportJobProgress, ImportJobState
from tests.conftest import SENTINEL_TOKEN, prepare_rows

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

COLLECTION = "hook_local_books"
ROWS_FILE = "hook_local_rows.json"
ROW_COUNT = 7
FLAVOURS = ["milvus", "zilliz"]


def connect(
    monkeypatch: pytest.MonkeyPatch, server: Any, flavour: str, token: str | None = None
) -> MilvusImportHook:
    connection: dict[str, Any] = {"conn_type": "milvus_import"}
    if flavour == "zilliz":
        connection.update(host=server.cloud_url, extra={"cluster_id": server.cluster_id})
    else:
        connection["host"] = server.url
    if token is not None:
        connection["password"] = token
    conn_id = f"local_{flavour}_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return MilvusImportHook(conn_id, retry_min_wait=0.05, retry_max_wait=0.2)


def fresh_rows_file(server: Any) -> str:
    """A file of ROW_COUNT rows with primary keys no other import used."""
    name = f"rows_{uuid.uuid4().hex[:8]}.json"
    start = int(uuid.uuid4().int % 10**12)
    rows = [{"id": start + number, "vector": [0.1, 0.2, 0.3, 0.4]} for number in range(ROW_COUNT)]
    (Path(server.bucket) / name).write_text(json.dumps({"rows": rows}))
    return name


def wait(hook: MilvusImportHook, job_id: str, timeout: float = 120) -> ImportJobProgress:
    deadline = time.monotonic() + timeout
    while True:
        progress = hook.get_import_progress(job_id)
        if progress.state.is_terminal:
            return progress
        assert time.monotonic() < deadline, f"job {job_id} still {progress.state} after {timeout} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(local_server: Any) -> Any:
    prepare_rows(local_server, COLLECTION, ROWS_FILE, ROW_COUNT)
    return local_server


@pytest.fixture
def hook(
    request: pytest.FixtureRequest, server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MilvusImportHook]:
    with connect(monkeypatch, server, request.param) as made:
        yield made


def count_rows(server: Any) -> int:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=server.milvus_uri)
    try:
        result = client.query(COLLECTION, filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])
    finally:
        client.close()


@pytest.mark.parametrize("hook", FLAVOURS, indirect=True)
def test_a_real_import_end_to_end(server: Any, hook: MilvusImportHook) -> None:
    before = count_rows(server)
    rows_file = fresh_rows_file(server)
    job_id = hook.create_import_job(COLLECTION, [[rows_file]], options={"local.duration": 1})
    if hook.get_settings().is_zilliz:
        assert job_id.startswith("job-")
    else:
        assert job_id.isdigit()
    assert any(job.job_id == job_id for job in hook.list_import_jobs(COLLECTION))
    progress = wait(hook, job_id)
    assert progress.state is ImportJobState.COMPLETED, progress.reason
    assert progress.job_id == job_id
    assert progress.collection_name == COLLECTION
    assert progress.progress == 100
    assert (progress.imported_rows, progress.total_rows) == (ROW_COUNT, ROW_COUNT)
    assert progress.complete_time is not None
    assert [detail.state for detail in progress.details] == [ImportFileState.COMPLETED]
    assert rows_file in progress.details[0].files[0]
    assert count_rows(server) == before + ROW_COUNT


@pytest.mark.parametrize("hook", FLAVOURS, indirect=True)
def test_a_failed_job_reports_its_reason(hook: MilvusImportHook) -> None:
    job_id = hook.create_import_job(
        COLLECTION, [[ROWS_FILE]], options={"local.duration": "0.2", "local.fail": "disk on fire"}
    )
    progress = wait(hook, job_id)
    assert progress.state is ImportJobState.FAILED
    assert "disk on fire" in progress.reason


@pytest.mark.parametrize("hook", FLAVOURS, indirect=True)
def test_a_missing_file_fails_the_job(hook: MilvusImportHook) -> None:
    job_id = hook.create_import_job(COLLECTION, [["no_such_file.json"]])
    progress = wait(hook, job_id)
    assert progress.state is ImportJobState.FAILED
    assert "no_such_file.json" in progress.reason


@pytest.mark.parametrize("hook", FLAVOURS, indirect=True)
def test_async_twins(hook: MilvusImportHook) -> None:
    job_id = hook.create_import_job(COLLECTION, [[ROWS_FILE]], options={"local.duration": "0.5"})

    async def poll() -> tuple[ImportJobProgress, list[str]]:
        try:
            deadline = time.monotonic() + 120
            while True:
                progress = await hook.aget_import_progress(job_id)
                if progress.state.is_terminal or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            jobs = await hook.alist_import_jobs(COLLECTION)
            return progress, [job.job_id for job in jobs]
        finally:
            await hook.aclose()

    progress, listed = asyncio.run(poll())
    assert progress.state is ImportJobState.COMPLETED
    assert job_id in listed


@pytest.mark.parametrize("hook", FLAVOURS, indirect=True)
def test_unknown_job_and_collection(server: Any, hook: MilvusImportHook) -> None:
    settings = hook.get_settings()
    unknown = "job-doesnotexist0000000000" if settings.is_zilliz else "448761313698322999"
    with pytest.raises(MilvusImportNotFoundError) as caught:
        hook.get_import_progress(unknown)
    assert f"Milvus import job {unknown} not found" in str(caught.value)
    assert f"POST {settings.base_url}/v2/vectordb/jobs/import/" in str(caught.value)
    with pytest.raises(MilvusImportNotFoundError) as missing:
        hook.create_import_job("no_such_collection", [[ROWS_FILE]])
    assert "collection 'no_such_collection'" in str(missing.value)
    assert "code 100" in str(missing.value)


def test_non_numeric_job_id_on_self_hosted(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with connect(monkeypatch, server, "milvus") as hook, pytest.raises(MilvusImportNotFoundError) as caught:
        hook.get_import_progress("not-a-number")
    assert "parse job id failed" in str(caught.value)


@pytest.mark.parametrize("hook", FLAVOURS, indirect=True)
def test_test_connection(server: Any, hook: MilvusImportHook) -> None:
    ok, message = hook.test_connection()
    deployment = "Zilliz Cloud" if hook.get_settings().is_zilliz else "Milvus"
    assert ok, message
    assert message.startswith(f"Connected to {hook.get_settings().base_url} ({deployment}); ")
    assert message.endswith("visible")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_auth(secured_local_server: Any, monkeypatch: pytest.MonkeyPatch, flavour: str) -> None:
    with connect(monkeypatch, secured_local_server, flavour, token=SENTINEL_TOKEN) as hook:
        assert isinstance(hook.list_import_jobs(), list)
    for token in (None, "wrong-token"):
        with connect(monkeypatch, secured_local_server, flavour, token=token) as hook:
            with pytest.raises(MilvusImportAuthError) as caught:
                hook.list_import_jobs()
            assert SENTINEL_TOKEN not in str(caught.value)
            ok, message = hook.test_connection()
            assert not ok
            assert "credentials were not accepted" in message


@pytest.fixture(scope="module")
def legacy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from airflow_milvus_import.local import LocalImportServer

    root = tmp_path_factory.mktemp("legacy-local-server")
    with LocalImportServer(data_dir=root / "data", bucket=root / "bucket", legacy=True) as started:
        prepare_rows(started, COLLECTION, ROWS_FILE, ROW_COUNT)
        yield started


def test_legacy_milvus_without_describe(legacy_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MilvusImportHook, "_progress_route_by_url", {})
    with connect(monkeypatch, legacy_server, "milvus") as hook:
        job_id = hook.create_import_job(COLLECTION, [[ROWS_FILE]])
        progress = wait(hook, job_id)
        assert progress.state is ImportJobState.COMPLETED, progress.reason
        assert MilvusImportHook._progress_route_by_url[legacy_server.url] == "get_progress"
        with pytest.raises(MilvusImportError):
            hook.commit_import_job(job_id)
