"""Import jobs: the record the server keeps, and what a client sees of it at a given moment.

A job's real work (reading files, inserting rows) moves it through Milvus' internal phases. What a client sees
is computed when it asks, from the record and the clock, with Milvus' phase weights: Pending 0-10,
pre-import 10-40, import 40-70, sort 70-80, index 80-90, Completed 100; 2PC jobs wait at 99. A job with the
``local.duration`` option is shown no further along than its timeline allows, so thousands of jobs can end at
chosen times without a thread or a timer per job.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Phase(str, Enum):
    """A job's internal phase (Milvus' ``ImportJobState``); clients see :class:`JobState` words."""

    PENDING = "Pending"
    PRE_IMPORTING = "PreImporting"
    IMPORTING = "Importing"
    SORTING = "Sorting"
    INDEX_BUILDING = "IndexBuilding"
    UNCOMMITTED = "Uncommitted"
    COMMITTING = "Committing"
    COMPLETED = "Completed"
    FAILED = "Failed"


class JobState(str, Enum):
    """The job states clients see."""

    PENDING = "Pending"
    IMPORTING = "Importing"
    UNCOMMITTED = "Uncommitted"
    COMMITTING = "Committing"
    COMPLETED = "Completed"
    FAILED = "Failed"


class FileState(str, Enum):
    """Per-file (import task) states, a different enum from the job's."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    RETRY = "Retry"


TIMEOUT_REASON = "import timeout"

# Where each working phase starts on the 0..1 scale, and how wide it is.
_PHASE_START = {
    Phase.PENDING: 0.0,
    Phase.PRE_IMPORTING: 0.10,
    Phase.IMPORTING: 0.40,
    Phase.SORTING: 0.70,
    Phase.INDEX_BUILDING: 0.80,
}
_PHASE_WIDTH = {
    Phase.PENDING: 0.10,
    Phase.PRE_IMPORTING: 0.30,
    Phase.IMPORTING: 0.30,
    Phase.SORTING: 0.10,
    Phase.INDEX_BUILDING: 0.10,
}
_IMPORT_START = _PHASE_START[Phase.IMPORTING]
_IMPORT_END = _PHASE_START[Phase.SORTING]
_INDEX_END = _PHASE_START[Phase.INDEX_BUILDING] + _PHASE_WIDTH[Phase.INDEX_BUILDING]
_FINAL_POSITION = 1.0
_STALL_POSITION = _PHASE_START[Phase.PRE_IMPORTING]
_UNFINISHED_PHASES = frozenset(_PHASE_START) | {Phase.COMMITTING}
TWO_PHASE_PROGRESS = 99


def format_time(timestamp: float | None) -> str:
    """``2024-04-01T06:17:55Z`` (UTC), or ``""`` for no time."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


@dataclass
class FileTask:
    """One entry of ``files``: a JSON or Parquet file, or a set of NumPy files (one per field)."""

    paths: list[str]
    file_size: int = 0
    total_rows: int = 0
    imported_rows: int = 0
    state: FileState = FileState.PENDING
    reason: str = ""
    complete_time: float | None = None


@dataclass(kw_only=True)
class CreateRequest:
    """A decoded ``create`` body: what to import, and into which collection of which deployment."""

    flavour: str
    cluster_id: str
    db_name: str
    collection_name: str
    partition_name: str
    files: list[list[str]]
    options: dict[str, str]
    volume_name: str = ""


@dataclass(kw_only=True)
class Job(CreateRequest):
    """The record of one import job, as stored in the data dir: its request, and how far it got."""

    job_id: str
    seq: int
    create_time: float
    auto_commit: bool = True
    duration: float = 0.0
    injected_failure: str | None = None
    stalled: bool = False
    phase: Phase = Phase.PENDING
    phase_fraction: float = 0.0
    reason: str = ""
    finish_time: float | None = None
    tasks: list[FileTask] = field(default_factory=list)
    tasks_visible: bool = False
    timeout_at: float | None = None
    ready_time: float | None = None
    show_retry: bool = False

    @property
    def is_finished(self) -> bool:
        """True once the real work is over (Completed, Failed or waiting for a commit)."""
        return self.phase not in _UNFINISHED_PHASES

    def to_record(self) -> dict[str, Any]:
        """JSON-safe data for the job store."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        """Rebuild a job from :meth:`to_record` data."""
        data = dict(record)
        data["phase"] = Phase(data["phase"])
        data["tasks"] = [
            FileTask(**{**task, "state": FileState(task["state"])}) for task in data.get("tasks", [])
        ]
        return cls(**data)


@dataclass(frozen=True)
class FileView:
    """A file's progress as a client sees it."""

    paths: list[str]
    file_size: int
    state: str
    progress: int
    imported_rows: int
    total_rows: int
    reason: str
    complete_time: str


@dataclass(frozen=True)
class JobView:
    """A job as a client sees it at one moment."""

    state: JobState
    progress: int
    imported_rows: int
    total_rows: int
    file_size: int
    reason: str
    create_time: str
    complete_time: str
    details: list[FileView]


def _real_position(job: Job) -> float:
    if job.stalled:
        return _STALL_POSITION
    start = _PHASE_START.get(job.phase)
    if start is None:
        return _FINAL_POSITION
    fraction = min(max(job.phase_fraction, 0.0), 0.999)
    return start + _PHASE_WIDTH[job.phase] * fraction


def _timeline_position(job: Job, now: float) -> float:
    if job.duration <= 0:
        return _FINAL_POSITION
    elapsed = (now - job.create_time) / job.duration
    if elapsed >= 1.0:
        return _FINAL_POSITION
    return max(0.0, elapsed) * _INDEX_END


def _final_state(job: Job) -> JobState:
    if job.phase is Phase.COMPLETED:
        return JobState.FAILED if job.injected_failure else JobState.COMPLETED
    if job.auto_commit:
        return JobState.IMPORTING
    return JobState.UNCOMMITTED if job.phase is Phase.UNCOMMITTED else JobState.COMMITTING


def _complete_time(job: Job) -> float | None:
    if job.finish_time is None:
        return None
    if job.duration > 0:
        return max(job.finish_time, job.create_time + job.duration)
    return job.finish_time


def _file_view(
    task: FileTask, state: FileState, imported: int, reason: str, complete: float | None
) -> FileView:
    if task.total_rows:
        progress = min(100, imported * 100 // task.total_rows)
    else:
        progress = 100 if state is FileState.COMPLETED else 0
    return FileView(
        paths=task.paths,
        file_size=task.file_size,
        state=state.value,
        progress=progress,
        imported_rows=imported,
        total_rows=task.total_rows,
        reason=reason,
        complete_time=format_time(complete),
    )


def _details(job: Job, position: float, scaled_import: float | None, state: JobState) -> list[FileView]:
    if not job.tasks_visible and not (job.injected_failure and position >= _IMPORT_START):
        return []
    if state is JobState.FAILED and job.injected_failure:
        return [
            _file_view(t, FileState.FAILED, 0, job.injected_failure, _complete_time(job)) for t in job.tasks
        ]
    if scaled_import is not None:
        # local.retry (3.x): every file is shown being retried through the first half of the import phase
        in_progress = FileState.RETRY if job.show_retry and scaled_import < 0.5 else FileState.IN_PROGRESS
        return [_file_view(t, in_progress, int(t.total_rows * scaled_import), "", None) for t in job.tasks]
    return [_file_view(t, t.state, t.imported_rows, t.reason, t.complete_time) for t in job.tasks]


@dataclass(frozen=True)
class JobSummaryView:
    """What a ``list`` record shows of a job at one moment: state, percent and reason (no rows or files)."""

    state: JobState
    progress: int
    reason: str


def timed_out(job: Job, now: float) -> bool:
    """True when ``options.timeout`` ended the job before it was shown done (Completed, or Uncommitted for a
    2PC job): Milvus fails such a job with reason ``import timeout``. The worker stops a running import at
    that moment; this covers what it does not run (stalled jobs, ``local.duration`` timelines)."""
    if job.timeout_at is None or now < job.timeout_at or job.phase is Phase.FAILED:
        return False
    if job.stalled or job.ready_time is None:
        return True
    shown_ready = max(job.ready_time, job.create_time + job.duration) if job.duration > 0 else job.ready_time
    return shown_ready > job.timeout_at


def _failure_shown(job: Job, now: float) -> bool:
    """False while a job the worker ended for its timeout is still before that timeout on its timeline
    (a ``local.duration`` job that would pass its ``timeout``): it is shown running until then."""
    return not (job.reason == TIMEOUT_REASON and job.timeout_at is not None and now < job.timeout_at)


def _summary(job: Job, now: float) -> tuple[JobSummaryView, float, float]:
    """The job's summary at ``now``, with the position it is shown at and its real position."""
    if job.phase is Phase.FAILED and _failure_shown(job, now):
        return JobSummaryView(JobState.FAILED, 0, job.reason), _FINAL_POSITION, _FINAL_POSITION
    if timed_out(job, now):
        return JobSummaryView(JobState.FAILED, 0, TIMEOUT_REASON), _FINAL_POSITION, _FINAL_POSITION
    real = _real_position(job)
    position = min(real, _timeline_position(job, now))
    if position >= _FINAL_POSITION:
        state = _final_state(job)
        if state is JobState.FAILED:
            return JobSummaryView(state, 0, job.injected_failure or ""), position, real
        progress = 100 if state is JobState.COMPLETED else TWO_PHASE_PROGRESS
        return JobSummaryView(state, progress, ""), position, real
    state = JobState.PENDING if position < _PHASE_START[Phase.PRE_IMPORTING] else JobState.IMPORTING
    return JobSummaryView(state, int(position * 100 + 1e-9), ""), position, real


def summarize_job(job: Job, now: float) -> JobSummaryView:
    """What a ``list`` record shows of ``job`` at time ``now`` (the same as :func:`view_job`, without the
    rows and per-file details a list has no use for: a list of thousands of jobs stays cheap).

    :param job: the job.
    :param now: the moment shown (epoch seconds).
    """
    return _summary(job, now)[0]


def view_job(job: Job, now: float) -> JobView:
    """What a client sees of ``job`` at time ``now``."""
    summary, position, real = _summary(job, now)
    state = summary.state
    total_rows = sum(task.total_rows for task in job.tasks)
    created = format_time(job.create_time)
    if job.phase is Phase.FAILED and _failure_shown(job, now):
        details = _details(job, _FINAL_POSITION, None, JobState.FAILED)
        return JobView(
            state, 0, 0, 0, _size(details), summary.reason, created, format_time(job.finish_time), details
        )
    if state is JobState.FAILED and summary.reason == TIMEOUT_REASON:
        details = (
            [_file_view(t, FileState.FAILED, 0, TIMEOUT_REASON, job.timeout_at) for t in job.tasks]
            if job.tasks_visible
            else []
        )
        return JobView(
            state, 0, 0, 0, _size(details), TIMEOUT_REASON, created, format_time(job.timeout_at), details
        )
    if position >= _FINAL_POSITION:
        details = _details(job, position, None, state)
        if state is JobState.FAILED:
            return JobView(
                state,
                0,
                0,
                0,
                _size(details),
                summary.reason,
                created,
                format_time(_complete_time(job)),
                details,
            )
        complete = format_time(_complete_time(job)) if state is JobState.COMPLETED else ""
        return JobView(
            state, summary.progress, total_rows, total_rows, _size(details), "", created, complete, details
        )
    imported, total, scaled = 0, 0, None
    if position >= _IMPORT_START:
        total = total_rows
        if position >= _IMPORT_END:
            imported = total_rows
        elif real <= position and job.phase is Phase.IMPORTING:
            imported = sum(task.imported_rows for task in job.tasks)
        else:
            scaled = (position - _IMPORT_START) / (_IMPORT_END - _IMPORT_START)
            imported = int(total_rows * scaled)
    details = _details(job, position, scaled, state)
    return JobView(state, summary.progress, imported, total, _size(details), "", created, "", details)


def _size(details: list[FileView]) -> int:
    return sum(detail.file_size for detail in details)


_CLOUD_ID_ALPHABET = string.digits + string.ascii_lowercase


class JobIdAllocator:
    """Job ids that look like the real ones and never repeat.

    Self-hosted Milvus ids are TSO-style int64s (milliseconds << 18, plus a counter): ``448761313698322011``.
    Zilliz Cloud ids are ``job-`` and 22 lower-case letters and digits: ``job-01fa0e5d42cjxudhpuehyp``.
    """

    def __init__(self, last_numeric: int = 0) -> None:
        self._last = last_numeric
        self._lock = threading.Lock()

    def numeric(self) -> str:
        """A new self-hosted Milvus id, larger than every earlier one."""
        with self._lock:
            self._last = max(int(time.time() * 1000) << 18, self._last + 1)
            return str(self._last)

    @staticmethod
    def cloud() -> str:
        """A new Zilliz Cloud id."""
        return "job-" + "".join(secrets.choice(_CLOUD_ID_ALPHABET) for _ in range(22))
