"""
MilvusImportJobSensor.

Event mapping and the deferral decision are tested on the sensor itself (events built by the real waiting
rules; HTTP answered by pytest-httpserver on 127.0.0.1). The three modes run for real under ``dag.test()``
(DAG files in tests/dags/sensor/, which ``dag.test()`` needs in the DAGs folder) against the project's
local import server, with real import jobs whose outcome is chosen through ``local.duration`` /
``local.fail``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator  # noqa: TC003 (pytest resolves fixture annotations)
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_milvus_import._waiting import JobWaitTracker, WaitResult, WaitStatus
from airflow_milvus_import.exceptions import (
    MilvusImportAuthError,
    MilvusImportError,
    MilvusImportJobFailed,
    MilvusImportNotFoundError,
    MilvusImportRequestError,
)
from airflow_milvus_import.models import ImportJobProgress
from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor
from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger
from tests.airflow_versions import skip_if_dag_test_cannot_reschedule_twice, without_airflows_mask_requests
from tests.conftest import prepare_rows

DESCRIBE = "/v2/vectordb/jobs/import/describe"


def wire(job_id: str, state: str = "Importing", percent: int = 50, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "jobId": job_id,
        "collectionName": "books",
        "state": state,
        "progress": percent,
        "importedRows": 10 * percent,
        "totalRows": 1000,
        "details": [],
    }
    data.update(extra)
    return {"code": 0, "data": data}


def sensor(**kwargs: Any) -> MilvusImportJobSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("job_id", "11")
    kwargs.setdefault("milvus_import_conn_id", "milvus_faults")
    return MilvusImportJobSensor(**kwargs)


def event(job_ids: list[str], *answers: dict[str, Any], status: WaitStatus | None = None) -> dict[str, Any]:
    """An event payload made by the real waiting rules from the given server answers."""
    tracker = JobWaitTracker(job_ids, conn_id="milvus_faults")
    for answer in answers:
        progress = ImportJobProgress.from_wire(answer["data"])
        tracker.record_progress(progress.job_id, progress, at=time.monotonic())
    result = tracker.timeout_result("2026-01-01T00:00:00+00:00") if status is WaitStatus.TIMEOUT else None
    result = result or tracker.evaluate()
    assert result is not None
    payload: dict[str, Any] = json.loads(json.dumps(result.to_event()))
    return payload


# ------------------------------------------------------------------------------------------------------
# Construction


def test_template_fields_and_defaults() -> None:
    from airflow.providers.common.compat.sdk import conf

    wait = sensor()
    assert tuple(wait.template_fields) == ("job_id", "milvus_import_conn_id", "db_name")
    assert wait.deferrable is conf.getboolean("operators", "default_deferrable", fallback=False)
    assert wait.poke_interval == 10.0
    assert wait.accept_uncommitted is False
    assert wait.max_consecutive_errors == 5
    assert wait.error_tolerance == 600.0
    assert (
        sensor(mode="reschedule").poke_interval == 60.0
    )  # Airflow's default: reschedules cost the scheduler
    assert sensor(poll_interval=2.5).poke_interval == 2.5
    assert sensor(poll_interval=timedelta(minutes=1)).poke_interval == 60.0
    assert sensor(poke_interval=3).poke_interval == 3.0


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"poll_interval": 1, "poke_interval": 2}, ValueError, "not both"),
        ({"max_consecutive_errors": 0}, ValueError, "at least 1"),
        ({"error_tolerance": -5}, ValueError, "error_tolerance must be a positive"),
        ({"error_tolerance": None}, TypeError, "error_tolerance must be seconds"),
        ({"max_consecutive_errors": "3"}, TypeError, "integer"),
        # Airflow's own check: ValueError on 3.2+, AirflowException before (the same message)
        ({"poll_interval": -1}, (ValueError, AirflowException), "poke_interval"),
    ],
)
def test_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception] | tuple[type[Exception], ...], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        sensor(**kwargs)


# ------------------------------------------------------------------------------------------------------
# Event -> outcome (what execute_complete does when the trigger fires)


def test_success_returns_the_progress_of_one_job_or_the_list() -> None:
    payload = event(["11"], wire("11", "Completed", 100))
    assert sensor().execute_complete({}, payload) == payload["jobs"][0]
    payload = event(["11", "12"], wire("11", "Completed", 100), wire("12", "Completed", 100))
    assert sensor(job_id=["11", "12"]).execute_complete({}, payload) == payload["jobs"]
    assert sensor(job_id="['11', '12']").execute_complete({}, payload) == payload["jobs"]
    one = event(["11"], wire("11", "Completed", 100))
    assert sensor(job_id=["11"]).execute_complete({}, one) == one["jobs"]  # asked as a list: a list back


def test_failed_raises_job_failed_naming_job_collection_reason_and_files() -> None:
    files = [
        {"fileName": "[a.parquet]", "state": "Completed", "progress": 100},
        {"fileName": "[b.parquet]", "state": "Failed", "progress": 10, "reason": "field 'vector' missing"},
    ]
    payload = event(["11"], wire("11", "Failed", 40, reason="failed to import b.parquet", details=files))
    with pytest.raises(MilvusImportJobFailed) as caught:
        sensor().execute_complete({}, payload)
    assert str(caught.value) == (
        "Milvus import job 11 (collection 'books') failed: failed to import b.parquet. "
        "Failed files (1): [b.parquet]: field 'vector' missing [connection 'milvus_faults']"
    )
    assert caught.value.job_id == "11"
    assert caught.value.collection_name == "books"
    assert caught.value.failed_files == [("[b.parquet]", "field 'vector' missing")]


def test_timeout_raises_airflows_sensor_timeout_with_the_last_state() -> None:
    payload = event(["11"], wire("11", "Importing", 45), status=WaitStatus.TIMEOUT)
    with pytest.raises(AirflowSensorTimeout) as caught:
        sensor(timeout=90).execute_complete({}, payload)
    assert str(caught.value).startswith("Sensor timed out after 1m30s: Milvus import job did not finish")
    assert "last state Importing at 45%" in str(caught.value)


def test_error_raises_milvus_import_error() -> None:
    payload = {
        "status": "error",
        "message": "Cannot wait for Milvus import job 11: HTTP 401",
        "job_ids": ["11"],
    }
    with pytest.raises(MilvusImportError, match="HTTP 401") as caught:
        sensor().execute_complete({}, {**payload, "jobs": []})
    assert type(caught.value) is MilvusImportError


def test_error_raises_the_class_the_event_names_with_its_endpoint() -> None:
    payload = {
        "status": "error",
        "message": "Cannot wait for Milvus import job 11: refused",
        "job_ids": ["11"],
        "jobs": [],
        "error_type": "MilvusImportAuthError",
        "error_endpoint": "http://127.0.0.1:1/v2/vectordb/jobs/import/describe",
        "error_job_id": "11",
        "error_code": 1800,
        "error_http_status": 401,
    }
    with pytest.raises(MilvusImportAuthError) as caught:
        sensor().execute_complete({}, payload)
    error = caught.value
    assert type(error) is MilvusImportAuthError
    assert str(error) == "Cannot wait for Milvus import job 11: refused"
    assert (error.endpoint, error.job_id, error.code, error.http_status) == (
        "http://127.0.0.1:1/v2/vectordb/jobs/import/describe",
        "11",
        1800,
        401,
    )


@pytest.mark.parametrize(
    "error_type",
    [
        "AirflowException",  # imported into exceptions.py, but not one of its own classes
        "ValueError",
        "os.system",
        "airflow_milvus_import.exceptions.MilvusImportAuthError",
        "MilvusImportJobFailed",  # an outcome of its own ("failed"), never what an "error" raises
        "",
        42,
        None,
    ],
)
def test_an_error_type_that_is_not_ours_raises_the_base_class(error_type: Any) -> None:
    payload = {"status": "error", "message": "boom", "job_ids": ["11"], "jobs": [], "error_type": error_type}
    with pytest.raises(MilvusImportError, match=r"^boom$") as caught:
        sensor().execute_complete({}, payload)
    assert type(caught.value) is MilvusImportError
    assert caught.value.job_id == "11"


def test_the_error_class_survives_the_event_round_trip() -> None:
    tracker = JobWaitTracker(["11", "12"], conn_id="milvus_faults")
    tracker.record_progress("11", ImportJobProgress.from_wire(wire("11")["data"]), at=0)
    tracker.record_error(
        "12",
        MilvusImportNotFoundError(
            "Milvus import job 12 does not exist (POST http://127.0.0.1:1/v2/vectordb/jobs/import/describe)",
            endpoint="http://127.0.0.1:1/v2/vectordb/jobs/import/describe",
            job_id="12",
            code=2100,
            http_status=200,
        ),
        0,
    )
    # A later non-transient error of another class does not replace the one that ended the wait.
    tracker.record_error("11", MilvusImportRequestError("bad request"), 1)
    result = tracker.evaluate()
    assert result is not None
    payload = json.loads(json.dumps(result.to_event()))
    assert payload["status"] == "error"
    assert payload["error_type"] == "MilvusImportNotFoundError"
    assert payload["error_job_id"] == "12"
    assert payload["error_code"] == 2100
    assert WaitResult.from_event(payload) == result
    with pytest.raises(MilvusImportNotFoundError) as caught:
        sensor(job_id=["11", "12"]).execute_complete({}, payload)
    assert type(caught.value) is MilvusImportNotFoundError
    assert str(caught.value) == (
        "Cannot wait for Milvus import job 12: Milvus import job 12 does not exist "
        "(POST http://127.0.0.1:1/v2/vectordb/jobs/import/describe)"
    )
    assert caught.value.job_id == "12"
    assert caught.value.endpoint == "http://127.0.0.1:1/v2/vectordb/jobs/import/describe"


def test_an_error_that_is_not_ours_ends_the_wait_as_the_base_class() -> None:
    tracker = JobWaitTracker("11")
    tracker.record_error("11", KeyError("jobId"), 0)
    result = tracker.evaluate()
    assert result is not None
    assert "error_type" not in result.to_event()
    with pytest.raises(MilvusImportError, match="KeyError: 'jobId'") as caught:
        sensor().execute_complete({}, result.to_event())
    assert type(caught.value) is MilvusImportError


@pytest.mark.parametrize("status", ["failed", "timeout", "error"])
def test_soft_fail_skips_on_every_unsuccessful_outcome(status: str) -> None:
    payload = {"status": status, "message": f"it {status}", "job_ids": ["11"], "jobs": []}
    with pytest.raises(AirflowSkipException, match=f"Skipping \\(soft_fail=True\\): it {status}"):
        sensor(soft_fail=True).execute_complete({}, payload)


@pytest.mark.parametrize("payload", [None, {"status": "cancelled"}, "success"])
def test_an_event_that_is_not_ours_fails_clearly(payload: Any) -> None:
    with pytest.raises(MilvusImportError, match="trigger"):
        sensor().execute_complete({}, payload)


# ------------------------------------------------------------------------------------------------------
# The check before deferring, and poke mode, against exact server answers (pytest-httpserver)


class Answers:
    """``describe`` answers per job id; each job's last answer repeats."""

    def __init__(self, server: Any) -> None:
        self.scripts: dict[str, list[tuple[int, Any]]] = {}
        self.calls: list[str] = []
        server.expect_request(DESCRIBE, method="POST").respond_with_handler(self._answer)

    def script(self, job_id: str, *steps: tuple[int, Any]) -> None:
        self.scripts[job_id] = list(steps)

    def _answer(self, request: Any) -> Any:
        from werkzeug import Response

        job_id = str(json.loads(request.get_data() or b"{}").get("jobId"))
        self.calls.append(job_id)
        steps = self.scripts[job_id]
        status, body = steps.pop(0) if len(steps) > 1 else steps[0]
        return Response(body if isinstance(body, str) else json.dumps(body), status=status)


@pytest.fixture(scope="module")
def answer_server() -> Iterator[Any]:
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def answers(answer_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Answers]:
    answer_server.clear()
    # max_retries 0: the hook does not retry, so every failed call is a failed check of the sensor's own.
    connection = {
        "conn_type": "milvus_import",
        "host": answer_server.url_for("/").rstrip("/"),
        "extra": {"max_retries": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_FAULTS", json.dumps(connection))
    yield Answers(answer_server)
    answer_server.clear()


def test_defers_with_the_deadline_when_the_job_is_still_running(answers: Answers) -> None:
    answers.script("11", (200, wire("11", "Importing", 30)))
    wait = sensor(
        job_id=["11", "11"],
        deferrable=True,
        timeout=600,
        poll_interval=4,
        db_name="analytics",
        accept_uncommitted=True,
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as caught:
        wait.execute({})
    deferred = caught.value
    assert deferred.method_name == "execute_complete"
    assert isinstance(deferred.trigger, MilvusImportJobTrigger)
    assert timedelta(seconds=590) < deferred.timeout <= timedelta(seconds=600)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_milvus_import.triggers.milvus_import.MilvusImportJobTrigger"
    assert before + 599 < kwargs.pop("end_time") <= time.time() + 600
    assert kwargs == {
        "job_ids": ["11"],
        "milvus_import_conn_id": "milvus_faults",
        "db_name": "analytics",
        "poll_interval": 4.0,
        "max_consecutive_errors": 5,
        "accept_uncommitted": True,
    }
    assert answers.calls == ["11"]  # it checked once before deferring


def test_does_not_defer_when_the_job_already_finished(answers: Answers) -> None:
    answers.script("11", (200, wire("11", "Completed", 100)))
    result = sensor(deferrable=True).execute({})
    assert result["state"] == "Completed"
    assert result["job_id"] == "11"


def test_does_not_defer_a_job_that_already_failed(answers: Answers) -> None:
    answers.script("11", (200, wire("11", "Failed", 20, reason="bad file")))
    with pytest.raises(MilvusImportJobFailed, match="job 11 \\(collection 'books'\\) failed: bad file"):
        sensor(deferrable=True).execute({})


def test_a_transient_error_before_deferring_still_defers(answers: Answers) -> None:
    answers.script("11", (503, "busy"))
    with pytest.raises(TaskDeferred):
        sensor(deferrable=True).execute({})


def test_a_permanent_error_before_deferring_fails_at_once(answers: Answers) -> None:
    answers.script(
        "11", (200, {"code": 2100, "message": "import job does not exist, jobID=11: importing data failed"})
    )
    with pytest.raises(
        MilvusImportNotFoundError, match=r"Cannot wait for Milvus import job 11: .*does not exist"
    ) as caught:
        sensor(deferrable=True).execute({})
    assert type(caught.value) is MilvusImportNotFoundError
    assert caught.value.job_id == "11"
    assert str(caught.value.endpoint).endswith(DESCRIBE)


REFUSED = (401, {"code": 1800, "message": "user hasn't authenticated"})
UNKNOWN_JOB = (200, {"code": 2100, "message": "import job does not exist, jobID=11: importing data failed"})


@pytest.mark.parametrize(
    ("answer", "cls"), [(REFUSED, MilvusImportAuthError), (UNKNOWN_JOB, MilvusImportNotFoundError)]
)
@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_poke_and_reschedule_raise_the_class_of_the_error(
    answers: Answers, mode: str, answer: tuple[int, Any], cls: type[MilvusImportError]
) -> None:
    answers.script("11", (200, wire("11", "Importing", 40)), answer)
    wait = sensor(deferrable=False, mode=mode, poll_interval=0.01, max_consecutive_errors=3)
    if mode == "reschedule":
        assert wait.poke({}) is False  # still importing: rescheduled
    with pytest.raises(cls, match="Cannot wait for Milvus import job 11: ") as caught:
        wait.execute({}) if mode == "poke" else wait.poke({})
    assert type(caught.value) is cls
    assert caught.value.job_id == "11"
    assert str(caught.value.endpoint).endswith(DESCRIBE)
    assert answers.calls == ["11", "11"]  # a non-transient error is not asked again


@pytest.mark.parametrize(
    ("answer", "cls"), [(REFUSED, MilvusImportAuthError), (UNKNOWN_JOB, MilvusImportNotFoundError)]
)
def test_deferred_wait_raises_the_class_of_the_error_the_trigger_met(
    answers: Answers, answer: tuple[int, Any], cls: type[MilvusImportError]
) -> None:
    import asyncio

    answers.script("11", (200, wire("11", "Importing", 40)), answer)
    wait = sensor(deferrable=True, poll_interval=0.05, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, MilvusImportJobTrigger)
    payload = json.loads(json.dumps(asyncio.run(first_event(trigger))))
    assert payload["status"] == "error"
    assert payload["error_type"] == cls.__name__
    with pytest.raises(cls, match="Cannot wait for Milvus import job 11: ") as caught:
        wait.execute_complete({}, payload)
    assert type(caught.value) is cls
    assert str(caught.value.endpoint).endswith(DESCRIBE)


def test_poke_mode_tolerates_transient_errors_then_succeeds(answers: Answers) -> None:
    answers.script(
        "11",
        (200, wire("11", "Importing", 40)),
        (503, "busy"),
        (200, wire("11", "Importing", 60)),
        (503, "busy"),
        (200, wire("11", "Completed", 100)),
    )
    answers.script("12", (200, wire("12", "Completed", 100)))
    wait = sensor(job_id=["11", "12"], deferrable=False, poll_interval=0.01, max_consecutive_errors=2)
    result = wait.execute({})
    assert [job["state"] for job in result] == ["Completed", "Completed"]
    assert answers.calls.count("12") == 1  # a finished job is not asked again
    assert answers.calls.count("11") == 5


def test_poke_mode_gives_up_once_checks_fail_for_the_error_tolerance(answers: Answers) -> None:
    answers.script("11", (200, wire("11", "Importing", 40)), (503, "busy"))
    wait = sensor(deferrable=False, poll_interval=0.2, error_tolerance=0.5, max_consecutive_errors=1)
    started = time.monotonic()
    with pytest.raises(MilvusImportError) as caught:
        wait.execute({})
    took = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith("Gave up waiting for Milvus import job 11 on http://127.0.0.1:"), message
    assert "its polls have been failing for " in message
    assert "tolerance 0.5s, set by error_tolerance); last error: " in message
    # failed checks at about 0.2, 0.4, 0.6 s: the one at (first + 0.5 s) ends it; max_consecutive_errors=1
    # counts unknown states only, so it did not end the wait at the first failed check
    assert answers.calls.count("11") >= 4
    assert took < 5


def test_reschedule_mode_does_not_pretend_to_count_across_reschedules(answers: Answers) -> None:
    answers.script("11", (503, "busy"))
    wait = sensor(deferrable=False, mode="reschedule", max_consecutive_errors=3)
    with pytest.raises(MilvusImportError, match=r"failed after the connection's retries \(reschedule mode"):
        wait.poke({})  # each reschedule is a new process: a check that fails after the hook's retries fails


def test_poke_mode_fails_on_an_unknown_state_that_persists(answers: Answers) -> None:
    answers.script("11", (200, wire("11", "None", 0, reason="unknown import job state")))
    wait = sensor(deferrable=False, poll_interval=0.01, max_consecutive_errors=3)
    with pytest.raises(MilvusImportError, match="reported an unknown state 3 polls in a row") as caught:
        wait.execute({})
    assert answers.calls == ["11"] * 3
    assert type(caught.value) is MilvusImportError
    assert str(caught.value).endswith(
        "(server said: unknown import job state); not treating it as success [connection 'milvus_faults']"
    )


def test_poke_mode_timeout_says_what_the_job_was_doing(answers: Answers) -> None:
    answers.script("11", (200, wire("11", "Importing", 45)))
    with pytest.raises(AirflowSensorTimeout) as caught:
        sensor(deferrable=False, poll_interval=0.05, timeout=0.2).execute({})
    message = str(caught.value)
    assert message.startswith("Sensor has timed out; run duration of ")  # Airflow's own words first
    assert message.endswith(
        "Milvus import job did not finish before the deadline (sensor timeout 0.2s); job 11 (collection "
        "'books'): last state Importing at 45% (rows 450/1,000, files n/a)"
    )


def test_poke_mode_soft_fail_skips_a_failed_job(answers: Answers) -> None:
    answers.script("11", (200, wire("11", "Failed", 20, reason="bad file")))
    with pytest.raises(AirflowSkipException, match="bad file"):
        sensor(deferrable=False, soft_fail=True, poll_interval=0.01).execute({})


# ------------------------------------------------------------------------------------------------------
# The three modes for real: dag.test() against the local import server

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags" / "sensor"
COLLECTION = "sensor_books"
ROWS_FILE = "sensor_rows.json"


@dataclass
class DagRunOutcome:
    state: str
    task_states: dict[str, str]
    xcoms: dict[str, Any]
    rendered: dict[str, Any]
    log: str
    rescheduled: int


class SensorDags:
    """Runs the DAGs of tests/dags/sensor with dag.test(); jobs are real jobs on the local server."""

    def __init__(self, server: Any, conn_id: str) -> None:
        import importlib.util

        self.server = server
        self.conn_id = conn_id
        spec = importlib.util.spec_from_file_location(
            "milvus_sensor_dags", DAGS_FOLDER / "milvus_sensor_dags.py"
        )
        assert spec is not None
        assert spec.loader is not None
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)

    def create(self, duration: float, fail: str | None = None) -> str:
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

        options = {"local.duration": str(duration)}
        if fail is not None:
            options["local.fail"] = fail
        with MilvusImportHook(self.conn_id) as hook:
            return hook.create_import_job(COLLECTION, [[ROWS_FILE]], options=options)

    def warm_up(self) -> None:
        run = self.module.warm_up.test()
        assert str(run.state) == "success"

    def run(
        self,
        dag_attr: str,
        job_id: Any,
        capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture | None = None,
    ) -> DagRunOutcome:
        from airflow.models.renderedtifields import RenderedTaskInstanceFields
        from airflow.models.taskreschedule import TaskReschedule
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        from tests.airflow_versions import xcom_model, xcom_value

        XComModel = xcom_model()

        dag = getattr(self.module, dag_attr)
        capfd.readouterr()
        run = dag.test(run_conf={"job_id": job_id, "conn_id": self.conn_id})
        captured = capfd.readouterr()
        log = captured.out + captured.err + (caplog.text if caplog is not None else "")
        with create_session() as session:
            instances = {ti.task_id: ti for ti in run.get_task_instances(session=session)}
            query: Any = XComModel.get_many(run_id=run.run_id, dag_ids=dag.dag_id, key="return_value")
            xcoms = {xcom.task_id: xcom_value(xcom) for xcom in session.scalars(query)}
            rendered = {
                row.task_id: row.rendered_fields
                for row in session.scalars(
                    select(RenderedTaskInstanceFields).where(
                        RenderedTaskInstanceFields.dag_id == dag.dag_id,
                        RenderedTaskInstanceFields.run_id == run.run_id,
                    )
                )
            }
            wait_ti = instances["wait"]
            if hasattr(TaskReschedule, "ti_id"):
                which = TaskReschedule.ti_id == wait_ti.id
            else:  # Airflow 2.11: rows keyed by dag, task and run
                which = (
                    (TaskReschedule.dag_id == wait_ti.dag_id)
                    & (TaskReschedule.task_id == wait_ti.task_id)
                    & (TaskReschedule.run_id == wait_ti.run_id)
                )
            rescheduled = session.scalar(select(func.count()).where(which))
        return DagRunOutcome(
            state=str(run.state),
            task_states={task_id: str(ti.state) for task_id, ti in instances.items()},
            xcoms=xcoms,
            rendered=rendered,
            log=log,
            rescheduled=int(rescheduled or 0),
        )


@pytest.fixture(scope="module")
def dags_folder(airflow_db: Path) -> Iterator[Path]:
    """
    dag.test() serializes a DAG by parsing the DAGs folder: point it at tests/dags/sensor.

    The env var covers what reads the config; ``airflow.settings.DAGS_FOLDER`` (what the default
    ``dags-folder`` bundle uses) was fixed when Airflow was first imported, so it is pointed there too.
    """
    from airflow import settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
        patch.setattr(settings, "DAGS_FOLDER", str(DAGS_FOLDER))
        yield DAGS_FOLDER


@pytest.fixture(scope="module")
def sensor_dags(dags_folder: Path, local_server: Any) -> Iterator[SensorDags]:
    prepare_rows(local_server, COLLECTION, ROWS_FILE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW_CONN_MILVUS_SENSOR_LOCAL",
            json.dumps({"conn_type": "milvus_import", "host": local_server.url}),
        )
        dags = SensorDags(local_server, "milvus_sensor_local")
        dags.warm_up()
        yield dags


@pytest.mark.integration
def test_deferrable_mode_runs_green_under_dag_test(
    sensor_dags: SensorDags, capfd: pytest.CaptureFixture[str]
) -> None:
    # long enough to be running when the sensor first looks, even on a loaded machine (CI saw a dag.test()
    # start take over 3 s, and the sensor rightly found the job done without deferring)
    job_id = sensor_dags.create(duration=10)
    outcome = sensor_dags.run("deferrable", job_id, capfd)
    assert outcome.state == "success", outcome.log[-3000:]
    assert outcome.task_states == {"wait": "success", "report": "success"}
    progress = outcome.xcoms["wait"]
    assert progress["job_id"] == job_id
    assert progress["state"] == "Completed"
    assert progress["imported_rows"] == 5
    assert progress["details"][0]["files"] == [ROWS_FILE]
    assert outcome.xcoms["report"] == {"states": ["Completed"], "rows": 5}
    # It really deferred: the sensor said so, and the trigger (run in-line by dag.test()) polled and ended.
    assert f"Deferring: the triggerer checks {job_id} every 0.3s" in outcome.log
    assert "Milvus import wait ended with success" in outcome.log
    assert f"job {job_id} (collection '{COLLECTION}'): " in outcome.log
    assert outcome.rendered["wait"]["job_id"] == job_id
    assert outcome.rendered["wait"]["milvus_import_conn_id"] == "milvus_sensor_local"


@pytest.mark.integration
def test_poke_mode_waits_for_a_list_of_jobs(
    sensor_dags: SensorDags, capfd: pytest.CaptureFixture[str]
) -> None:
    jobs = [sensor_dags.create(duration=0.5), sensor_dags.create(duration=1.5)]
    outcome = sensor_dags.run("poke", jobs, capfd)
    assert outcome.state == "success", outcome.log[-3000:]
    assert [job["job_id"] for job in outcome.xcoms["wait"]] == jobs  # a list asked, a list returned
    assert outcome.xcoms["report"] == {"states": ["Completed", "Completed"], "rows": 10}
    assert "Deferring" not in outcome.log
    assert "2 jobs: " in outcome.log  # the summary line of a multi-job wait
    assert outcome.rescheduled == 0


@pytest.mark.integration
def test_reschedule_mode_runs_green_under_dag_test(
    sensor_dags: SensorDags, capfd: pytest.CaptureFixture[str]
) -> None:
    skip_if_dag_test_cannot_reschedule_twice()
    job_id = sensor_dags.create(duration=10)  # still running at the first check on a loaded machine
    outcome = sensor_dags.run("reschedule", job_id, capfd)
    assert outcome.state == "success", outcome.log[-3000:]
    assert outcome.xcoms["wait"]["state"] == "Completed"
    assert outcome.rescheduled >= 1  # it gave its worker slot back between checks
    assert "Deferring" not in outcome.log


@pytest.mark.integration
@pytest.mark.parametrize("dag_attr", ["deferrable", "poke", "reschedule"])
def test_a_failed_import_fails_the_task_with_the_reason_in_the_log(
    sensor_dags: SensorDags, capfd: pytest.CaptureFixture[str], dag_attr: str
) -> None:
    reason = "row 2: field 'vector' has 3 values, the schema wants 4"
    job_id = sensor_dags.create(duration=1.0, fail=reason)
    outcome = sensor_dags.run(dag_attr, job_id, capfd)
    assert outcome.state == "failed"
    assert outcome.task_states == {"wait": "failed", "report": "upstream_failed"}
    assert "MilvusImportJobFailed" in outcome.log
    expected = (
        f"Milvus import job {job_id} (collection '{COLLECTION}') failed: {reason}. "
        f"Failed files (1): [{ROWS_FILE}]: {reason}"
    )
    assert expected in outcome.log
    assert "wait" not in outcome.xcoms


@pytest.mark.integration
def test_deferred_timeout_is_airflows_sensor_timeout(
    sensor_dags: SensorDags, capfd: pytest.CaptureFixture[str]
) -> None:
    job_id = sensor_dags.create(duration=60)
    outcome = sensor_dags.run("deferrable_timeout", job_id, capfd)
    assert outcome.state == "failed"
    assert outcome.task_states["wait"] == "failed"
    assert "AirflowSensorTimeout" in outcome.log
    assert "Sensor timed out after 1.5s: Milvus import job did not finish before the deadline" in outcome.log
    assert f"job {job_id} (collection '{COLLECTION}'): last state " in outcome.log


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["deferrable", "poke", "reschedule"])
def test_soft_fail_skips_a_timeout_in_every_mode(
    sensor_dags: SensorDags, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    if mode == "reschedule":
        skip_if_dag_test_cannot_reschedule_twice()
    job_id = sensor_dags.create(duration=60)
    outcome = sensor_dags.run(f"soft_fail_{mode}", job_id, capfd)
    assert outcome.task_states == {"wait": "skipped", "report": "skipped"}, outcome.log[-3000:]
    assert outcome.state == "success"


@pytest.mark.integration
def test_soft_fail_skips_a_failed_import_when_deferred(
    sensor_dags: SensorDags, capfd: pytest.CaptureFixture[str]
) -> None:
    job_id = sensor_dags.create(duration=0.8, fail="bad file")
    outcome = sensor_dags.run("soft_fail_deferrable", job_id, capfd)
    assert outcome.task_states == {"wait": "skipped", "report": "skipped"}, outcome.log[-3000:]
    assert "bad file" in outcome.log


async def first_event(trigger: MilvusImportJobTrigger) -> dict[str, Any]:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1
    payload: dict[str, Any] = events[0]
    return payload


@pytest.mark.integration
def test_sentinel_token_leaks_nowhere(
    dags_folder: Path,
    secured_local_server: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token lives in the connection only: not in trigger kwargs, events, logs, XCom, rendered fields."""
    import asyncio

    from tests.conftest import SENTINEL_TOKEN

    prepare_rows(secured_local_server, COLLECTION, ROWS_FILE)
    url = secured_local_server.url
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_SECURED",
        json.dumps({"conn_type": "milvus_import", "host": url, "password": SENTINEL_TOKEN}),
    )
    # The same token with a suffix: the server refuses it (401), and the error must not echo it either.
    monkeypatch.setenv(
        "AIRFLOW_CONN_MILVUS_WRONG_TOKEN",
        json.dumps({"conn_type": "milvus_import", "host": url, "password": SENTINEL_TOKEN + "-stale"}),
    )
    dags = SensorDags(secured_local_server, "milvus_secured")
    texts: list[str] = []

    # Serialized trigger kwargs (what the triggerer stores) and the trigger's repr.
    running = dags.create(duration=2)
    with pytest.raises(TaskDeferred) as deferred:
        sensor(job_id=running, milvus_import_conn_id="milvus_secured", deferrable=True).execute({})
    texts += [
        json.dumps(deferred.value.trigger.serialize()),
        repr(deferred.value.trigger),
        repr(deferred.value),
    ]

    # Events: success, failure, and the error of a refused token.
    failing = dags.create(duration=0.5, fail="bad file")
    for job_id, conn_id, status in [
        (running, "milvus_secured", "success"),
        (failing, "milvus_secured", "failed"),
        (running, "milvus_wrong_token", "error"),
    ]:
        trigger = MilvusImportJobTrigger(job_id, milvus_import_conn_id=conn_id, poll_interval=0.3)
        payload: dict[str, Any] = asyncio.run(first_event(trigger))
        assert payload["status"] == status, payload["message"]
        texts.append(json.dumps(payload))
        if status != "success":
            with pytest.raises(MilvusImportError) as caught:
                sensor(job_id=job_id, milvus_import_conn_id=conn_id).execute_complete({}, payload)
            texts += [str(caught.value), repr(caught.value)]

    # A whole DAG run: task logs, XCom and rendered template fields; and a failing run's logs.
    outcome = dags.run("deferrable", dags.create(duration=2), capfd, caplog)
    assert outcome.state == "success", outcome.log[-3000:]
    failed = dags.run("poke", dags.create(duration=0.5, fail="bad file"), capfd, caplog)
    assert failed.task_states["wait"] == "failed"
    texts += [outcome.log, json.dumps(outcome.xcoms), json.dumps(outcome.rendered), failed.log]

    assert "Completed" in json.dumps(outcome.xcoms)  # the texts searched are the real ones
    assert all(text for text in texts)
    leaks = [text[:200] for text in texts if SENTINEL_TOKEN in without_airflows_mask_requests(text)]
    assert leaks == []
