"""models.py, tested directly: every variant of docs/milvus-import-api.md normalised into the same records."""

from __future__ import annotations

import json
import pickle

import pendulum
import pytest

from airflow_milvus_import.exceptions import MilvusImportJobFailed, MilvusImportRateLimitError
from airflow_milvus_import.models import (
    ImportFileProgress,
    ImportFileState,
    ImportJobProgress,
    ImportJobState,
    ImportJobSummary,
    parse_job_id,
    parse_time,
    split_file_name,
)

MILVUS_DESCRIBE = {
    "jobId": "448761313698322011",
    "collectionName": "docs",
    "state": "Importing",
    "progress": 85,
    "importedRows": 1000,
    "totalRows": 1000,
    "fileSize": 3072,
    "completeTime": "",
    "createTime": "2024-04-01T06:10:00Z",
    "details": [
        {
            "fileName": "[a.parquet]",
            "fileSize": 1024,
            "state": "Completed",
            "progress": 100,
            "importedRows": 500,
            "totalRows": 500,
            "completeTime": "2024-04-01T06:17:55Z",
        },
        {
            "fileName": "[id.npy vec.npy]",
            "fileSize": 2048,
            "state": "InProgress",
            "progress": 80,
            "importedRows": 500,
            "totalRows": 500,
            "completeTime": "",
        },
    ],
}

ZILLIZ_DESCRIBE = {
    "jobId": "job-01fa0e5d42cjxudhpuehyp",
    "collectionName": "docs",
    "fileName": "s3://bucket/a.parquet",
    "fileSize": 1024,
    "state": "Completed",
    "progress": 100,
    "completeTime": "2024-04-01T06:17:55Z",
    "reason": "",
    "totalRows": 10,
    "importedRows": 10,
    "details": [
        {
            "fileName": "s3://bucket/a.parquet",
            "fileSize": 1024,
            "state": "Completed",
            "progress": 100,
            "completeTime": "2024-04-01T06:17:55Z",
            "reason": "",
            "totalRows": 10,
            "importedRows": 10,
        },
    ],
}


class TestStates:
    @pytest.mark.parametrize(
        ("wire", "state"),
        [
            ("Pending", ImportJobState.PENDING),
            ("Importing", ImportJobState.IMPORTING),
            ("InProgress", ImportJobState.IMPORTING),
            ("Uncommitted", ImportJobState.UNCOMMITTED),
            ("Committing", ImportJobState.COMMITTING),
            ("Completed", ImportJobState.COMPLETED),
            ("Failed", ImportJobState.FAILED),
            ("ImportRunning", ImportJobState.IMPORTING),
            ("ImportCompleted", ImportJobState.COMPLETED),
            ("ImportFailed", ImportJobState.FAILED),
            ("None", ImportJobState.UNKNOWN),
            ("Cancelled", ImportJobState.UNKNOWN),
            (None, ImportJobState.UNKNOWN),
            (3, ImportJobState.UNKNOWN),
            (" completed ", ImportJobState.COMPLETED),
        ],
    )
    def test_job_states(self, wire: object, state: ImportJobState) -> None:
        assert ImportJobState.from_wire(wire) is state

    def test_only_completed_and_failed_are_terminal(self) -> None:
        assert {state for state in ImportJobState if state.is_terminal} == {
            ImportJobState.COMPLETED,
            ImportJobState.FAILED,
        }
        assert ImportJobState.COMPLETED.is_success
        assert not ImportJobState.UNKNOWN.is_success
        assert ImportJobState.FAILED.is_failure
        assert not ImportJobState.UNCOMMITTED.is_failure
        assert str(ImportJobState.IMPORTING) == "Importing"

    @pytest.mark.parametrize(
        ("wire", "state"),
        [
            ("InProgress", ImportFileState.IN_PROGRESS),
            ("Importing", ImportFileState.IN_PROGRESS),
            ("Pending", ImportFileState.PENDING),
            ("Completed", ImportFileState.COMPLETED),
            ("Failed", ImportFileState.FAILED),
            ("None", ImportFileState.UNKNOWN),
            (None, ImportFileState.UNKNOWN),
            ("Retry", ImportFileState.RETRY),
            ("Throttled", ImportFileState.UNKNOWN),
        ],
    )
    def test_file_states(self, wire: object, state: ImportFileState) -> None:
        assert ImportFileState.from_wire(wire) is state

    def test_retry_and_unknown_file_states_are_shown_by_name_and_never_end(self) -> None:
        for word in ("Retry", "Throttled"):
            detail = ImportFileProgress.from_wire({"fileName": "[a.parquet]", "state": word})
            assert not detail.state.is_terminal
            assert detail.state_label == word
            assert detail.to_dict()["state"] == word
            assert ImportFileProgress.from_dict(detail.to_dict()).state_label == word
        assert ImportFileProgress.from_wire({"fileName": "x"}).state_label == "None"


class TestHelpers:
    @pytest.mark.parametrize(
        ("wire", "expected"),
        [
            ("448761313698322011", "448761313698322011"),
            (448761313698322011, "448761313698322011"),
            (12.0, "12"),
            (" job-1 ", "job-1"),
            ("", None),
            (None, None),
            (True, None),
            (1.5, None),
            ([], None),
        ],
    )
    def test_parse_job_id(self, wire: object, expected: str | None) -> None:
        assert parse_job_id(wire) == expected

    def test_parse_time(self) -> None:
        moment = parse_time("2024-04-01T06:17:55Z")
        assert moment == pendulum.datetime(2024, 4, 1, 6, 17, 55, tz="UTC")
        assert parse_time("") is None
        assert parse_time(None) is None
        assert parse_time("not a time") is None
        assert parse_time(1711952275) == moment
        assert parse_time(1711952275000) == moment
        assert parse_time(0) is None
        assert parse_time(True) is None

    @pytest.mark.parametrize(
        ("wire", "files"),
        [
            ("[a.parquet]", ("a.parquet",)),
            ("[id.npy vec.npy]", ("id.npy", "vec.npy")),
            ("s3://b/a.parquet", ("s3://b/a.parquet",)),
            ("", ()),
            (None, ()),
            (["x", "y"], ("x", "y")),
            ("[]", ()),
            # Milvus 2.4.0-2.4.4: the ImportFile message in protobuf text (the Milvus 2.4 docs' example)
            (
                'id:449839014328146740 paths:"/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet"',
                ("/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet",),
            ),
            ('id:1  paths:"c/id.npy"  paths:"c/vec.npy"', ("c/id.npy", "c/vec.npy")),
            ('id:2 paths:"with space/1.parquet"', ("with space/1.parquet",)),
            ('id:3 paths:"q\\"uote\\\\s\\303\\251.json"', ('q"uote\\sé.json',)),
            ("id.npy", ("id.npy",)),
            ("id:x paths:1", ("id:x paths:1",)),
        ],
    )
    def test_split_file_name(self, wire: object, files: tuple[str, ...]) -> None:
        assert split_file_name(wire) == files

    def test_protobuf_text_file_names_are_shown_in_the_later_form(self) -> None:
        detail = ImportFileProgress.from_wire(
            {"fileName": 'id:449839014328146740 paths:"/8ca4/1.parquet"', "state": "Completed"}
        )
        assert (detail.file_name, detail.files) == ("[/8ca4/1.parquet]", ("/8ca4/1.parquet",))
        assert ImportFileProgress.from_wire({"fileName": "[a b]"}).file_name == "[a b]"


class TestProgress:
    def test_milvus_describe(self) -> None:
        progress = ImportJobProgress.from_wire(MILVUS_DESCRIBE)
        assert progress.job_id == "448761313698322011"
        assert progress.state is ImportJobState.IMPORTING
        assert not progress.state.is_terminal
        assert (progress.progress, progress.imported_rows, progress.total_rows, progress.file_size) == (
            85,
            1000,
            1000,
            3072,
        )
        assert progress.reason == ""
        assert progress.complete_time is None
        assert progress.create_time == pendulum.datetime(2024, 4, 1, 6, 10, tz="UTC")
        first, second = progress.details
        assert first.files == ("a.parquet",)
        assert first.state is ImportFileState.COMPLETED
        assert first.complete_time == pendulum.datetime(2024, 4, 1, 6, 17, 55, tz="UTC")
        assert second.files == ("id.npy", "vec.npy")
        assert second.state is ImportFileState.IN_PROGRESS
        assert progress.completed_files == 1
        assert progress.failed_files == []

    def test_all_files_completed_is_not_job_completion(self) -> None:
        data = dict(
            MILVUS_DESCRIBE,
            details=[dict(detail, state="Completed", progress=100) for detail in MILVUS_DESCRIBE["details"]],
        )  # type: ignore[attr-defined]
        progress = ImportJobProgress.from_wire(data)
        assert progress.completed_files == 2
        assert progress.state is ImportJobState.IMPORTING

    def test_zilliz_describe(self) -> None:
        progress = ImportJobProgress.from_wire(ZILLIZ_DESCRIBE)
        assert progress.job_id == "job-01fa0e5d42cjxudhpuehyp"
        assert progress.state is ImportJobState.COMPLETED
        assert progress.state.is_success
        assert progress.reason == ""
        assert len(progress.details) == 1
        assert progress.details[0].files == ("s3://bucket/a.parquet",)

    def test_zilliz_top_level_file_name_without_details(self) -> None:
        data = {key: value for key, value in ZILLIZ_DESCRIBE.items() if key != "details"}
        progress = ImportJobProgress.from_wire(data)
        assert [detail.file_name for detail in progress.details] == ["s3://bucket/a.parquet"]

    def test_legacy_code_200_jobID_and_numbers(self) -> None:
        progress = ImportJobProgress.from_wire(
            {
                "jobID": 448761313698322011,
                "state": "Failed",
                "reason": "file a.parquet: schema mismatch",
                "progress": "40",
            }
        )
        assert progress.job_id == "448761313698322011"
        assert progress.state is ImportJobState.FAILED
        assert progress.reason == "file a.parquet: schema mismatch"
        assert progress.progress == 40

    @pytest.mark.parametrize("reason", [{}, {"reason": ""}, {"reason": None}, {"errorMessage": None}])
    def test_missing_reasons_are_empty(self, reason: dict[str, object]) -> None:
        assert ImportJobProgress.from_wire({"jobId": "1", **reason}).reason == ""

    def test_error_message_of_the_legacy_api(self) -> None:
        progress = ImportJobProgress.from_wire(
            {"jobId": "1", "state": "ImportFailed", "errorMessage": "bad", "readyPercentage": 0.25}
        )
        assert (progress.state, progress.reason, progress.progress) == (ImportJobState.FAILED, "bad", 25)

    @pytest.mark.parametrize(("value", "expected"), [(150, 100), (-3, 0), ("x", 0), (None, 0), (99.6, 100)])
    def test_progress_is_clamped(self, value: object, expected: int) -> None:
        assert ImportJobProgress.from_wire({"jobId": "1", "progress": value}).progress == expected

    def test_job_id_asked_for_is_used_when_the_answer_has_none(self) -> None:
        assert ImportJobProgress.from_wire({"state": "Pending"}, job_id="7").job_id == "7"

    def test_unknown_state_reason(self) -> None:
        progress = ImportJobProgress.from_wire(
            {"jobId": "1", "state": "None", "reason": "unknown import job state"}
        )
        assert progress.state is ImportJobState.UNKNOWN
        assert not progress.state.is_terminal

    def test_failed_files(self) -> None:
        data = dict(
            MILVUS_DESCRIBE,
            state="Failed",
            details=[
                {"fileName": "[a.parquet]", "state": "Failed", "reason": "row 3: dim mismatch"},
                {"fileName": "[b.parquet]", "state": "Completed"},
            ],
        )
        progress = ImportJobProgress.from_wire(data)
        assert [(f.file_name, f.reason) for f in progress.failed_files] == [
            ("[a.parquet]", "row 3: dim mismatch")
        ]

    def test_garbage_details_are_ignored(self) -> None:
        assert ImportJobProgress.from_wire({"jobId": "1", "details": "nope"}).details == ()
        assert (
            len(ImportJobProgress.from_wire({"jobId": "1", "details": [1, {"fileName": "a"}]}).details) == 1
        )

    def test_to_dict_is_json_safe_and_round_trips(self) -> None:
        progress = ImportJobProgress.from_wire(MILVUS_DESCRIBE)
        data = progress.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["state"] == "Importing"
        assert data["details"][0]["files"] == ["a.parquet"]
        assert data["create_time"] == "2024-04-01T06:10:00Z"
        assert ImportJobProgress.from_dict(data) == progress

    def test_file_round_trip(self) -> None:
        detail = ImportFileProgress.from_wire(MILVUS_DESCRIBE["details"][0])  # type: ignore[index]
        assert ImportFileProgress.from_dict(detail.to_dict()) == detail


class TestSummary:
    def test_milvus_record(self) -> None:
        summary = ImportJobSummary.from_wire(
            {"jobId": "1", "collectionName": "docs", "state": "Importing", "progress": 50}
        )
        assert summary == ImportJobSummary("1", "docs", ImportJobState.IMPORTING, 50, "")
        assert summary.to_dict() == {
            "job_id": "1",
            "collection_name": "docs",
            "state": "Importing",
            "progress": 50,
            "reason": "",
        }

    def test_zilliz_record_without_progress(self) -> None:
        summary = ImportJobSummary.from_wire(
            {"jobId": "job-1", "collectionName": "docs", "state": "InProgress"}
        )
        assert summary.progress is None
        assert summary.state is ImportJobState.IMPORTING

    def test_legacy_record(self) -> None:
        summary = ImportJobSummary.from_wire({"jobID": 5, "state": "Failed", "reason": "bad"})
        assert (summary.job_id, summary.state, summary.reason) == ("5", ImportJobState.FAILED, "bad")


class TestExceptionsSurvivePickling:
    def test_rate_limit(self) -> None:
        error = MilvusImportRateLimitError(
            "slow down", retry_after=2.0, endpoint="POST x", job_id="1", http_status=429
        )
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), str(copy), copy.retry_after, copy.job_id, copy.http_status) == (
            MilvusImportRateLimitError,
            "slow down",
            2.0,
            "1",
            429,
        )
        assert copy.transient

    def test_job_failed(self) -> None:
        error = MilvusImportJobFailed("job 1 failed", failed_files=[("a", "bad")], state="Failed", job_id="1")
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.failed_files, copy.state, copy.job_id) == ([("a", "bad")], "Failed", "1")
