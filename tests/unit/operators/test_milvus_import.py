"""
MilvusBulkImportOperator and MilvusListImportJobsOperator.

The argument handling is pure and tested directly. Everything else runs for real: DAGs from
``tests/dags/operators`` under ``dag.test()`` (deferred tasks run their trigger in-line) against the local
import server, with collections created through pymilvus and files written by pymilvus' LocalBulkWriter
into the server's bucket; the results are read back from Airflow's XCom table and from Milvus.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_milvus_import.models import ImportJobProgress, ImportJobState
from airflow_milvus_import.operators.milvus_import import (
    MilvusBulkImportOperator,
    MilvusListImportJobsOperator,
    file_records,
    normalize_files,
    parse_created_since,
    parse_states,
    stringify_options,
)
from tests.airflow_versions import (
    dagbag_class,
    is_task_timeout_escaping_dag_test,
    latest_dag_run,
    without_airflows_mask_requests,
    xcom_model,
    xcom_value,
)
from tests.conftest import SENTINEL_TOKEN

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags" / "operators"
DIM = 8


# ---------------------------------------------------------------------------------------------------------
# Pure argument handling


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("a.parquet", [["a.parquet"]]),
        (Path("dir/a.parquet"), [["dir/a.parquet"]]),
        (["a.parquet", "b.json"], [["a.parquet"], ["b.json"]]),
        ([["a.parquet"], ["b.parquet"]], [["a.parquet"], ["b.parquet"]]),
        (
            [["1/id.npy", "1/vec.npy"], ["2/id.npy", "2/vec.npy"]],
            [["1/id.npy", "1/vec.npy"], ["2/id.npy", "2/vec.npy"]],
        ),
        # a flat list of .npy files in one folder is one column set (what mapping over batch_files gives)
        (["/b/1/id.npy", "/b/1/vec.npy"], [["/b/1/id.npy", "/b/1/vec.npy"]]),
        (["1/id.npy", "2/id.npy"], [["1/id.npy"], ["2/id.npy"]]),
        (("a.parquet", Path("b.parquet")), [["a.parquet"], ["b.parquet"]]),
        (["a.parquet", ["b.parquet"]], [["a.parquet"], ["b.parquet"]]),
        # the text a Jinja template renders a list to
        ("['a.parquet', 'b.parquet']", [["a.parquet"], ["b.parquet"]]),
        ('[["a.parquet"]]', [["a.parquet"]]),
        (" a.parquet ", [["a.parquet"]]),
    ],
)
def test_normalize_files_accepts_every_documented_shape(given: Any, expected: list[list[str]]) -> None:
    assert normalize_files(given) == expected


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ([], "files is empty"),
        ("", "non-empty paths"),
        ([["a.parquet"], []], "files[1] is an empty list"),
        ([["a.parquet", 3]], "files[0] must hold non-empty paths; got 3"),
        ([{"path": "a"}], "files[0] must be a path or a list of paths"),
        (42, "files must be a path, a list of paths or a list of lists of paths; got int"),
        (b"a.parquet", "got bytes"),
    ],
)
def test_normalize_files_rejects_bad_input_clearly(given: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        normalize_files(given)


def test_stringify_options() -> None:
    assert stringify_options(None) == {}
    assert stringify_options(
        {
            "auto_commit": False,
            "skip": True,
            "timeout": timedelta(minutes=5),
            "n": 3,
            "x": 1.5,
            "s": "300s",
            "gone": None,
        }
    ) == {"auto_commit": "false", "skip": "true", "timeout": "300s", "n": "3", "x": "1.5", "s": "300s"}
    assert stringify_options('{"timeout": "10s"}') == {"timeout": "10s"}
    with pytest.raises(ValueError, match="option 'sep' must be text"):
        stringify_options({"sep": [","]})
    with pytest.raises(ValueError, match="option names must be non-empty text"):
        stringify_options({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="options must be a mapping"):
        stringify_options("timeout=10s")


def test_parse_states_is_case_insensitive_and_knows_every_spelling() -> None:
    assert parse_states(None) is None
    assert parse_states(["completed", "FAILED"]) == frozenset(
        {ImportJobState.COMPLETED, ImportJobState.FAILED}
    )
    assert parse_states("InProgress, pending") == frozenset(
        {ImportJobState.IMPORTING, ImportJobState.PENDING}
    )
    assert parse_states("['Uncommitted']") == frozenset({ImportJobState.UNCOMMITTED})
    assert parse_states(["None"]) == frozenset({ImportJobState.UNKNOWN})
    with pytest.raises(ValueError, match=r"unknown import-job state 'Done' in states; use one of: Pending, "):
        parse_states(["Completed", "Done"])
    with pytest.raises(ValueError, match="states is empty"):
        parse_states([])


def test_parse_created_since() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_created_since(None) is None
    assert parse_created_since(datetime(2025, 1, 1)) == datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert parse_created_since("2025-01-01T10:00:00+02:00") == datetime(2025, 1, 1, 8, tzinfo=timezone.utc)
    assert parse_created_since("2025-01-01 10:00:00.5+00:00") == datetime(
        2025, 1, 1, 10, 0, 0, 500000, tzinfo=timezone.utc
    )
    assert parse_created_since(timedelta(hours=2), now=now) == datetime(
        2025, 3, 1, 10, 0, tzinfo=timezone.utc
    )
    with pytest.raises(ValueError, match="created_since must be a datetime, an ISO 8601 text or a timedelta"):
        parse_created_since("yesterday-ish")


def test_file_records_flatten_a_job_into_one_record_per_file() -> None:
    progress = ImportJobProgress.from_wire(
        {
            "jobId": 448761313698322011,
            "collectionName": "books",
            "state": "Failed",
            "reason": "bad file",
            "details": [
                {
                    "fileName": "[a.parquet]",
                    "fileSize": 10,
                    "state": "Completed",
                    "progress": 100,
                    "importedRows": 5,
                    "totalRows": 5,
                    "completeTime": "2024-04-01T06:17:55Z",
                },
                {
                    "fileName": "[1/id.npy 1/vec.npy]",
                    "fileSize": 20,
                    "state": "Failed",
                    "progress": 10,
                    "reason": "schema mismatch",
                },
            ],
        }
    )
    records = file_records(progress)
    assert records == [
        {
            "job_id": "448761313698322011",
            "collection_name": "books",
            "file_name": "[a.parquet]",
            "files": ["a.parquet"],
            "file_size": 10,
            "state": "Completed",
            "progress": 100,
            "imported_rows": 5,
            "total_rows": 5,
            "reason": "",
            "complete_time": "2024-04-01T06:17:55Z",
        },
        {
            "job_id": "448761313698322011",
            "collection_name": "books",
            "file_name": "[1/id.npy 1/vec.npy]",
            "files": ["1/id.npy", "1/vec.npy"],
            "file_size": 20,
            "state": "Failed",
            "progress": 10,
            "imported_rows": 0,
            "total_rows": 0,
            "reason": "schema mismatch",
            "complete_time": None,
        },
    ]
    json.dumps(records)


def test_list_operator_fetches_details_sixteen_at_a_time_by_default() -> None:
    assert MilvusListImportJobsOperator(task_id="t").max_concurrency == 16


def test_operator_arguments_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="poll_interval must be a positive number"):
        MilvusBulkImportOperator(task_id="t", collection_name="c", files=["a"], poll_interval=0)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        MilvusBulkImportOperator(task_id="t", collection_name="c", files=["a"], timeout=timedelta(0))
    with pytest.raises(ValueError, match="max_consecutive_errors must be at least 1"):
        MilvusBulkImportOperator(task_id="t", collection_name="c", files=["a"], max_consecutive_errors=0)
    with pytest.raises(ValueError, match="unknown import-job state 'Finished'"):
        MilvusListImportJobsOperator(task_id="t", states=["Finished"])
    with pytest.raises(ValueError, match="limit must be a non-negative integer"):
        MilvusListImportJobsOperator(task_id="t", limit=-1)
    with pytest.raises(ValueError, match="max_concurrency must be a positive integer"):
        MilvusListImportJobsOperator(task_id="t", max_concurrency=0)
    # templates are checked when rendered, not before
    MilvusListImportJobsOperator(task_id="t", states="{{ params.states }}")
    operator = MilvusBulkImportOperator(
        task_id="t", collection_name="c", files=["a"], poll_interval=timedelta(seconds=3)
    )
    assert operator.poll_interval == 3.0
    assert operator.timeout == 7 * 24 * 3600
    assert set(operator.template_fields) >= {
        "collection_name",
        "files",
        "db_name",
        "partition_name",
        "options",
        "milvus_import_conn_id",
    }


def test_operators_module_imports_no_http_client_hook_trigger_or_models() -> None:
    code = (
        "import sys\n"
        "from airflow.providers.common.compat.sdk import BaseOperator, conf\n"
        "before = set(sys.modules)\n"
        "import airflow_milvus_import.operators.milvus_import\n"
        "print(sorted(set(sys.modules) - before))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    added = eval(output.strip().splitlines()[-1])
    assert "airflow_milvus_import.operators.milvus_import" in added
    assert set(added) <= {
        "airflow_milvus_import",
        "airflow_milvus_import.operators",
        "airflow_milvus_import.operators.milvus_import",
    }


# ---------------------------------------------------------------------------------------------------------
# Helpers for the runs against the local server


def bucket_of(server: Any) -> Path:
    return Path(server.bucket)


def milvus(server: Any) -> Any:
    from pymilvus import MilvusClient

    return MilvusClient(uri=server.milvus_uri)


def schema() -> Any:
    from pymilvus import DataType, MilvusClient

    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field("id", DataType.INT64, is_primary=True)
    fields.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    return fields


def new_collection(server: Any, prefix: str = "ops") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    client = milvus(server)
    try:
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="L2")
        client.create_collection(name, schema=schema(), index_params=index)
    finally:
        client.close()
    return name


def write_files(server: Any, collection: str, rows_per_file: list[int]) -> list[list[str]]:
    """Parquet files written by pymilvus' LocalBulkWriter into the bucket; its batch_files (absolute)."""
    import numpy as np
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    target = bucket_of(server) / "operator-tests" / collection
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    next_id = 0
    with LocalBulkWriter(schema=schema(), local_path=str(target), file_type=BulkFileType.PARQUET) as writer:
        for rows in rows_per_file:
            for _ in range(rows):
                writer.append_row({"id": next_id, "vector": rng.random(DIM, dtype=np.float32).tolist()})
                next_id += 1
            writer.commit()
        return [[str(path) for path in batch] for batch in writer.batch_files]


def relative(server: Any, batches: list[list[str]]) -> list[list[str]]:
    root = bucket_of(server).resolve()
    return [[str(Path(path).resolve().relative_to(root)) for path in batch] for batch in batches]


def count_rows(server: Any, collection: str) -> int:
    client = milvus(server)
    try:
        client.load_collection(collection)
        return int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])
    finally:
        client.close()


def use_dags_folder(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """dag.test() runs DAGs of the DAGs folder; Airflow reads it into ``settings`` when first imported."""
    from airflow import settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))


def use_server(monkeypatch: pytest.MonkeyPatch, url: str, **extra: Any) -> None:
    connection: dict[str, Any] = {"conn_type": "milvus_import", "host": url}
    if extra:
        connection["extra"] = extra
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_IMPORT_DEFAULT", json.dumps(connection))


def run_dag(dag_id: str, conf: dict[str, Any], folder: Path = DAGS_FOLDER) -> Any:
    bag = dagbag_class()(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id} in {folder}"
    return dag.test(run_conf=conf)


def task_states(run: Any) -> dict[tuple[str, int], str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
        )
        return {(ti.task_id, ti.map_index): str(ti.state) for ti in rows}


def xcom(run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    XComModel = xcom_model()
    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
                XComModel.map_index == map_index,
            )
        ).first()
        # What a downstream task receives (the Task SDK's serde over the stored JSON), not
        # XComModel.deserialize_value, which re-parses a stored string: "448761313698322011" -> int.
        return xcom_value(row) if row is not None else None


def task_rendered_fields(run: Any, task_id: str) -> dict[str, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.dag_id == run.dag_id,
                RenderedTaskInstanceFields.run_id == run.run_id,
                RenderedTaskInstanceFields.task_id == task_id,
            )
        ).first()
        return dict(row.rendered_fields) if row is not None else {}


def job_state(url: str, job_id: str, **extra: Any) -> ImportJobProgress:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    with MilvusImportHook() as hook:
        return hook.get_import_progress(job_id)


class Logs:
    """Everything a dag.test() run logged: task logs reach the stdout file descriptor, Airflow's own
    logger records (such as "[DAG TEST] running trigger in line") go through logging."""

    def __init__(self, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
        self._capfd = capfd
        self._caplog = caplog
        self._seen = ""

    def text(self) -> str:
        output = self._capfd.readouterr()
        self._seen += output.out + output.err
        return self._seen + "\n" + self._caplog.text


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Logs:
    caplog.set_level("INFO")
    return Logs(capfd, caplog)


@pytest.fixture
def dags_folder(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_dags_folder(monkeypatch, DAGS_FOLDER)
    return DAGS_FOLDER


# ---------------------------------------------------------------------------------------------------------
# MilvusBulkImportOperator against the local server


@pytest.mark.integration
@pytest.mark.parametrize("dag_id", ["ami_test_import_deferrable", "ami_test_import_on_worker"])
def test_import_waits_and_returns_the_final_progress(
    dag_id: str,
    dags_folder: Path,
    local_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    logs: Logs,
) -> None:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server)
    batches = write_files(local_server, collection, [120, 80])

    run = run_dag(
        dag_id,
        {
            "collection": collection,
            "files": relative(local_server, batches),
            "options": {"local.duration": "2"},
        },
    )

    assert str(run.state) == "success"
    job_id = xcom(run, "import_files", "job_id")
    result = xcom(run, "import_files")
    assert isinstance(job_id, str)
    assert job_id.isdigit()
    assert result["job_id"] == job_id
    assert result["state"] == "Completed"
    assert result["collection_name"] == collection
    assert (result["imported_rows"], result["total_rows"]) == (200, 200)
    assert [detail["state"] for detail in result["details"]] == ["Completed", "Completed"]
    assert sorted(detail["total_rows"] for detail in result["details"]) == [80, 120]
    assert count_rows(local_server, collection) == 200
    log = logs.text()
    assert f"job {job_id} (collection '{collection}'): " in log  # the per-poll progress line
    if dag_id == "ami_test_import_deferrable":
        assert "running trigger in line" in log


@pytest.mark.integration
def test_import_accepts_batch_files_as_written_and_options_as_python_values(
    dags_folder: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server)
    batches = write_files(local_server, collection, [50])

    # absolute paths inside the bucket, exactly as LocalBulkWriter.batch_files gives them; a non-string option
    run = run_dag(
        "ami_test_import_on_worker",
        {
            "collection": collection,
            "files": batches,
            "options": {"local.duration": 0.5, "skip_disk_quota_check": True},
        },
    )

    assert str(run.state) == "success"
    assert xcom(run, "import_files")["imported_rows"] == 50


@pytest.mark.integration
def test_import_without_waiting_returns_the_job_id(
    dags_folder: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server)
    batches = write_files(local_server, collection, [30])

    run = run_dag(
        "ami_test_import_no_wait", {"collection": collection, "files": relative(local_server, batches)}
    )

    assert str(run.state) == "success"
    job_id = xcom(run, "import_files", "job_id")
    assert xcom(run, "import_files") == job_id
    progress = job_state(local_server.url, job_id)
    assert progress.collection_name == collection


@pytest.mark.integration
@pytest.mark.parametrize("dag_id", ["ami_test_import_deferrable", "ami_test_import_on_worker"])
def test_a_failed_import_fails_the_task_with_the_reason_and_keeps_the_job_id(
    dag_id: str,
    dags_folder: Path,
    local_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    logs: Logs,
) -> None:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server)
    batches = write_files(local_server, collection, [20])
    reason = f"disk on fire {uuid.uuid4().hex[:6]}"

    run = run_dag(
        dag_id,
        {
            "collection": collection,
            "files": relative(local_server, batches),
            "options": {"local.fail": reason, "local.duration": "1"},
        },
    )

    assert str(run.state) == "failed"
    assert task_states(run)[("import_files", -1)] == "failed"
    job_id = xcom(run, "import_files", "job_id")
    assert job_id, "the job id reaches XCom before the wait"
    assert xcom(run, "import_files") is None
    log = logs.text()
    assert "MilvusImportJobFailed" in log
    assert f"job {job_id} (collection '{collection}') failed: {reason}" in log


@pytest.mark.integration
def test_a_missing_file_fails_the_task_naming_the_file(
    dags_folder: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server)

    run = run_dag(
        "ami_test_import_on_worker",
        {"collection": collection, "files": ["operator-tests/no-such-file.parquet"], "options": {}},
    )

    assert str(run.state) == "failed"
    assert "no-such-file.parquet" in logs.text()


@pytest.mark.integration
def test_an_unknown_collection_fails_before_any_job_exists(
    dags_folder: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    use_server(monkeypatch, local_server.url)

    run = run_dag(
        "ami_test_import_on_worker",
        {"collection": "no_such_collection_here", "files": ["a.parquet"], "options": {}},
    )

    assert str(run.state) == "failed"
    assert xcom(run, "import_files", "job_id") is None
    log = logs.text()
    assert "MilvusImportNotFoundError" in log
    assert "no_such_collection_here" in log


@pytest.mark.integration
def test_the_wait_deadline_fails_the_task_with_the_last_state(
    dags_folder: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server)
    batches = write_files(local_server, collection, [20])

    started = time.monotonic()
    run = run_dag(
        "ami_test_import_short_timeout",
        {
            "collection": collection,
            "files": relative(local_server, batches),
            "options": {"local.duration": "60"},
        },
    )

    assert str(run.state) == "failed"
    assert time.monotonic() - started < 45
    log = logs.text()
    assert "MilvusImportJobTimeout" in log
    assert "did not finish before the deadline" in log


class ScriptedImportServer:
    """``create`` answers a job id; ``describe`` plays its script (the last answer repeats)."""

    JOB_ID = "448761313698322011"

    def __init__(self, server: Any, *describe: tuple[int, Any]) -> None:
        self.describe = list(describe)
        self.calls: list[str] = []
        server.expect_request(re.compile("^/v2/vectordb/jobs/import/"), method="POST").respond_with_handler(
            self._answer
        )

    def _answer(self, request: Any) -> Any:
        from werkzeug import Response

        route = request.path.rsplit("/", 1)[-1]
        self.calls.append(route)
        if route == "create":
            status, body = 200, {"code": 0, "data": {"jobId": self.JOB_ID}}
        elif route == "describe":
            status, body = self.describe.pop(0) if len(self.describe) > 1 else self.describe[0]
        else:
            status, body = 404, "404 page not found"
        return Response(body if isinstance(body, str) else json.dumps(body), status=status)


IMPORTING = (
    200,
    {
        "code": 0,
        "data": {
            "jobId": ScriptedImportServer.JOB_ID,
            "collectionName": "books",
            "state": "Importing",
            "progress": 40,
            "importedRows": 4,
            "totalRows": 10,
            "details": [],
        },
    },
)


@pytest.mark.integration
@pytest.mark.parametrize("dag_id", ["ami_test_import_deferrable", "ami_test_import_on_worker"])
@pytest.mark.parametrize(
    ("answer", "error_class"),
    [
        (
            (200, {"code": 2100, "message": "import job does not exist, jobID=1: importing data failed"}),
            "MilvusImportNotFoundError",
        ),
        ((401, {"code": 1800, "message": "user hasn't authenticated"}), "MilvusImportAuthError"),
    ],
    ids=["unknown job", "token refused"],
)
def test_the_wait_fails_with_the_class_of_the_error_that_ended_it(
    dag_id: str,
    answer: tuple[int, Any],
    error_class: str,
    dags_folder: Path,
    httpserver_ipv4: Any,
    monkeypatch: pytest.MonkeyPatch,
    logs: Logs,
) -> None:
    """The job exists, then the wait cannot go on: on the worker, and in the triggerer after deferring."""
    scripted = ScriptedImportServer(httpserver_ipv4, IMPORTING, answer)
    use_server(monkeypatch, f"http://127.0.0.1:{httpserver_ipv4.port}")

    run = run_dag(dag_id, {"collection": "books", "files": ["a.parquet"], "options": {}})

    assert str(run.state) == "failed"
    assert xcom(run, "import_files", "job_id") == ScriptedImportServer.JOB_ID
    assert scripted.calls == ["create", "describe", "describe"]  # a non-transient error is not retried
    log = logs.text()
    if dag_id == "ami_test_import_deferrable":
        assert "running trigger in line" in log
    describe_url = f"http://127.0.0.1:{httpserver_ipv4.port}/v2/vectordb/jobs/import/describe"
    raised = f"{error_class}: Cannot wait for Milvus import job {ScriptedImportServer.JOB_ID}: "
    assert re.search(f"{re.escape(raised)}.*{re.escape(describe_url)}", log), log[-3000:]


@pytest.mark.integration
def test_mapped_imports_one_job_per_file(
    dags_folder: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server)
    batches = write_files(local_server, collection, [10, 20, 30])

    # .expand over the flat list of files: each mapped instance gets one path (a str) and makes one job
    files = [batch[0] for batch in relative(local_server, batches)]
    run = run_dag("ami_test_import_mapped", {"collection": collection, "files": files, "options": {}})

    assert str(run.state) == "success"
    states = task_states(run)
    assert [states[("import_file", index)] for index in range(3)] == ["success"] * 3
    results = [xcom(run, "import_file", map_index=index) for index in range(3)]
    job_ids = [xcom(run, "import_file", "job_id", map_index=index) for index in range(3)]
    assert len(set(job_ids)) == 3
    assert [result["job_id"] for result in results] == job_ids
    assert [result["imported_rows"] for result in results] == [10, 20, 30]
    assert [result["details"][0]["files"] for result in results] == [[name] for name in files]
    assert count_rows(local_server, collection) == 60


@pytest.mark.integration
def test_on_kill_aborts_a_two_phase_job(
    dags_folder: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server)
    batches = write_files(local_server, collection, [40])

    try:
        run = run_dag(
            "ami_test_import_killed", {"collection": collection, "files": relative(local_server, batches)}
        )
    except BaseException as error:
        if not is_task_timeout_escaping_dag_test(error):
            raise
        run = latest_dag_run("ami_test_import_killed")
        assert str(run.state) == "running"  # dag.test() left before it could mark the run
        assert task_states(run)[("import_files", -1)] == "failed"
    else:
        assert str(run.state) == "failed"
    job_id = xcom(run, "import_files", "job_id")
    progress = job_state(local_server.url, job_id)
    assert progress.state is ImportJobState.FAILED
    assert "abort" in progress.reason
    assert f"aborted two-phase import job {job_id}" in logs.text()
    assert count_rows(local_server, collection) == 0


def test_on_kill_of_a_job_that_commits_by_itself_says_it_keeps_running(
    logs: Logs,
) -> None:
    operator = MilvusBulkImportOperator(task_id="t", collection_name="books", files=["a.parquet"])
    operator._job_id = "448761313698322011"
    operator.on_kill()
    fresh = MilvusBulkImportOperator(task_id="t2", collection_name="books", files=["a.parquet"])
    fresh.on_kill()
    log = logs.text()
    assert "import job 448761313698322011 into collection 'books' keeps running on the server" in log
    assert "only two-phase jobs" in log
    assert "Task killed before an import job was created: nothing to cancel" in log


@pytest.mark.integration
def test_zilliz_object_urls_with_credentials_from_a_connection_never_leak(
    dags_folder: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    use_server(monkeypatch, local_server.cloud_url, cluster_id=local_server.cluster_id)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AMI_TEST_STORAGE",
        json.dumps({"conn_type": "aws", "login": "AKIA-ami-test-access", "password": SENTINEL_TOKEN}),
    )
    collection = new_collection(local_server)
    batches = write_files(local_server, collection, [25])
    urls = [[f"s3://ami-bucket/{path}" for path in batch] for batch in relative(local_server, batches)]

    run = run_dag(
        "ami_test_import_object_urls",
        {"collection": collection, "files": urls, "storage_conn_id": "ami_test_storage"},
    )

    assert str(run.state) == "success"
    job_id = xcom(run, "import_files", "job_id")
    result = xcom(run, "import_files")
    assert job_id.startswith("job-")
    assert result["state"] == "Completed"
    assert result["imported_rows"] == 25
    log = without_airflows_mask_requests(logs.text())
    assert "AKIA-ami-test-access" not in log
    assert SENTINEL_TOKEN not in log
    assert SENTINEL_TOKEN not in json.dumps(result)
    rendered = json.dumps(task_rendered_fields(run, "import_files"))
    assert "ami_test_storage" in rendered
    assert SENTINEL_TOKEN not in rendered


def test_storage_credentials_come_only_from_a_connection_and_say_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_milvus_import.exceptions import MilvusImportRequestError

    monkeypatch.setenv(
        "AIRFLOW_CONN_AMI_HALF_STORAGE", json.dumps({"conn_type": "aws", "login": "AKIA-only"})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_AMI_EXTRA_STORAGE",
        json.dumps(
            {
                "conn_type": "aws",
                "extra": {
                    "aws_access_key_id": "AK",
                    "aws_secret_access_key": "SK",
                    "aws_session_token": "TK",
                },
            }
        ),
    )
    half = MilvusBulkImportOperator(
        task_id="t", collection_name="c", object_urls=["s3://b/a.parquet"], storage_conn_id="ami_half_storage"
    )
    with pytest.raises(
        MilvusImportRequestError, match="Storage connection 'ami_half_storage' has no secret key"
    ):
        half._storage_credentials()
    extra = MilvusBulkImportOperator(
        task_id="t",
        collection_name="c",
        object_urls=["s3://b/a.parquet"],
        storage_conn_id="ami_extra_storage",
    )
    assert extra._storage_credentials() == {"access_key": "AK", "secret_key": "SK", "token": "TK"}
    both = MilvusBulkImportOperator(task_id="t", collection_name="c", files=["a"], object_urls=["s3://b/a"])
    with pytest.raises(ValueError, match="not both"):
        both._files_to_send()
    neither = MilvusBulkImportOperator(task_id="t", collection_name="c")
    with pytest.raises(ValueError, match="no data to import"):
        neither._files_to_send()


# ---------------------------------------------------------------------------------------------------------
# MilvusListImportJobsOperator against the local server


@pytest.fixture
def listed_jobs(local_server: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A collection with three finished jobs (two completed, one failed) and one still pending."""
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server, "listing")
    batches = relative(local_server, write_files(local_server, collection, [10, 20, 30]))
    with MilvusImportHook() as hook:
        first = hook.create_import_job(collection, [batches[0]])
        second = hook.create_import_job(collection, [batches[1], batches[2]])
        failed = hook.create_import_job(collection, [batches[0]], options={"local.fail": "checksum mismatch"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(hook.get_import_progress(job).state.is_terminal for job in (first, second, failed)):
                break
            time.sleep(0.3)
        # Servers give create times in whole seconds: start the next job in a later second.
        time.sleep(1.05 - time.time() % 1)
        since = datetime.now(timezone.utc)
        # a day long: its progress stays put while the listing tasks compare what they saw
        running = hook.create_import_job(collection, [batches[2]], options={"local.duration": "86400"})
    return {
        "collection": collection,
        "first": first,
        "second": second,
        "failed": failed,
        "running": running,
        "since": since.isoformat(),
        "batches": batches,
    }


@pytest.mark.integration
def test_list_jobs_with_filters_and_file_details(
    dags_folder: Path, listed_jobs: dict[str, Any], logs: Logs
) -> None:
    collection = listed_jobs["collection"]
    newest_first = [listed_jobs[name] for name in ("running", "failed", "second", "first")]

    run = run_dag(
        "ami_test_list_jobs",
        {"collection": collection, "since": listed_jobs["since"], "states": "Completed,pending"},
    )
    assert str(run.state) == "success"

    everything = xcom(run, "list_all")
    assert [job["job_id"] for job in everything] == newest_first
    assert [job["state"] for job in everything] == ["Pending", "Failed", "Completed", "Completed"]
    assert all(job["collection_name"] == collection and job["create_time"] for job in everything)
    failed = next(job for job in everything if job["job_id"] == listed_jobs["failed"])
    assert failed["reason"] == "checksum mismatch"

    details = xcom(run, "list_all", "file_details")
    by_job: dict[str, list[dict[str, Any]]] = {}
    for record in details:
        by_job.setdefault(record["job_id"], []).append(record)
    assert sorted(by_job) == sorted(newest_first)
    assert set(details[0]) == {
        "job_id",
        "collection_name",
        "file_name",
        "files",
        "file_size",
        "state",
        "progress",
        "imported_rows",
        "total_rows",
        "reason",
        "complete_time",
    }
    second = by_job[listed_jobs["second"]]
    assert [record["files"] for record in second] == [listed_jobs["batches"][1], listed_jobs["batches"][2]]
    assert [(record["state"], record["imported_rows"], record["total_rows"]) for record in second] == [
        ("Completed", 20, 20),
        ("Completed", 30, 30),
    ]
    assert all(record["file_size"] > 0 and record["complete_time"] for record in second)

    assert [job["job_id"] for job in xcom(run, "list_failed")] == [listed_jobs["failed"]]
    # the server may fail a job before it lists its files: whatever it lists belongs to that job
    failed_files = xcom(run, "list_failed", "file_details")
    assert {record["job_id"] for record in failed_files} <= {listed_jobs["failed"]}
    assert [job["job_id"] for job in xcom(run, "list_states_param")] == [
        listed_jobs["running"],
        listed_jobs["second"],
        listed_jobs["first"],
    ]
    assert [job["job_id"] for job in xcom(run, "list_newest_two")] == newest_first[:2]
    assert [job["job_id"] for job in xcom(run, "list_since")] == [listed_jobs["running"]]

    summaries = xcom(run, "list_without_details")
    assert [job["job_id"] for job in summaries] == newest_first
    assert set(summaries[0]) == {"job_id", "collection_name", "state", "progress", "reason"}
    assert xcom(run, "list_without_details", "file_details") == []
    assert xcom(run, "list_one_at_a_time") == everything

    log = logs.text()
    assert f"4 import jobs of 4 listed (collection '{collection}'): Completed 2, Failed 1, Pending 1" in log
    file_states = Counter(record["state"] for record in details)
    counts = ", ".join(
        f"{name} {n}" for name, n in sorted(file_states.items(), key=lambda item: (-item[1], item[0]))
    )
    rows = sum(record["imported_rows"] for record in details)
    assert f"5 files: {counts}; {rows} rows imported; 4 progress calls" in log
    assert f"Job {listed_jobs['failed']} failed: checksum mismatch" in log


@pytest.mark.integration
def test_list_jobs_with_a_bad_filter_fails_clearly(
    dags_folder: Path, listed_jobs: dict[str, Any], logs: Logs
) -> None:
    run = run_dag(
        "ami_test_list_jobs", {"collection": listed_jobs["collection"], "states": ["Done"], "since": "soon"}
    )

    states = task_states(run)
    assert states[("list_states_param", -1)] == "failed"
    assert states[("list_since", -1)] == "failed"
    assert states[("list_all", -1)] == "success"
    log = logs.text()
    assert "Invalid filter for listing import jobs: unknown import-job state 'Done'" in log
    assert "created_since must be a datetime" in log
