"""
Retries of ``MilvusBulkImportOperator``: a retried task reconnects to the job its earlier try created
instead of importing the same files again (Milvus does not deduplicate rows on import).

Under ``dag.test()`` (Airflow 3.3: a real task state store that keeps values across tries), on both
waiting paths: the first try's wait fails (its ``timeout`` is shorter than the job), the retry reconnects,
and the local server counts exactly one ``create``. The branches a DAG run cannot pick at will (the
earlier job already Completed, or Failed) and the fallback without a task state store run the operator's
``execute`` against the local server with a context that has, or lacks, a store.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_milvus_import.operators.milvus_import import (
    TASK_STATE_JOB_KEY,
    MilvusBulkImportOperator,
    task_state_store_of,
)
from tests.unit.operators.test_milvus_import import (
    Logs,
    count_rows,
    new_collection,
    relative,
    run_dag,
    task_states,
    use_dags_folder,
    use_server,
    write_files,
    xcom,
)

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags" / "operators"
CREATE_ROUTE = "/v2/vectordb/jobs/import/create"


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Logs:
    caplog.set_level("INFO")
    return Logs(capfd, caplog)


def creates(server: Any) -> int:
    return int(server.stats["requests"].get(CREATE_ROUTE, 0))


def try_number(run: Any, task_id: str) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == run.dag_id,
                TaskInstance.run_id == run.run_id,
                TaskInstance.task_id == task_id,
            )
        ).one()
        return int(ti.try_number)


@pytest.mark.integration
@pytest.mark.parametrize("dag_id", ["ami_test_retry_deferrable", "ami_test_retry_on_worker"])
def test_a_retried_import_creates_exactly_one_job_and_returns_its_result(
    dag_id: str, airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    from tests.airflow_versions import skip_if_dag_test_resumes_a_retry_into_the_old_event

    skip_if_dag_test_resumes_a_retry_into_the_old_event(dag_id.endswith("deferrable"))
    use_dags_folder(monkeypatch, DAGS_FOLDER)
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server, prefix="retry")
    batches = write_files(local_server, collection, [60, 40])
    before = creates(local_server)

    # the job takes 5 s, each try waits 3 s: the first try's wait times out, the retry reconnects
    run = run_dag(
        dag_id,
        {
            "collection": collection,
            "files": relative(local_server, batches),
            "options": {"local.duration": "5"},
        },
        folder=DAGS_FOLDER,
    )

    assert str(run.state) == "success", task_states(run)
    assert try_number(run, "import_files") == 2  # the first try really failed
    assert creates(local_server) - before == 1
    job_id = xcom(run, "import_files", "job_id")
    result = xcom(run, "import_files")
    assert result["job_id"] == job_id
    assert result["state"] == "Completed"
    assert (result["imported_rows"], result["total_rows"]) == (100, 100)
    assert count_rows(local_server, collection) == 100  # imported once, not twice
    log = logs.text()
    assert "did not finish before the deadline" in log  # the first try's wait
    assert (
        f"Reconnecting to import job {job_id} " in log
        or f"Import job {job_id} created by an earlier try already Completed" in log
    ), log[-3000:]
    assert "created by an earlier try" in log


# ---------------------------------------------------------------------------------------------------------
# The branches, one at a time: the operator's execute against the local server


class StateStore:
    """Airflow 3.3's task state store API (``get(key, default)``, ``set(key, value)``) over a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        self.values[key] = value


class TaskInstanceStub:
    def __init__(self, try_number: int) -> None:
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class DagRunStub:
    def __init__(self, start_date: datetime) -> None:
        self.start_date = start_date


def context_of(
    try_number: int, store: StateStore | None, run_start: datetime | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": TaskInstanceStub(try_number)}
    if store is not None:
        context["task_state_store"] = store
    if run_start is not None:
        context["dag_run"] = DagRunStub(run_start)
    return context


@pytest.fixture
def import_setup(airflow_db: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    use_server(monkeypatch, local_server.url)
    collection = new_collection(local_server, prefix="retry")
    return {
        "collection": collection,
        "files": relative(local_server, write_files(local_server, collection, [30])),
    }


def operator(setup: dict[str, Any], **kwargs: Any) -> MilvusBulkImportOperator:
    kwargs.setdefault("options", {"local.duration": "0.5"})
    return MilvusBulkImportOperator(
        task_id="import_files",
        collection_name=setup["collection"],
        files=setup["files"],
        deferrable=False,
        poll_interval=0.2,
        timeout=60,
        **kwargs,
    )


def test_the_store_helper_returns_none_without_a_store() -> None:
    assert task_state_store_of({}) is None
    assert task_state_store_of({"task_state_store": None}) is None
    store = StateStore()
    assert task_state_store_of({"task_state_store": store}) is store


@pytest.mark.integration
def test_a_retry_after_the_job_completed_returns_its_result_without_a_create(
    import_setup: dict[str, Any], local_server: Any, logs: Logs
) -> None:
    store = StateStore()
    first = operator(import_setup).execute(context_of(1, store))
    assert isinstance(first, dict)
    job_id = first["job_id"]
    assert store.values[TASK_STATE_JOB_KEY]["job_id"] == job_id
    before = creates(local_server)

    again = operator(import_setup).execute(context_of(2, store))

    assert creates(local_server) == before
    assert again["job_id"] == job_id
    assert again["state"] == "Completed"
    assert f"Import job {job_id} created by an earlier try already Completed" in logs.text()
    assert count_rows(local_server, import_setup["collection"]) == 30


@pytest.mark.integration
def test_a_retry_after_the_job_failed_creates_a_fresh_job(
    import_setup: dict[str, Any], local_server: Any, logs: Logs
) -> None:
    from airflow_milvus_import.exceptions import MilvusImportJobFailed

    store = StateStore()
    with pytest.raises(MilvusImportJobFailed):
        operator(import_setup, options={"local.duration": "0.2", "local.fail": "disk full"}).execute(
            context_of(1, store)
        )
    failed_job = store.values[TASK_STATE_JOB_KEY]["job_id"]

    # the same request (the options are part of it): the earlier job is Failed, so a new one is made
    with pytest.raises(MilvusImportJobFailed):
        operator(import_setup, options={"local.duration": "0.2", "local.fail": "disk full"}).execute(
            context_of(2, store)
        )
    assert f"Import job {failed_job} created by an earlier try Failed (disk full): creating a fresh job" in (
        logs.text()
    )
    assert store.values[TASK_STATE_JOB_KEY]["job_id"] != failed_job


@pytest.mark.integration
def test_a_changed_request_is_not_taken_for_the_earlier_try(
    import_setup: dict[str, Any], local_server: Any
) -> None:
    store = StateStore()
    first = operator(import_setup).execute(context_of(1, store))
    before = creates(local_server)
    second = operator(import_setup, partition_name="_default").execute(context_of(2, store))
    assert creates(local_server) == before + 1
    assert second["job_id"] != first["job_id"]


@pytest.mark.integration
def test_without_a_store_a_retry_finds_the_earlier_job_by_collection_files_and_create_time(
    import_setup: dict[str, Any], local_server: Any, logs: Logs
) -> None:
    run_start = datetime.now(timezone.utc) - timedelta(seconds=5)
    first = operator(import_setup).execute(context_of(1, None, run_start))
    before = creates(local_server)

    again = operator(import_setup).execute(context_of(2, None, run_start))

    assert creates(local_server) == before
    assert again["job_id"] == first["job_id"]
    assert f"import job {first['job_id']} has this task's files and was created at" in logs.text()
    assert count_rows(local_server, import_setup["collection"]) == 30

    # a job from before the DAG run started is not this run's: a new run's retry creates its own
    later_start = datetime.now(timezone.utc) + timedelta(seconds=1)
    third = operator(import_setup).execute(context_of(2, None, later_start))
    assert creates(local_server) == before + 1
    assert third["job_id"] != first["job_id"]
