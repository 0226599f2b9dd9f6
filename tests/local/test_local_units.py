"""The server's pure parts, tested directly: wire decoding, job views, ids, the bucket boundary, settings."""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING

import pytest

from airflow_milvus_import.local.config import ServerConfig, config_from_args
from airflow_milvus_import.local.faults import TokenBucket
from airflow_milvus_import.local.generations import generation
from airflow_milvus_import.local.importer import Bucket, ImportFileError, PathError, file_kind
from airflow_milvus_import.local.jobs import (
    FileState,
    FileTask,
    Job,
    JobIdAllocator,
    JobState,
    Phase,
    format_time,
    summarize_job,
    view_job,
)
from airflow_milvus_import.local.wire import (
    ApiError,
    get_int,
    get_path_lists,
    get_string_map,
    go_parse_duration,
    go_parse_int64_error,
    go_string_slice,
    parse_body,
    protobuf_text_file,
)

if TYPE_CHECKING:
    from pathlib import Path

# -- wire --


def test_go_string_slice() -> None:
    assert go_string_slice(["a.parquet"]) == "[a.parquet]"
    assert go_string_slice(["id.npy", "vec.npy"]) == "[id.npy vec.npy]"


@pytest.mark.parametrize(
    ("raw", "value"), [("448761313698322011", 448761313698322011), ("007", 7), ("-5", -5)]
)
def test_milvus_job_ids_parse_like_strconv(raw: str, value: int) -> None:
    assert go_parse_int64_error(raw) is None
    assert int(raw) == value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("abc", "invalid syntax"),
        ("", "invalid syntax"),
        ("1e5", "invalid syntax"),
        ("9" * 20, "value out of range"),
    ],
)
def test_milvus_job_id_errors(raw: str, reason: str) -> None:
    assert go_parse_int64_error(raw) == f'strconv.ParseInt: parsing "{raw}": {reason}'


@pytest.mark.parametrize(
    ("flavour", "code", "message"),
    [
        # Milvus 2.4 / 2.5 internal/datacoord/services.go: fmt.Sprint("parse job id failed, err=%w", err)
        (
            "2.5",
            2100,
            'parse job id failed, err=%wstrconv.ParseInt: parsing "job-abc": invalid syntax'
            ": importing data failed",
        ),
        (
            "2.4.0",
            2100,
            'parse job id failed, err=%wstrconv.ParseInt: parsing "job-abc": invalid syntax'
            ": importing data failed",
        ),
        # 2.6 wraps the error (facts page, "Round 2")
        (
            "2.6",
            2100,
            'parse job id failed: strconv.ParseInt: parsing "job-abc": invalid syntax: importing data failed',
        ),
        # master / 3.x: merr.WrapErrParameterInvalid (facts page, "Round 2")
        (
            "3.x",
            1100,
            'parse job id failed: strconv.ParseInt: parsing "job-abc": invalid syntax: invalid parameter',
        ),
    ],
)
def test_bad_job_id_by_generation(flavour: str, code: int, message: str) -> None:
    error = generation(flavour).bad_job_id('strconv.ParseInt: parsing "job-abc": invalid syntax')
    assert (error.code, error.message) == (code, message)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300s", 300.0), ("1.5h", 5400.0), ("1h30m", 5400.0), ("0", 0.0), ("250ms", 0.25), ("-1s", -1.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", 'time: invalid duration "abc"'),
        ("", 'time: invalid duration ""'),
        ("5", 'time: missing unit in duration "5"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    """Go's time.ParseDuration messages (Go standard library, src/time/format.go)."""
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        go_parse_duration(text)


def test_protobuf_text_file_names() -> None:
    """The Milvus 2.4 docs' example detail: ``id:449839014328146740 paths:"/8ca44f28-.../1.parquet"``."""
    assert (
        protobuf_text_file(449839014328146740, ["/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet"])
        == 'id:449839014328146740 paths:"/8ca44f28-47f7-40ba-9604-98918afe26d1/1.parquet"'
    )
    assert protobuf_text_file(7, ["id.npy", "vec.npy"]) == 'id:7 paths:"id.npy" paths:"vec.npy"'


def test_unknown_flavour_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown flavour '2\.3'"):
        generation("2.3")


def test_body_decoding() -> None:
    assert parse_body(b'{"a": 1}', "X") == {"a": 1}
    assert parse_body(b"null", "X") == {}
    for raw in (b"", b"  ", b"{", b"[]", b'"s"'):
        with pytest.raises(ApiError) as caught:
            parse_body(raw, "X")
        assert caught.value.code == 1801


def test_field_types() -> None:
    assert get_path_lists({"files": [["a"], None]}, "files", "R") == [["a"], []]
    assert get_path_lists({}, "files", "R") is None
    assert get_string_map({"options": {"a": "1"}}, "options", "R") == {"a": "1"}
    assert get_int({"n": 3.0}, "n", "R", 1) == 3
    for call in (
        lambda: get_path_lists({"files": [["a", 2]]}, "files", "R"),
        lambda: get_string_map({"options": {"a": True}}, "options", "R"),
        lambda: get_int({"n": 2.5}, "n", "R", 1),
        lambda: get_int({"n": "2"}, "n", "R", 1),
    ):
        with pytest.raises(ApiError) as caught:
            call()
        assert caught.value.code == 1801


# -- job views --


def _job(**kwargs: object) -> Job:
    job = Job(
        job_id="1",
        seq=1,
        flavour="milvus",
        cluster_id="",
        db_name="default",
        collection_name="c",
        partition_name="",
        files=[["a.parquet"], ["b.parquet"]],
        options={},
        create_time=time.time() - 1,
    )
    for key, value in kwargs.items():
        setattr(job, key, value)
    return job


def _tasks(imported: tuple[int, int] = (0, 0), state: FileState = FileState.PENDING) -> list[FileTask]:
    return [
        FileTask(paths=[name], file_size=100, total_rows=50, imported_rows=rows, state=state)
        for name, rows in zip(("a.parquet", "b.parquet"), imported, strict=True)
    ]


@pytest.mark.parametrize(
    ("phase", "fraction", "state", "progress"),
    [
        (Phase.PENDING, 0.0, JobState.PENDING, 0),
        (Phase.PENDING, 0.5, JobState.PENDING, 5),
        (Phase.PRE_IMPORTING, 0.0, JobState.IMPORTING, 10),
        (Phase.PRE_IMPORTING, 0.5, JobState.IMPORTING, 25),
        (Phase.IMPORTING, 0.5, JobState.IMPORTING, 55),
        (Phase.SORTING, 0.5, JobState.IMPORTING, 75),
        (Phase.INDEX_BUILDING, 0.99, JobState.IMPORTING, 89),
        (Phase.COMPLETED, 0.0, JobState.COMPLETED, 100),
    ],
)
def test_phase_weights(phase: Phase, fraction: float, state: JobState, progress: int) -> None:
    view = view_job(_job(phase=phase, phase_fraction=fraction, finish_time=time.time()), time.time())
    assert (view.state, view.progress) == (state, progress)


def test_rows_and_details_appear_with_the_import_phase() -> None:
    early = view_job(_job(phase=Phase.PRE_IMPORTING, phase_fraction=0.9, tasks=_tasks()), time.time())
    assert (early.imported_rows, early.total_rows, early.details, early.file_size) == (0, 0, [], 0)
    job = _job(phase=Phase.IMPORTING, phase_fraction=0.3, tasks=_tasks((30, 0)), tasks_visible=True)
    job.tasks[0].state = FileState.IN_PROGRESS
    view = view_job(job, time.time())
    assert (view.imported_rows, view.total_rows, view.file_size) == (30, 100, 200)
    assert [(d.state, d.progress, d.imported_rows) for d in view.details] == [
        ("InProgress", 60, 30),
        ("Pending", 0, 0),
    ]
    sorting = view_job(
        _job(phase=Phase.SORTING, tasks=_tasks((50, 50), FileState.COMPLETED), tasks_visible=True),
        time.time(),
    )
    assert (sorting.imported_rows, sorting.total_rows) == (100, 100)


def test_two_phase_states() -> None:
    waiting = view_job(
        _job(phase=Phase.UNCOMMITTED, auto_commit=False, tasks=_tasks((50, 50)), tasks_visible=True),
        time.time(),
    )
    assert (waiting.state, waiting.progress, waiting.imported_rows, waiting.complete_time) == (
        JobState.UNCOMMITTED,
        99,
        100,
        "",
    )
    committing = view_job(_job(phase=Phase.COMMITTING, auto_commit=False), time.time())
    assert (committing.state, committing.progress) == (JobState.COMMITTING, 99)


def test_failed_jobs_report_zero_and_the_reason() -> None:
    view = view_job(
        _job(
            phase=Phase.FAILED,
            reason="bad file",
            finish_time=1711952275.0,
            tasks=_tasks((50, 0)),
            tasks_visible=True,
        ),
        time.time(),
    )
    assert (view.state, view.progress, view.imported_rows, view.total_rows) == (JobState.FAILED, 0, 0, 0)
    assert (view.reason, view.complete_time) == ("bad file", "2024-04-01T06:17:55Z")
    assert len(view.details) == 2


def test_a_duration_holds_the_job_back_and_scales_rows() -> None:
    now = time.time()
    job = _job(
        phase=Phase.COMPLETED,
        finish_time=now - 5,
        duration=10.0,
        create_time=now - 5,
        tasks=_tasks((50, 50), FileState.COMPLETED),
        tasks_visible=True,
    )
    view = view_job(job, now)
    assert (view.state, view.progress) == (JobState.IMPORTING, 45)
    assert view.imported_rows == 16
    assert view.total_rows == 100
    assert {d.state for d in view.details} == {"InProgress"}
    assert view_job(job, now - 4.5).state is JobState.PENDING
    done = view_job(job, now + 5.01)
    assert (done.state, done.progress, done.imported_rows) == (JobState.COMPLETED, 100, 100)
    assert done.complete_time == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 5))


def test_a_slow_import_holds_a_duration_job_back() -> None:
    now = time.time()
    job = _job(
        phase=Phase.IMPORTING,
        phase_fraction=0.1,
        duration=1.0,
        create_time=now - 10,
        tasks=_tasks((10, 0)),
        tasks_visible=True,
    )
    view = view_job(job, now)
    assert (view.state, view.progress, view.imported_rows) == (JobState.IMPORTING, 43, 10)


def test_injected_failure_after_the_duration() -> None:
    now = time.time()
    job = _job(
        phase=Phase.COMPLETED,
        finish_time=now - 2,
        create_time=now - 2,
        duration=1.0,
        injected_failure="boom",
        tasks=[FileTask(paths=["a.parquet"])],
    )
    view = view_job(job, now)
    assert (view.state, view.reason, view.progress) == (JobState.FAILED, "boom", 0)
    assert [(d.state, d.reason) for d in view.details] == [("Failed", "boom")]


def test_a_stalled_job_stays_at_ten() -> None:
    view = view_job(_job(stalled=True, create_time=time.time() - 3600), time.time())
    assert (view.state, view.progress) == (JobState.IMPORTING, 10)


def test_a_list_summary_shows_what_the_full_view_shows() -> None:
    now = time.time()
    jobs = [
        _job(phase=phase, phase_fraction=fraction, tasks=_tasks(), **extra)
        for phase in Phase
        for fraction in (0.0, 0.5)
        for extra in (
            {},
            {"auto_commit": False},
            {"stalled": True},
            {"reason": "aborted", "finish_time": now},
            {"duration": 10.0, "create_time": now - 4.0},
            {"duration": 2.0, "create_time": now - 4.0, "injected_failure": "bad", "finish_time": now - 4},
        )
    ]
    for job in jobs:
        view, summary = view_job(job, now), summarize_job(job, now)
        assert (summary.state, summary.progress, summary.reason) == (view.state, view.progress, view.reason)


def test_records_round_trip() -> None:
    job = _job(phase=Phase.IMPORTING, tasks=_tasks((3, 4)), options={"x": "y"})
    assert Job.from_record(job.to_record()) == job


# -- ids --


def test_job_ids() -> None:
    allocator = JobIdAllocator()
    ids = [int(allocator.numeric()) for _ in range(1000)]
    assert ids == sorted(set(ids))
    assert all(len(str(i)) == 18 for i in ids)
    assert int(JobIdAllocator(ids[-1]).numeric()) > ids[-1]
    assert re.fullmatch(r"job-[0-9a-z]{22}", JobIdAllocator.cloud())


# -- the bucket --


def test_bucket_boundary(tmp_path: Path) -> None:
    bucket = Bucket(tmp_path / "bucket")
    (bucket.root / "in").mkdir()
    (bucket.root / "in" / "a.json").write_text("{}")
    inside = bucket.root.resolve() / "in" / "a.json"
    assert bucket.resolve("in/a.json") == inside
    assert bucket.resolve(str(inside)) == inside
    assert bucket.resolve("in/../in/a.json") == inside
    assert bucket.resolve("s3://whatever/in/a.json", allow_urls=True) == inside
    assert bucket.resolve(f"file://{inside}", allow_urls=True) == inside
    for raw, allow_urls in (
        ("../x", False),
        ("/etc/hosts", False),
        ("s3://b/../../x", True),
        ("s3://b/in/a.json", False),
        ("http://host/in/a.json", True),
        ("", False),
    ):
        with pytest.raises(PathError):
            bucket.resolve(raw, allow_urls=allow_urls)
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.symlink(outside, bucket.root / "in" / "link.json")
    with pytest.raises(PathError, match="symbolic link"):
        bucket.resolve("in/link.json")
    os.symlink(inside, bucket.root / "in" / "inner-link.json")
    assert bucket.resolve("in/inner-link.json") == inside


def test_file_kinds() -> None:
    assert file_kind(["a.parquet"]) == "parquet"
    assert file_kind(["a.JSON"]) == "json"
    assert file_kind(["id.npy", "vec.npy"]) == "npy"
    assert file_kind(["s3://b/folder/"]) == "folder"
    with pytest.raises(ImportFileError, match="inconsistency"):
        file_kind(["a.npy", "b.json"])


# -- settings and the rate limiter --


def test_config_round_trips_through_the_command_line() -> None:
    config = ServerConfig(
        data_dir="/d",
        bucket="/b",
        port=0,
        milvus_port=0,
        fail_rate=0.25,
        rate_limit=20.0,
        stall="s*",
        seed=3,
        legacy=True,
        latency_ms=5,
        rows_per_second=100.0,
        token="secret",
        flavour="3.x",
    )
    argv = config.to_argv()
    assert argv[argv.index("--flavour") + 1] == "3.x"
    assert "secret" not in argv, "the token travels in the environment, never in a process list"
    assert config_from_args(argv) == ServerConfig(**{**config.__dict__, "token": None})


def test_config_validation() -> None:
    for bad, message in (
        ({"fail_rate": 1.5}, "fail_rate must be between 0 and 1"),
        ({"drop_rate": -0.1}, "drop_rate must be between 0 and 1"),
        ({"rate_limit": 0.0}, "rate_limit must be a positive number"),
        ({"import_workers": 0}, "import_workers must be at least 1"),
        ({"ssl_certfile": "x"}, "go together"),
        ({"cluster_id": ""}, "cluster_id must not be empty"),
        ({"fail_rate": 0.6, "drop_rate": 0.6}, "must not exceed 1"),
        ({"flavour": "2.3"}, "unknown flavour '2.3'; expected one of 2.4.0, 2.5, 2.6, 3.x"),
    ):
        with pytest.raises(ValueError, match=message):
            ServerConfig(**bad)  # type: ignore[arg-type]
    assert ServerConfig(port=19530).grpc_port == 19531
    assert ServerConfig(port=0).grpc_port == 0


def test_token_bucket() -> None:
    bucket = TokenBucket(2.0)
    assert [bucket.take() == 0.0 for _ in range(3)] == [True, True, False]
    time.sleep(0.55)
    assert bucket.take() == 0.0


def test_a_job_past_its_timeout_is_shown_failed_with_import_timeout() -> None:
    now = time.time()
    stalled = _job(stalled=True, timeout_at=now - 0.5, tasks=_tasks(), tasks_visible=True)
    view = view_job(stalled, now)
    assert (view.state, view.progress, view.reason) == (JobState.FAILED, 0, "import timeout")
    assert [detail.state for detail in view.details] == ["Failed", "Failed"]
    assert view.complete_time == format_time(now - 0.5)
    assert summarize_job(stalled, now).reason == "import timeout"
    assert view_job(stalled, now - 1).state is JobState.IMPORTING, "not before its timeout"


def test_a_job_ready_before_its_timeout_is_not_timed_out() -> None:
    now = time.time()
    done = _job(phase=Phase.COMPLETED, finish_time=now - 2, ready_time=now - 2, timeout_at=now - 1)
    assert view_job(done, now).state is JobState.COMPLETED
    waiting = _job(
        phase=Phase.UNCOMMITTED,
        auto_commit=False,
        finish_time=now - 2,
        ready_time=now - 2,
        timeout_at=now - 1,
    )
    assert view_job(waiting, now).state is JobState.UNCOMMITTED, "a 2PC job waiting for its commit"


def test_a_duration_past_the_timeout_times_the_job_out() -> None:
    now = time.time()
    job = _job(
        phase=Phase.COMPLETED,
        create_time=now - 3,
        duration=10.0,
        finish_time=now - 2,
        ready_time=now - 2,
        timeout_at=now - 1,
    )
    assert (view_job(job, now).state, view_job(job, now).reason) == (JobState.FAILED, "import timeout")


def test_local_retry_shows_files_in_retry_early_in_the_import_phase() -> None:
    now = time.time()
    job = _job(
        phase=Phase.COMPLETED,
        create_time=now - 5.0,
        duration=10.0,
        finish_time=now - 4.0,
        tasks=_tasks((50, 50), FileState.COMPLETED),
        tasks_visible=True,
        show_retry=True,
    )
    early = view_job(job, now)  # 5/10 of the timeline: 45%, the first half of the import phase (40-70)
    assert [detail.state for detail in early.details] == ["Retry", "Retry"]
    later = view_job(job, now + 2.0)  # 7/10: 63%
    assert [detail.state for detail in later.details] == ["InProgress", "InProgress"]
