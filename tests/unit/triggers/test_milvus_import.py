"""
MilvusImportJobTrigger and the pure waiting rules behind it (airflow_milvus_import._waiting).

The pure rules are tested directly. The trigger's real ``run()`` loop is driven against the project's local
import server (real jobs with chosen outcomes: ``local.duration`` / ``local.fail``) and against
pytest-httpserver where a test needs an exact sequence of faults (N x 503, 429 with Retry-After, 401, an
unknown state).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterator  # noqa: TC003 (pytest resolves fixture annotations)
from typing import Any

import pytest

from airflow_milvus_import._waiting import (
    EVENT_VERSION,
    JobWaitTracker,
    PollRound,
    ProgressHistory,
    WaitResult,
    WaitStatus,
    event_version,
    exception_for_result,
    failed_files,
    format_duration,
    format_progress_line,
    format_summary_line,
    job_ids_given_as_list,
    normalize_job_ids,
)
from airflow_milvus_import.exceptions import (
    MilvusImportError,
    MilvusImportJobFailed,
    MilvusImportJobTimeout,
    MilvusImportRateLimitError,
    MilvusImportServerError,
)
from airflow_milvus_import.models import ImportJobProgress
from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger
from tests.airflow_versions import import_string, serde
from tests.conftest import prepare_rows

TRIGGER_PATH = "airflow_milvus_import.triggers.milvus_import.MilvusImportJobTrigger"


def progress(
    job_id: str = "101",
    state: str = "Importing",
    percent: int = 50,
    imported: int = 0,
    total: int = 0,
    *,
    collection: str = "books",
    reason: str | None = None,
    details: list[dict[str, Any]] | None = None,
    create_time: str = "",
    complete_time: str = "",
) -> ImportJobProgress:
    """A progress record built the way the hook builds it: from the server's JSON."""
    data: dict[str, Any] = {
        "jobId": job_id,
        "collectionName": collection,
        "state": state,
        "progress": percent,
        "importedRows": imported,
        "totalRows": total,
        "completeTime": complete_time,
        "createTime": create_time,
        "details": details or [],
    }
    if reason is not None:
        data["reason"] = reason
    return ImportJobProgress.from_wire(data)


def file_detail(name: str, state: str = "Completed", reason: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"fileName": name, "fileSize": 10, "state": state, "progress": 100}
    if reason is not None:
        detail["reason"] = reason
    return detail


# ------------------------------------------------------------------------------------------------------
# Pure rules: job ids


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("448761313698322011", ["448761313698322011"]),
        ("  job-01fa0e5d42cjxudhpuehyp ", ["job-01fa0e5d42cjxudhpuehyp"]),
        (448761313698322011, ["448761313698322011"]),
        (["1", "2", "1", 3, "2"], ["1", "2", "3"]),
        (("a", "b"), ["a", "b"]),
        ("['1', '2', '1']", ["1", "2"]),  # what Jinja renders a pulled XCom list to
        ('["job-a", "job-b"]', ["job-a", "job-b"]),
        ("[1, 2]", ["1", "2"]),
        ("[weird id]", ["[weird id]"]),  # brackets but not a list: one id
    ],
)
def test_normalize_job_ids(given: Any, expected: list[str]) -> None:
    assert normalize_job_ids(given) == expected


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        (None, "None"),
        ("", "''"),
        ("   ", "'   '"),
        ([], "empty list"),
        ("[]", "empty list"),
        (["1", ""], "position 1"),
        (["1", None], "position 1"),
        ({"job": "1"}, "{'job': '1'}"),
        (True, "True"),
        (object(), "must be a string or a list"),
    ],
)
def test_normalize_job_ids_rejects_bad_ids(given: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match="job id") as caught:
        normalize_job_ids(given)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("given", "as_list"),
    [("1", False), (1, False), ("[weird]", False), (["1"], True), ("['1']", True), (("1", "2"), True)],
)
def test_job_ids_given_as_list(given: Any, as_list: bool) -> None:
    assert job_ids_given_as_list(given) is as_list


# ------------------------------------------------------------------------------------------------------
# Pure rules: rates and log lines


def test_progress_history_estimates_rows_per_second_and_eta_from_percent() -> None:
    history = ProgressHistory()
    assert history.rate().rows_per_second is None
    history.add(progress(percent=40, imported=0, total=1000), at=100.0)
    assert history.rate().eta_seconds is None  # one sample: nothing to estimate yet
    latest = progress(percent=50, imported=500, total=1000)
    history.add(latest, at=110.0)
    rate = history.rate(latest)
    assert rate.rows_per_second == pytest.approx(50.0)
    assert rate.eta_seconds == pytest.approx(50.0)  # 1 %/s, 50 % to go


def test_progress_history_falls_back_to_rows_and_restarts_when_the_job_goes_backwards() -> None:
    history = ProgressHistory()
    history.add(progress(percent=50, imported=100, total=1000), at=0.0)
    latest = progress(percent=50, imported=300, total=1000)
    history.add(latest, at=10.0)
    assert history.rate(latest).eta_seconds == pytest.approx(35.0)  # 700 rows at 20 rows/s
    history.add(progress(percent=10, imported=0, total=1000), at=20.0)  # went backwards: new history
    assert len(history) == 1
    history.add(progress(percent=12), at=15.0)  # out of order: ignored
    assert len(history) == 1


def test_progress_history_gives_no_eta_for_a_finished_or_stalled_job() -> None:
    history = ProgressHistory(max_samples=3)
    for at in range(5):
        history.add(progress(percent=60, imported=10, total=10), at=float(at))
    assert len(history) == 3
    assert history.rate(progress(percent=60, imported=10, total=10)).eta_seconds is None
    done = progress(state="Completed", percent=100, imported=10, total=10)
    history.add(done, at=10.0)
    assert history.rate(done).eta_seconds is None
    with pytest.raises(ValueError, match="at least 2"):
        ProgressHistory(max_samples=1)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.05, "0.05s"),
        (2.5, "2.5s"),
        (3.0, "3s"),
        (44.6, "45s"),
        (185, "3m05s"),
        (7380, "2h03m"),
        (273600, "3d04h"),
        (-1, "n/a"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_progress_line_shows_state_percent_rows_files_rate_and_eta() -> None:
    history = ProgressHistory()
    history.add(progress(percent=40, imported=0, total=100_000), at=0.0)
    latest = progress(
        percent=45,
        imported=12_000,
        total=100_000,
        details=[file_detail("[a.parquet]"), file_detail("[b.parquet]", "InProgress")] * 2,
    )
    history.add(latest, at=5.0)
    line = format_progress_line(latest, history.rate(latest))
    assert line == (
        "job 101 (collection 'books'): Importing 45% | rows 12,000/100,000 | files 2/4 | 2,400 rows/s"
        " | ETA 55s"
    )


def test_progress_line_before_an_estimate_and_after_the_end() -> None:
    first = format_progress_line(progress(state="Pending", percent=0))
    assert first.endswith("files n/a | rows/s n/a | ETA n/a")
    done = progress(
        state="Completed",
        percent=100,
        imported=10,
        total=10,
        create_time="2024-04-01T06:15:00Z",
        complete_time="2024-04-01T06:17:05Z",
    )
    assert format_progress_line(done).endswith("took 2m05s")
    failed = format_progress_line(progress(state="Failed", reason="bad file"))
    assert failed.endswith("reason: bad file")


def test_summary_line_for_several_jobs() -> None:
    latest = {
        "1": progress("1", "Completed", 100, 10, 10, details=[file_detail("a")]),
        "2": progress("2", "Importing", 50, 5, 10, details=[file_detail("b", "InProgress")]),
    }
    history = ProgressHistory()
    history.add(progress("2", percent=40, imported=0, total=10), at=0.0)
    history.add(latest["2"], at=5.0)
    line = format_summary_line(["1", "2", "3"], latest, {"2": history.rate(latest["2"])})
    assert line.startswith(
        "3 jobs: Completed 1, Importing 1, not seen yet 1 | rows 15/20 | files 1/2 | 1.00 rows/s"
    )
    assert line.endswith("ETA n/a")  # job 3 has no estimate yet
    line = format_summary_line(["1", "2"], latest, {"2": history.rate(latest["2"])})
    assert line.endswith("ETA 25s")


# ------------------------------------------------------------------------------------------------------
# Pure rules: outcomes


def test_tracker_success_when_every_job_completed() -> None:
    tracker = JobWaitTracker(["1", "2"])
    tracker.record_progress("1", progress("1", "Completed", 100, 10, 10), at=0)
    assert tracker.evaluate() is None
    assert tracker.pending_job_ids() == ["2"]
    tracker.record_progress("2", progress("2", "Completed", 100, 5, 5), at=0)
    result = tracker.evaluate()
    assert result is not None
    assert result.status is WaitStatus.SUCCESS
    assert result.message == "All 2 Milvus import jobs finished: 15 rows from 0 file(s)"
    assert [job.job_id for job in result.jobs] == ["1", "2"]
    assert tracker.pending_job_ids() == []


def test_tracker_fails_fast_on_the_first_failed_job_naming_files_and_reasons() -> None:
    tracker = JobWaitTracker(["1", "2"], conn_id="milvus_prod")
    tracker.record_progress("1", progress("1", "Importing"), at=0)
    tracker.record_progress(
        "2",
        progress(
            "2",
            "Failed",
            reason="failed to parse file",
            details=[file_detail("[a.parquet]"), file_detail("[b.parquet]", "Failed", "schema mismatch: id")],
        ),
        at=0,
    )
    result = tracker.evaluate()
    assert result is not None
    assert result.status is WaitStatus.FAILED
    assert result.message == (
        "1 of 2 Milvus import jobs failed [connection 'milvus_prod']: job 2 (collection 'books') failed: "
        "failed to parse file. Failed files (1): [b.parquet]: schema mismatch: id"
    )
    error = exception_for_result(result)
    assert isinstance(error, MilvusImportJobFailed)
    assert error.job_id == "2"
    assert error.collection_name == "books"
    assert error.failed_files == [("[b.parquet]", "schema mismatch: id")]
    assert str(error) == result.message


def test_failure_message_of_one_job_without_reasons() -> None:
    tracker = JobWaitTracker("7")
    tracker.record_progress("7", progress("7", "Failed", details=[file_detail("x.json", "Failed")]), at=0)
    result = tracker.evaluate()
    assert result is not None
    assert result.message == (
        "Milvus import job 7 (collection 'books') failed: the server gave no reason. "
        "Failed files (1): x.json: no reason given"
    )
    assert failed_files(result.jobs[0]) == [("x.json", "")]


def test_failure_message_caps_the_number_of_files() -> None:
    details = [file_detail(f"f{i}.json", "Failed", "bad") for i in range(25)]
    tracker = JobWaitTracker("7")
    tracker.record_progress("7", progress("7", "Failed", reason="bad files", details=details), at=0)
    result = tracker.evaluate()
    assert result is not None
    assert "Failed files (25): f0.json: bad;" in result.message
    assert "f19.json: bad; and 5 more" in result.message
    assert "f20.json" not in result.message
    error = exception_for_result(result)
    assert isinstance(error, MilvusImportJobFailed)
    assert len(error.failed_files) == 25


@pytest.mark.parametrize("accept", [False, True])
def test_uncommitted_is_success_only_when_accepted(accept: bool) -> None:
    tracker = JobWaitTracker("5", accept_uncommitted=accept)
    tracker.record_progress("5", progress("5", "Uncommitted", 99, 10, 10), at=0)
    result = tracker.evaluate()
    if accept:
        assert result is not None
        assert result.status is WaitStatus.SUCCESS
        assert "Uncommitted (accepted: accept_uncommitted=True" in result.message
    else:
        assert result is None
        assert tracker.pending_job_ids() == ["5"]


def test_unknown_state_is_an_error_once_it_persists() -> None:
    tracker = JobWaitTracker("5", max_consecutive_errors=3)
    unknown = progress("5", "None", 0, reason="unknown import job state")
    tracker.record_progress("5", unknown, at=0)
    tracker.record_progress("5", unknown, at=1)
    assert tracker.evaluate() is None
    tracker.record_progress("5", progress("5", "Importing"), at=2)  # a real state resets the count
    tracker.record_progress("5", unknown, at=3)
    tracker.record_progress("5", unknown, at=4)
    assert tracker.evaluate() is None
    tracker.record_progress("5", unknown, at=5)
    result = tracker.evaluate()
    assert result is not None
    assert result.status is WaitStatus.ERROR
    assert result.message == (
        "Milvus import job 5 (collection 'books') reported an unknown state 3 polls in a row "
        "(server said: unknown import job state); not treating it as success"
    )


def test_transient_errors_are_tolerated_for_the_error_tolerance_in_time_not_in_count() -> None:
    tracker = JobWaitTracker("5", error_tolerance=60, max_consecutive_errors=3)
    for at in range(0, 50, 5):  # ten failed polls in 45 s: more than max_consecutive_errors, less than 60 s
        tracker.record_error("5", MilvusImportServerError("HTTP 503 from http://h/describe for job 5"), at)
    assert tracker.evaluate() is None
    assert tracker.failing_for("5") == 45
    assert tracker.tolerance_left("5", 50) == 10
    tracker.record_progress("5", progress("5"), at=50)  # a good poll ends the run of failures
    assert tracker.consecutive_errors("5") == 0
    assert tracker.tolerance_left("5", 51) is None
    tracker.record_error("5", MilvusImportRateLimitError("HTTP 429", retry_after=1.0), 100)
    tracker.record_error("5", MilvusImportServerError("HTTP 502", endpoint="http://h:19530"), 159.5)
    assert tracker.evaluate() is None  # 59.5 s of failures: still tolerated
    assert tracker.record_error("5", MilvusImportServerError("HTTP 502 from http://h/describe"), 160) == 3
    result = tracker.evaluate()
    assert result is not None
    assert result.status is WaitStatus.ERROR
    assert result.message == (
        "Gave up waiting for Milvus import job 5 on http://h:19530: its polls have been failing for 1m00s "
        "(3 failed polls in a row; tolerance 1m00s, set by error_tolerance); "
        "last error: HTTP 502 from http://h/describe"
    )
    assert [job.job_id for job in result.jobs] == ["5"]  # the last progress seen is kept


def test_error_tolerance_defaults_to_ten_minutes_and_rejects_bad_values() -> None:
    from datetime import timedelta

    assert JobWaitTracker("1").error_tolerance == 600.0
    assert JobWaitTracker("1", error_tolerance=timedelta(minutes=2)).error_tolerance == 120.0
    for bad, error in ((0, ValueError), (-1, ValueError), (math.inf, ValueError), ("5", TypeError)):
        with pytest.raises(error, match="error_tolerance"):
            JobWaitTracker("1", error_tolerance=bad)


def test_non_transient_errors_end_the_wait_at_once() -> None:
    tracker = JobWaitTracker(["5", "6"])
    tracker.record_error(
        "6", MilvusImportError("import job does not exist, jobID=6 (describe)", job_id="6"), 0
    )
    result = tracker.evaluate()
    assert result is not None
    assert result.status is WaitStatus.ERROR
    assert (
        result.message == "Cannot wait for Milvus import job 6: import job does not exist, jobID=6 (describe)"
    )
    other = JobWaitTracker("5")
    other.record_error("5", KeyError("code"), 0)
    result = other.evaluate()
    assert result is not None
    assert result.message == "Cannot wait for Milvus import job 5: KeyError: 'code'"


def test_a_failed_job_wins_over_errors_of_other_jobs() -> None:
    tracker = JobWaitTracker(["5", "6"], error_tolerance=1)
    tracker.record_error("5", MilvusImportServerError("HTTP 500"), 0)
    tracker.record_error("5", MilvusImportServerError("HTTP 500"), 5)
    tracker.record_progress("6", progress("6", "Failed", reason="bad"), at=0)
    result = tracker.evaluate()
    assert result is not None
    assert result.status is WaitStatus.FAILED


def test_timeout_result_names_last_state_and_percent_of_each_unfinished_job() -> None:
    tracker = JobWaitTracker(["1", "2", "3"])
    tracker.record_progress("1", progress("1", "Completed", 100, 10, 10), at=0)
    tracker.record_progress("2", progress("2", "Importing", 45, 12_000, 100_000), at=0)
    result = tracker.timeout_result("2026-01-01T00:00:00+00:00")
    assert result.status is WaitStatus.TIMEOUT
    assert result.message == (
        "2 of 3 Milvus import jobs did not finish before the deadline (2026-01-01T00:00:00+00:00); "
        "job 2 (collection 'books'): last state Importing at 45% (rows 12,000/100,000, files n/a); "
        "job 3: never answered"
    )
    error = exception_for_result(result)
    assert isinstance(error, MilvusImportJobTimeout)


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_tracker_rejects_bad_limits(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="max_consecutive_errors"):
        JobWaitTracker("1", max_consecutive_errors=bad)


def test_wait_result_round_trips_through_json_and_rejects_foreign_payloads() -> None:
    tracker = JobWaitTracker(["1", "2"])
    tracker.record_progress(
        "1", progress("1", "Completed", 100, 3, 3, details=[file_detail("[a.json]")]), at=0
    )
    tracker.record_progress("2", progress("2", "Failed", reason="x"), at=0)
    result = tracker.evaluate()
    assert result is not None
    event = json.loads(json.dumps(result.to_event()))
    assert set(event) == {"status", "message", "job_ids", "jobs"}
    assert event["status"] == "failed"
    assert event["job_ids"] == ["1", "2"]
    assert event["jobs"][0]["details"][0]["files"] == ["a.json"]
    assert WaitResult.from_event(event) == result
    assert result.xcom_value(single=False) == event["jobs"]
    assert result.xcom_value(single=True) == event["jobs"][0]
    for payload, fragment in [
        (None, "not a mapping"),
        ({"status": "cancelled"}, "unexpected trigger event status 'cancelled'"),
        ({"status": "success", "jobs": "x"}, "must be lists"),
    ]:
        with pytest.raises(MilvusImportError, match=fragment):
            WaitResult.from_event(payload)


def test_the_event_is_version_1_and_a_payload_without_a_version_reads_as_version_1() -> None:
    tracker = JobWaitTracker("1")
    tracker.record_progress("1", progress("1", "Completed", 100, 3, 3), at=0)
    result = tracker.evaluate()
    assert result is not None
    event = result.to_event()
    assert EVENT_VERSION == 1
    assert "event_version" not in event, "version 1 is the payload of every release so far, without the key"
    assert event_version(event) == 1
    assert event_version({**event, "event_version": 2}) == 2
    assert event_version({**event, "event_version": "2"}) == 1
    # a later version's added fields are ignored, the rest reads as before
    assert WaitResult.from_event({**event, "event_version": 2, "new_field": [1]}) == result


class ListLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: Any, /, *args: Any) -> None:
        self.lines.append(("info", msg % args))

    def warning(self, msg: Any, /, *args: Any) -> None:
        self.lines.append(("warning", msg % args))


def test_poll_round_records_answers_logs_a_transient_failure_as_worded_and_evaluates() -> None:
    tracker = JobWaitTracker(["1", "2"], error_tolerance=60)
    log = ListLog()
    poll_round = PollRound(
        tracker, log, failure_wording=lambda failed: ("%s %d %s %s", *failed.counts()), hold_lines=True
    )
    failed = poll_round.record("1", MilvusImportServerError("503"), sent_at=0.0, answered_at=5.0)
    assert failed is not None
    assert failed.transient
    assert failed.failures == 1
    assert poll_round.record("2", progress("2", "Completed", 100, 3, 3), sent_at=0.0, answered_at=1.0) is None
    assert log.lines == [("warning", "1 1 0s 1m00s")], "progress lines are held until end()"
    assert poll_round.end() is None
    assert [level for level, _ in log.lines] == ["warning", "info", "info"]
    assert log.lines[1][1] == format_progress_line(progress("2", "Completed", 100, 3, 3))
    assert log.lines[2][1].startswith("2 jobs: not seen yet 1, Completed 1")
    # a non-transient error is not logged as a failure to wait out: it ends the wait
    quiet = PollRound(tracker, log, failure_wording=None)
    before = len(log.lines)
    assert quiet.record("1", MilvusImportError("denied"), sent_at=6.0, answered_at=6.0) is not None
    assert len(log.lines) == before
    result = quiet.end()
    assert result is not None
    assert result.status is WaitStatus.ERROR


def test_exception_for_result() -> None:
    base = {"message": "boom", "job_ids": ["1"], "jobs": []}
    assert exception_for_result(WaitResult.from_event({**base, "status": "success"})) is None
    error = exception_for_result(WaitResult.from_event({**base, "status": "error"}))
    assert type(error) is MilvusImportError
    assert error.job_id == "1"
    assert str(error) == "boom"


# ------------------------------------------------------------------------------------------------------
# Trigger: construction and serialization


def test_trigger_serializes_every_argument_and_rebuilds_through_airflows_serde() -> None:
    serialize, deserialize = serde()

    trigger = MilvusImportJobTrigger(
        ["9", 8, "9"],
        milvus_import_conn_id="milvus_prod",
        db_name="analytics",
        poll_interval=2,
        end_time=1_900_000_000.5,
        max_consecutive_errors=7,
        accept_uncommitted=True,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == TRIGGER_PATH
    assert kwargs == {
        "job_ids": ["9", "8"],
        "milvus_import_conn_id": "milvus_prod",
        "db_name": "analytics",
        "poll_interval": 2.0,
        "end_time": 1_900_000_000.5,
        "max_consecutive_errors": 7,
        "accept_uncommitted": True,
    }
    # What the triggerer stores (serde + JSON) and rebuilds: the same trigger, nothing lost.
    stored = json.loads(json.dumps(serialize(kwargs)))
    restored = deserialize(stored)
    assert isinstance(restored, dict)
    rebuilt = MilvusImportJobTrigger(**restored)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert repr(rebuilt).startswith(f"<{TRIGGER_PATH} job_ids=['9', '8']")


def test_trigger_defaults() -> None:
    _, kwargs = MilvusImportJobTrigger("1").serialize()
    assert kwargs == {
        "job_ids": ["1"],
        "milvus_import_conn_id": "milvus_import_default",
        "db_name": None,
        "poll_interval": 10.0,
        "end_time": None,
        "max_consecutive_errors": 5,
        "accept_uncommitted": False,
    }


def test_error_tolerance_travels_in_the_serialized_trigger_and_old_forms_get_the_default() -> None:
    from datetime import timedelta

    from tests.airflow_versions import serde

    serialize, deserialize = serde()
    trigger = MilvusImportJobTrigger("1", error_tolerance=timedelta(minutes=2))
    classpath, kwargs = trigger.serialize()
    assert kwargs["error_tolerance"] == 120.0
    rebuilt = MilvusImportJobTrigger(**deserialize(json.loads(json.dumps(serialize(kwargs)))))
    assert rebuilt.error_tolerance == 120.0
    assert rebuilt.serialize() == (classpath, kwargs)
    # what the previous version serialized (no error_tolerance, max_consecutive_errors 5): it resumes with
    # the 10-minute default, and max_consecutive_errors keeps its meaning for unknown states
    previous = {
        "job_ids": ["1"],
        "milvus_import_conn_id": "milvus_import_default",
        "db_name": None,
        "poll_interval": 10.0,
        "end_time": None,
        "max_consecutive_errors": 5,
        "accept_uncommitted": False,
    }
    resumed = MilvusImportJobTrigger(**previous)
    assert resumed.error_tolerance == 600.0
    assert resumed.max_consecutive_errors == 5
    assert resumed.serialize()[1] == previous


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"job_ids": "1", "error_tolerance": 0}, ValueError, "error_tolerance must be a positive"),
        ({"job_ids": "1", "error_tolerance": "10m"}, TypeError, "error_tolerance must be seconds"),
        ({"job_ids": []}, ValueError, "no import job id"),
        ({"job_ids": "1", "poll_interval": 0}, ValueError, "poll_interval must be a positive"),
        ({"job_ids": "1", "poll_interval": float("nan")}, ValueError, "poll_interval"),
        ({"job_ids": "1", "poll_interval": "5"}, TypeError, "poll_interval must be a number"),
        ({"job_ids": "1", "end_time": "tomorrow"}, ValueError, "end_time must be epoch seconds"),
        ({"job_ids": "1", "end_time": float("inf")}, ValueError, "end_time"),
        ({"job_ids": "1", "max_consecutive_errors": 0}, ValueError, "max_consecutive_errors"),
        ({"job_ids": "1", "milvus_import_conn_id": ""}, ValueError, "milvus_import_conn_id"),
    ],
)
def test_trigger_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        MilvusImportJobTrigger(**kwargs)


def test_trigger_module_does_not_import_the_http_clients_or_the_hook() -> None:
    import subprocess
    import sys

    code = (
        "import sys, airflow.triggers.base; before = set(sys.modules); "
        "import airflow_milvus_import.triggers.milvus_import, airflow_milvus_import.sensors.milvus_import; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in new if m.split('.')[0] in ('httpx', 'requests', 'tenacity') "
        "or m.startswith('airflow_milvus_import.hooks')))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


# ------------------------------------------------------------------------------------------------------
# Trigger: the real run() loop against exact fault sequences (pytest-httpserver on 127.0.0.1)

DESCRIBE = "/v2/vectordb/jobs/import/describe"


def wire_progress(job_id: str, state: str = "Importing", percent: int = 50, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "jobId": job_id,
        "collectionName": "books",
        "state": state,
        "progress": percent,
        "importedRows": 10 * percent,
        "totalRows": 1000,
        "completeTime": "",
        "details": [],
    }
    data.update(extra)
    return {"code": 0, "data": data}


class ScriptedServer:
    """Answers ``describe`` per job from a script of ``(status, body, headers)`` steps; the last repeats."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.scripts: dict[str, list[tuple[int, Any, dict[str, str]]]] = {}
        self.requests: list[tuple[float, str]] = []
        self.delay = 0.0
        server.expect_request(DESCRIBE, method="POST").respond_with_handler(self._answer)

    def script(self, job_id: str, *steps: tuple[int, Any] | tuple[int, Any, dict[str, str]]) -> None:
        self.scripts[job_id] = [(step[0], step[1], step[2] if len(step) > 2 else {}) for step in steps]

    def calls(self, job_id: str) -> list[float]:
        return [at for at, asked in self.requests if asked == job_id]

    def _answer(self, request: Any) -> Any:
        from werkzeug import Response

        job_id = str(json.loads(request.get_data() or b"{}").get("jobId"))
        self.requests.append((time.monotonic(), job_id))
        if self.delay:
            time.sleep(self.delay)
        steps = self.scripts[job_id]
        status, body, headers = steps.pop(0) if len(steps) > 1 else steps[0]
        text = body if isinstance(body, str) else json.dumps(body)
        return Response(text, status=status, headers=headers, content_type="application/json")


@pytest.fixture(scope="module")
def fault_http_server() -> Iterator[Any]:
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def scripted(fault_http_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """A scripted server behind the Airflow connection ``milvus_faults``."""
    fault_http_server.clear()
    connection = {"conn_type": "milvus_import", "host": fault_http_server.url_for("/").rstrip("/")}
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_FAULTS", json.dumps(connection))
    yield ScriptedServer(fault_http_server)
    fault_http_server.clear()


async def run_trigger(trigger: MilvusImportJobTrigger, limit: float = 60.0) -> dict[str, Any]:
    """Drive the trigger's real run() to its end; it must yield exactly one event."""

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    events = await asyncio.wait_for(collect(), timeout=limit)
    assert len(events) == 1, events
    payload: dict[str, Any] = events[0].payload
    required = {"status", "message", "job_ids", "jobs"}
    optional = {"error_type", "error_endpoint", "error_job_id", "error_code", "error_http_status"}
    assert required <= set(payload) <= required | optional
    return payload


def faults_trigger(job_ids: Any, **kwargs: Any) -> MilvusImportJobTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    return MilvusImportJobTrigger(job_ids, milvus_import_conn_id="milvus_faults", **kwargs)


SERVER_ERROR = (503, "<html><body>503 Service Unavailable</body></html>")


async def test_transient_errors_then_success(
    scripted: ScriptedServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_milvus_import.polling")
    scripted.script(
        "11",
        SERVER_ERROR,
        (502, "bad gateway"),
        (200, wire_progress("11")),
        SERVER_ERROR,
        (200, wire_progress("11", "Completed", 100, completeTime="2024-04-01T06:17:55Z")),
    )
    event = await run_trigger(faults_trigger("11"))
    assert event["status"] == "success"
    assert (
        event["message"] == "Milvus import job 11 (collection 'books') completed: 1,000 rows from 0 file(s)"
    )
    assert event["job_ids"] == ["11"]
    assert event["jobs"][0]["state"] == "Completed"
    assert event["jobs"][0]["complete_time"] == "2024-04-01T06:17:55Z"
    # two polls, each retried inside (the shared poller's retries, at the connection's default of 3): the
    # first poll succeeds at its third attempt, the second at its second; the wait saw no failed poll
    assert len(scripted.calls("11")) == 5
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "Poll of Milvus import job 11 failed" in line] == []
    retries = [r.getMessage() for r in caplog.records if "a poll failed" in r.getMessage()]
    assert [("retry 1 of 3" in line, "retry 2 of 3" in line) for line in retries] == [
        (True, False),
        (False, True),
        (True, False),
    ]


async def test_errors_past_the_limit_end_with_error(scripted: ScriptedServer) -> None:
    scripted.script("12", (200, wire_progress("12", percent=45)), SERVER_ERROR)
    started = time.monotonic()
    event = await run_trigger(faults_trigger("12", error_tolerance=1.0))
    took = time.monotonic() - started
    assert event["status"] == "error"
    assert event["message"].startswith(
        f"Gave up waiting for Milvus import job 12 on {scripted.server.url_for(DESCRIBE)} "
        "[connection 'milvus_faults']: its polls have been failing for "
    )
    assert "tolerance 1s, set by error_tolerance); last error: Milvus import job 12" in event["message"]
    assert "HTTP 503" in event["message"]
    # one good poll; a failed poll of four attempts (the connection's 3 retries, 1.75 s of backoff at
    # least); then, the tolerance being used up, one last poll without retries
    assert len(scripted.calls("12")) == 1 + 4 + 1
    # the first failed poll ends about 1-3.5 s in (its retries' backoff); the tolerance then runs 1 s, and
    # the last poll (its retries again) ends the wait
    assert took < 12
    assert event["jobs"][0]["progress"] == 45  # the last progress seen is still reported


async def test_rate_limit_waits_at_least_retry_after(scripted: ScriptedServer) -> None:
    rate_limited = (429, {"code": 429, "message": "rate limit exceeded"}, {"Retry-After": "1"})
    scripted.script("13", rate_limited, (200, wire_progress("13", "Completed", 100)))
    event = await run_trigger(faults_trigger("13"))
    assert event["status"] == "success"
    first, second = scripted.calls("13")
    assert second - first >= 0.9  # poll_interval is 0.05 s: the gap is the server's Retry-After


async def test_an_absurd_retry_after_is_capped_by_the_deadline(scripted: ScriptedServer) -> None:
    scripted.script("16", (429, {"code": 429, "message": "slow down"}, {"Retry-After": "3600"}))
    started = time.monotonic()
    event = await run_trigger(faults_trigger("16", end_time=time.time() + 1.0))
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 10  # it woke at the deadline, not after an hour
    assert len(scripted.calls("16")) == 2


def test_default_connection_matches_the_hook() -> None:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from airflow_milvus_import.sensors import milvus_import as sensors
    from airflow_milvus_import.triggers import milvus_import as triggers

    assert triggers.DEFAULT_CONN_ID == sensors.DEFAULT_CONN_ID == MilvusImportHook.default_conn_name


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ((401, {"code": 1800, "message": "user hasn't authenticated"}), "authenticat"),
        (
            (200, {"code": 2100, "message": "import job does not exist, jobID=14: importing data failed"}),
            "does not exist",
        ),
        ((200, "<html>not json</html>"), "Cannot wait for Milvus import job 14"),
    ],
)
async def test_non_transient_errors_end_the_wait_after_one_request(
    scripted: ScriptedServer, answer: tuple[int, Any], fragment: str
) -> None:
    scripted.script("14", answer)
    event = await run_trigger(faults_trigger("14", max_consecutive_errors=5))
    assert event["status"] == "error"
    assert event["message"].startswith("Cannot wait for Milvus import job 14:")
    assert fragment in event["message"]
    assert len(scripted.calls("14")) == 1
    assert event["jobs"] == []


async def test_unknown_state_ends_with_error_instead_of_waiting_forever(scripted: ScriptedServer) -> None:
    scripted.script("15", (200, wire_progress("15", "None", 0, reason="unknown import job state")))
    event = await run_trigger(faults_trigger("15", max_consecutive_errors=3))
    assert event["status"] == "error"
    assert (
        "reported an unknown state 3 polls in a row (server said: unknown import job state)"
        in event["message"]
    )
    assert len(scripted.calls("15")) == 3


async def test_several_jobs_fail_fast_on_the_first_failure(scripted: ScriptedServer) -> None:
    scripted.script("21", (200, wire_progress("21", "Importing", 60)))
    failed_detail = {"fileName": "[b.parquet]", "state": "Failed", "progress": 0, "reason": "schema mismatch"}
    scripted.script(
        "22",
        (200, wire_progress("22", "Importing", 20)),
        (200, wire_progress("22", "Failed", 20, reason="bad file", details=[failed_detail])),
    )
    scripted.script("23", (200, wire_progress("23", "Completed", 100)))
    event = await run_trigger(faults_trigger(["21", "22", "23", "22"]))
    assert event["status"] == "failed"
    assert event["job_ids"] == ["21", "22", "23"]
    assert [job["state"] for job in event["jobs"]] == ["Importing", "Failed", "Completed"]
    assert event["message"] == (
        "1 of 3 Milvus import jobs failed [connection 'milvus_faults']: job 22 (collection 'books') failed: "
        "bad file. Failed files (1): [b.parquet]: schema mismatch"
    )
    assert len(scripted.calls("23")) == 1  # a finished job is not polled again
    assert len(scripted.calls("21")) == 2  # the failure did not wait for job 21


async def test_deadline_is_never_slept_past(scripted: ScriptedServer) -> None:
    scripted.script("31", (200, wire_progress("31", "Importing", 45)))
    started = time.monotonic()
    event = await run_trigger(faults_trigger("31", poll_interval=30, end_time=time.time() + 1.0))
    elapsed = time.monotonic() - started
    assert event["status"] == "timeout"
    assert "did not finish before the deadline" in event["message"]
    assert (
        "job 31 (collection 'books'): last state Importing at 45% (rows 450/1,000, files n/a)"
        in event["message"]
    )
    assert elapsed < 15  # poll_interval is 30 s: it woke at the deadline, not after a full interval
    assert len(scripted.calls("31")) == 2  # the first poll, and one last look at the deadline


async def test_a_poll_hanging_at_the_deadline_is_abandoned(scripted: ScriptedServer) -> None:
    scripted.script("32", (200, wire_progress("32", "Importing", 45)))
    scripted.delay = 4.0  # the server answers slower than the deadline + grace allows
    started = time.monotonic()
    event = await run_trigger(faults_trigger("32", end_time=time.time() + 0.3))
    assert time.monotonic() - started < 4.0
    assert event["status"] == "timeout"
    assert "a poll was still under way" in event["message"]
    assert "job 32: never answered" in event["message"]


async def test_a_deadline_already_past_still_looks_once(scripted: ScriptedServer) -> None:
    scripted.script("33", (200, wire_progress("33", "Completed", 100)))
    event = await run_trigger(faults_trigger("33", end_time=time.time() - 60))
    assert event["status"] == "success"  # it finished while nobody was looking: that is success


async def test_missing_connection_is_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MILVUS_NOWHERE", raising=False)
    event = await run_trigger(
        MilvusImportJobTrigger("1", milvus_import_conn_id="milvus_nowhere", poll_interval=0.05)
    )
    assert event["status"] == "error"
    assert "milvus_nowhere" in event["message"]


async def test_on_kill_leaves_the_job_alone(
    scripted: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.script("41", (200, wire_progress("41")))
    await faults_trigger("41").on_kill()
    assert scripted.requests == []  # no abort, no call at all
    assert "Not cancelling Milvus import job(s) 41" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------------
# Trigger: the real run() loop against the local import server (real jobs, chosen outcomes)

COLLECTION = "trigger_books"


class LocalJobs:
    """Creates real import jobs on the local server (a 5-row JSON file) through the hook."""

    def __init__(self, server: Any, conn_id: str) -> None:
        self.server = server
        self.conn_id = conn_id

    def create(self, duration: float, fail: str | None = None) -> str:
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

        options = {"local.duration": str(duration)}
        if fail is not None:
            options["local.fail"] = fail
        with MilvusImportHook(self.conn_id) as hook:
            return hook.create_import_job(COLLECTION, [["trigger_rows.json"]], options=options)

    def trigger(self, job_ids: Any, **kwargs: Any) -> MilvusImportJobTrigger:
        kwargs.setdefault("poll_interval", 0.3)
        return MilvusImportJobTrigger(job_ids, milvus_import_conn_id=self.conn_id, **kwargs)


@pytest.fixture(scope="module")
def local_jobs(local_server: Any) -> Iterator[LocalJobs]:
    prepare_rows(local_server, COLLECTION, "trigger_rows.json")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW_CONN_MILVUS_LOCAL", json.dumps({"conn_type": "milvus_import", "host": local_server.url})
        )
        yield LocalJobs(local_server, "milvus_local")


@pytest.mark.integration
async def test_local_success_logs_one_readable_line_per_poll(
    local_jobs: LocalJobs, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = local_jobs.create(duration=1.5)
    event = await run_trigger(local_jobs.trigger(job_id, end_time=time.time() + 60))
    assert event["status"] == "success", event["message"]
    assert event["job_ids"] == [job_id]
    (job,) = event["jobs"]
    assert job["state"] == "Completed"
    assert job["imported_rows"] == 5
    assert job["collection_name"] == COLLECTION
    assert job["details"][0]["files"] == ["trigger_rows.json"]
    marker = f"job {job_id} (collection '{COLLECTION}'): "  # the start of a progress line
    lines = [line for line in capsys.readouterr().out.splitlines() if marker in line]
    assert len(lines) >= 3
    assert all(" | rows " in line and " | files " in line and "rows/s" in line for line in lines)
    assert any(
        " | ETA " in line and "ETA n/a" not in line for line in lines
    )  # estimated once two polls exist
    assert "Completed 100% | rows 5/5 | files 1/1" in lines[-1]


@pytest.mark.integration
async def test_local_failure_carries_job_and_file_reasons(local_jobs: LocalJobs) -> None:
    job_id = local_jobs.create(duration=0.5, fail="row 3: field 'vector' has 3 values, the schema wants 4")
    event = await run_trigger(local_jobs.trigger(job_id))
    assert event["status"] == "failed"
    assert event["message"] == (
        f"Milvus import job {job_id} (collection '{COLLECTION}') failed: row 3: field 'vector' has 3 values, "
        "the schema wants 4. Failed files (1): [trigger_rows.json]: row 3: field 'vector' has 3 values, "
        "the schema wants 4 [connection 'milvus_local']"
    )
    assert event["jobs"][0]["state"] == "Failed"


@pytest.mark.integration
async def test_local_timeout_reports_last_state_and_percent(local_jobs: LocalJobs) -> None:
    job_id = local_jobs.create(duration=60)
    event = await run_trigger(local_jobs.trigger(job_id, end_time=time.time() + 1.0))
    assert event["status"] == "timeout"
    assert event["message"].startswith("Milvus import job did not finish before the deadline (")
    state = event["jobs"][0]["state"]
    assert state in ("Pending", "Importing")
    assert (
        f"job {job_id} (collection '{COLLECTION}'): last state {state} at {event['jobs'][0]['progress']}%"
        in (event["message"])
    )


@pytest.mark.integration
async def test_local_several_jobs_fail_fast(local_jobs: LocalJobs) -> None:
    slow, failing = local_jobs.create(duration=20), local_jobs.create(duration=0.5, fail="bad file")
    started = time.monotonic()
    event = await run_trigger(local_jobs.trigger([slow, failing], end_time=time.time() + 60))
    assert time.monotonic() - started < 15  # it did not wait for the 20 s job
    assert event["status"] == "failed"
    assert event["message"].startswith(
        f"1 of 2 Milvus import jobs failed [connection 'milvus_local']: job {failing}"
    )
    assert [job["state"] for job in event["jobs"]][1] == "Failed"
    assert event["jobs"][0]["state"] in ("Pending", "Importing")


@pytest.mark.integration
async def test_local_several_jobs_succeed_together(local_jobs: LocalJobs) -> None:
    first, second = local_jobs.create(duration=0.5), local_jobs.create(duration=1.5)
    event = await run_trigger(local_jobs.trigger([first, second, first]))
    assert event["status"] == "success"
    assert event["job_ids"] == [first, second]
    assert [job["state"] for job in event["jobs"]] == ["Completed", "Completed"]
    assert event["message"] == "All 2 Milvus import jobs finished: 10 rows from 2 file(s)"


def rebuild(trigger: MilvusImportJobTrigger) -> MilvusImportJobTrigger:
    """What a triggerer restart does: store the serialized kwargs (serde, JSON), import the class, rebuild."""
    serialize, deserialize = serde()

    classpath, kwargs = trigger.serialize()
    stored = json.dumps(serialize(kwargs))
    restored = deserialize(json.loads(stored))
    assert isinstance(restored, dict)
    rebuilt: MilvusImportJobTrigger = import_string(classpath)(**restored)
    return rebuilt


async def run_until_polled(trigger: MilvusImportJobTrigger, server: Any, polls: int) -> None:
    """Run the trigger until the server has answered it ``polls`` times, then cancel it (a triggerer dies)."""
    server.reset_stats()
    task = asyncio.ensure_future(run_trigger(trigger))
    deadline = time.monotonic() + 20
    while sum(server.stats.get("requests", {}).values()) < polls and time.monotonic() < deadline:
        assert not task.done(), "the trigger ended before it was cut off"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.integration
async def test_restart_from_serialize_mid_wait_resumes_the_same_wait(local_jobs: LocalJobs) -> None:
    job_id = local_jobs.create(duration=2.5)
    first = local_jobs.trigger(job_id, end_time=time.time() + 60, max_consecutive_errors=4)
    await run_until_polled(first, local_jobs.server, polls=2)
    second = rebuild(first)
    assert second.serialize() == first.serialize()  # same job, deadline, limits: nothing lost
    event = await run_trigger(second)
    assert event["status"] == "success"
    assert event["jobs"][0]["state"] == "Completed"


@pytest.mark.integration
async def test_restart_after_the_deadline_times_out_at_once(local_jobs: LocalJobs) -> None:
    job_id = local_jobs.create(duration=60)
    first = local_jobs.trigger(job_id, end_time=time.time() + 1.0)
    await run_until_polled(first, local_jobs.server, polls=1)
    await asyncio.sleep(1.2)  # the triggerer was down past the deadline
    started = time.monotonic()
    event = await run_trigger(rebuild(first))
    assert event["status"] == "timeout"  # the deadline survived the restart: no fresh timeout
    assert time.monotonic() - started < 10


@pytest.mark.integration
async def test_zilliz_cloud_flavour(
    local_server: Any, local_jobs: LocalJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = {
        "conn_type": "milvus_import",
        "host": local_server.cloud_url,
        "extra": {"cluster_id": local_server.cluster_id},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_CLOUD", json.dumps(connection))
    cloud = LocalJobs(local_server, "milvus_cloud")
    job_id = cloud.create(duration=1.0)
    assert job_id.startswith("job-")
    event = await run_trigger(cloud.trigger(job_id))
    assert event["status"] == "success"
    assert event["jobs"][0]["job_id"] == job_id


# ------------------------------------------------------------------------------------------------------
# Issue 6: polling that follows the job (max_poll_interval), abort_on_kill


def test_new_arguments_serialize_only_when_set_and_round_trip() -> None:
    serialize, deserialize = serde()

    trigger = MilvusImportJobTrigger(
        "9", poll_interval=2, max_poll_interval=120, abort_on_kill=True, end_time=1_900_000_000.0
    )
    classpath, kwargs = trigger.serialize()
    assert kwargs["max_poll_interval"] == 120.0
    assert kwargs["abort_on_kill"] is True
    restored = deserialize(json.loads(json.dumps(serialize(kwargs))))
    assert isinstance(restored, dict)
    rebuilt = MilvusImportJobTrigger(**restored)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert (rebuilt.max_poll_interval, rebuilt.abort_on_kill) == (120.0, True)
    # Unset, they leave the serialized form as it was (a triggerer on an older version can rebuild it).
    assert set(MilvusImportJobTrigger("9").serialize()[1]) == {
        "job_ids",
        "milvus_import_conn_id",
        "db_name",
        "poll_interval",
        "end_time",
        "max_consecutive_errors",
        "accept_uncommitted",
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"poll_interval": 10, "max_poll_interval": 5}, ValueError, "at least poll_interval"),
        ({"max_poll_interval": float("inf")}, ValueError, "max_poll_interval"),
        ({"max_poll_interval": "60"}, TypeError, "max_poll_interval must be a number"),
        ({"max_poll_interval": True}, TypeError, "max_poll_interval must be a number"),
    ],
)
def test_max_poll_interval_is_checked(kwargs: dict[str, Any], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        MilvusImportJobTrigger("1", **kwargs)


def test_next_poll_delay_follows_the_job_within_the_bounds() -> None:
    from airflow_milvus_import.triggers.milvus_import import next_poll_delay

    # fixed interval unless max_poll_interval is set
    assert next_poll_delay(10, etas=[3600]) == (10, False)
    # a quarter of the estimated time left, between the bounds
    assert next_poll_delay(10, max_poll_interval=300, etas=[400]) == (100, False)
    assert next_poll_delay(10, max_poll_interval=300, etas=[4000]) == (300, False)
    assert next_poll_delay(10, max_poll_interval=300, etas=[20]) == (10, False)
    # the job that ends first decides; a job without an estimate keeps the user's interval
    assert next_poll_delay(10, max_poll_interval=300, etas=[4000, 200]) == (50, False)
    assert next_poll_delay(10, max_poll_interval=300, etas=[4000, None]) == (10, False)
    assert next_poll_delay(10, max_poll_interval=300, etas=[]) == (10, False)
    # a longer Retry-After wins and is not to be shortened
    assert next_poll_delay(10, max_poll_interval=300, etas=[400], retry_after=150) == (150, True)
    assert next_poll_delay(10, max_poll_interval=300, etas=[4000], retry_after=150) == (300, False)
    # never past the deadline: the last look is at the deadline itself
    assert next_poll_delay(10, max_poll_interval=300, etas=[4000], remaining=42) == (42, True)
    assert next_poll_delay(10, remaining=-1) == (0.0, True)


@pytest.mark.integration
async def test_max_poll_interval_polls_a_long_job_less_often(local_jobs: LocalJobs) -> None:
    job_id = local_jobs.create(duration=6.0)
    trigger = local_jobs.trigger(job_id, poll_interval=0.1, max_poll_interval=2.0, end_time=time.time() + 60)
    local_jobs.server.reset_stats()
    event = await run_trigger(trigger)
    assert event["status"] == "success"
    polls = local_jobs.server.stats["requests"].get("/v2/vectordb/jobs/import/describe", 0)
    assert polls < 30  # every 0.1 s for ~6 s would be ~60


def two_phase_job(local_jobs: LocalJobs) -> str:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    with MilvusImportHook(local_jobs.conn_id) as hook:
        return hook.create_import_job(
            COLLECTION, [["trigger_rows.json"]], options={"auto_commit": "false", "local.duration": "60"}
        )


def describe_now(local_jobs: LocalJobs, job_id: str) -> ImportJobProgress:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    with MilvusImportHook(local_jobs.conn_id) as hook:
        return hook.get_import_progress(job_id)


@pytest.mark.integration
async def test_on_kill_with_abort_on_kill_aborts_the_unfinished_job(
    local_jobs: LocalJobs, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = two_phase_job(local_jobs)
    trigger = local_jobs.trigger(job_id, abort_on_kill=True, end_time=time.time() + 60)
    await run_until_polled(trigger, local_jobs.server, polls=1)  # deferred, then the user kills the task
    await trigger.on_kill()
    progress = describe_now(local_jobs, job_id)
    assert progress.state.value == "Failed"
    assert "abort" in progress.reason
    out = capsys.readouterr().out
    assert f"aborting Milvus import job(s) {job_id} (abort_on_kill=True)" in out
    assert f"aborted Milvus import job {job_id}" in out


@pytest.mark.integration
async def test_on_kill_does_not_abort_jobs_that_already_ended(
    local_jobs: LocalJobs, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = local_jobs.create(duration=0.3)
    trigger = local_jobs.trigger(job_id, abort_on_kill=True)
    assert (await run_trigger(trigger))["status"] == "success"
    local_jobs.server.reset_stats()
    await trigger.on_kill()
    assert "/v2/vectordb/jobs/import/abort" not in local_jobs.server.stats["requests"]
    assert f"job(s) {job_id} already ended; nothing to abort" in capsys.readouterr().out


async def test_on_kill_logs_an_abort_that_fails_and_does_not_raise(
    scripted: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # The scripted server has no abort route (404 page): the abort fails, on_kill says so and returns.
    scripted.server.expect_request("/v2/vectordb/jobs/import/abort", method="POST").respond_with_data(
        "404 page not found", status=404, content_type="text/plain"
    )
    await faults_trigger(["51", "52"], abort_on_kill=True).on_kill()
    out = capsys.readouterr().out
    assert "could not abort Milvus import job 51" in out
    assert "could not abort Milvus import job 52" in out
    assert "no such route" in out
