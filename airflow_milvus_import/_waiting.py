"""
Waiting for import jobs, without the I/O: shared by the trigger, the sensor and the operators.

Everything here is pure (no network, no clock: callers pass timestamps in), so the rules that decide a
wait's outcome are tested directly and are the same whether the wait runs in the triggerer (async), in a
poking worker (sync) or in the import operator.

- :func:`normalize_job_ids` turns what a user (or a template) gave into a clean list of ids.
- :class:`JobWaitTracker` keeps the last progress of each job, counts consecutive failed polls and
  consecutive unknown states, and decides the outcome (:class:`WaitResult`) with these rules:

  1. **fail fast**: as soon as any job is ``Failed`` the wait ends ``failed`` (the other jobs are not
     waited for; their last-seen progress is reported);
  2. a job whose polls keep failing with transient errors (connection errors, timeouts, 5xx, 408, 429)
     for ``error_tolerance`` seconds (10 minutes by default, whatever the poll interval), or whose state
     stays unknown (``None``) ``max_consecutive_errors`` polls in a row, ends the wait with ``error``; a
     non-transient error (auth, not found, bad request) ends it at once;
  3. ``success`` once every job is ``Completed`` (or ``Uncommitted`` when ``accept_uncommitted``);
  4. otherwise keep waiting; the caller ends the wait with ``timeout`` at its deadline.

- :class:`ProgressHistory` estimates rows per second and an ETA from recent samples, and
  :func:`format_progress_line` renders the one line a poll logs.
- :class:`WaitResult` is also the trigger event's payload (:meth:`WaitResult.to_event` /
  :meth:`WaitResult.from_event`), and :func:`exception_for_result` turns an unsuccessful one into the
  exception a task raises.
"""

from __future__ import annotations

import ast
import enum
import functools
import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from airflow_milvus_import import exceptions as _exceptions
from airflow_milvus_import.exceptions import (
    MilvusImportError,
    MilvusImportJobFailed,
    MilvusImportJobTimeout,
)
from airflow_milvus_import.models import ImportJobProgress, ImportJobState, parse_job_id

__all__ = [
    "DEFAULT_ERROR_TOLERANCE_SECONDS",
    "DEFAULT_MAX_CONSECUTIVE_ERRORS",
    "FailedPoll",
    "FailureWording",
    "JobWaitTracker",
    "PollLog",
    "PollRound",
    "ProgressHistory",
    "ProgressRate",
    "WaitResult",
    "WaitStatus",
    "describe_job",
    "exception_for_result",
    "failed_files",
    "format_count",
    "format_duration",
    "format_progress_line",
    "format_summary_line",
    "is_done_state",
    "job_ids_given_as_list",
    "normalize_job_ids",
    "parse_error_tolerance",
]

DEFAULT_MAX_CONSECUTIVE_ERRORS = 5
#: how long a wait tolerates polls failing with transient errors (an outage, a proxy restart) by default
DEFAULT_ERROR_TOLERANCE_SECONDS = 600.0

_NOT_A_LIST = object()

#: at most this many failed files are spelled out in one message (the rest are counted)
_MAX_FILES_IN_MESSAGE = 20


class WaitStatus(str, enum.Enum):
    """How a wait ended; the ``status`` of the trigger's event."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def parse_error_tolerance(value: Any) -> float:
    """
    ``error_tolerance`` as seconds: a number of seconds or a ``timedelta``, positive and finite.

    :raises TypeError: not a number or a timedelta.
    :raises ValueError: zero, negative, infinite or NaN.
    """
    seconds: float
    if hasattr(value, "total_seconds") and callable(value.total_seconds):
        seconds = float(value.total_seconds())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"error_tolerance must be seconds or a timedelta, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"error_tolerance must be a positive number of seconds, got {value!r}")
    return seconds


# --------------------------------------------------------------------------------------------------------
# Job ids


def normalize_job_ids(value: Any) -> list[str]:
    """
    One job id or several, as a list of non-empty strings without duplicates (first occurrence kept).

    Accepts a string, an integer (Milvus ids are numbers), any iterable of those, and the text of a list
    (``"['1', '2']"``: what a Jinja template renders a pulled XCom list to).

    :raises ValueError: no id at all, or an empty / ``None`` / non-scalar id (its position is named).
    """
    if isinstance(value, str):
        text = value.strip()
        value = _parse_list_text(text) if text.startswith("[") and text.endswith("]") else [value]
    elif value is None or isinstance(value, (int, float, Mapping)):
        value = [value]
    elif not isinstance(value, Iterable):
        raise ValueError(f"import job id must be a string or a list of strings, got {type(value).__name__}")

    items = list(value)
    if not items:
        raise ValueError("no import job id given: job_id is an empty list")
    job_ids: list[str] = []
    for position, item in enumerate(items):
        job_id = parse_job_id(item) if isinstance(item, (str, int, float)) else None
        if job_id is None:
            where = f" at position {position}" if len(items) > 1 else ""
            raise ValueError(f"invalid import job id{where}: {item!r} (expected a non-empty string)")
        if job_id not in job_ids:
            job_ids.append(job_id)
    return job_ids


def job_ids_given_as_list(value: Any) -> bool:
    """
    Whether ``value`` names jobs as a list (a waiter then returns a list) rather than one id.

    True for lists, tuples and other iterables, and for the text of a list (``"['1']"``), even of one id.
    """
    if isinstance(value, str):
        text = value.strip()
        return text.startswith("[") and text.endswith("]") and isinstance(_parse_list_text(text, None), list)
    if value is None or isinstance(value, (int, float, Mapping)):
        return False
    return isinstance(value, Iterable)


def _parse_list_text(text: str, default: Any = _NOT_A_LIST) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        # Not a list after all: a single id that happens to be written in brackets.
        return [text] if default is _NOT_A_LIST else default


# --------------------------------------------------------------------------------------------------------
# States and rates


def is_done_state(state: ImportJobState, *, accept_uncommitted: bool = False) -> bool:
    """Whether a job in ``state`` counts as successfully finished for a waiter."""
    if state is ImportJobState.COMPLETED:
        return True
    return accept_uncommitted and state is ImportJobState.UNCOMMITTED


@dataclass(frozen=True)
class ProgressRate:
    """
    What recent samples say about a job's speed.

    :param rows_per_second: imported rows per second, None until two samples exist.
    :param eta_seconds: estimated seconds to completion, None until it can be estimated.
    """

    rows_per_second: float | None = None
    eta_seconds: float | None = None


class ProgressHistory:
    """
    Recent ``(time, imported rows, percent)`` samples of one job, to estimate rows/s and an ETA.

    The ETA follows the job's overall percent (Milvus weights its phases: rows are only counted while
    importing, then sorting and indexing still take time), and falls back to the remaining rows at the
    current row rate when the percent has not moved. Times are whatever monotonic clock the caller uses.

    :param max_samples: how many recent samples the estimate spans.
    """

    def __init__(self, max_samples: int = 12) -> None:
        if max_samples < 2:
            raise ValueError("max_samples must be at least 2")
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, progress: ImportJobProgress, at: float) -> None:
        """Record a sample; a job that went backwards (server restart, new attempt) starts a new history."""
        if self._samples:
            last_at, last_rows, last_percent = self._samples[-1]
            if at <= last_at:
                return
            if progress.imported_rows < last_rows or progress.progress < last_percent:
                self._samples.clear()
        self._samples.append((at, progress.imported_rows, progress.progress))

    def rate(self, progress: ImportJobProgress | None = None) -> ProgressRate:
        """
        The current estimate.

        :param progress: the latest progress (for the remaining rows); defaults to the last sample's.
        """
        if len(self._samples) < 2:
            return ProgressRate()
        first_at, first_rows, first_percent = self._samples[0]
        last_at, last_rows, last_percent = self._samples[-1]
        elapsed = last_at - first_at
        if elapsed <= 0:
            return ProgressRate()
        rows_per_second = max(0.0, (last_rows - first_rows) / elapsed)
        percent_per_second = (last_percent - first_percent) / elapsed
        eta: float | None = None
        if progress is not None and progress.state.is_terminal:
            eta = None
        elif percent_per_second > 0 and last_percent < 100:
            eta = (100 - last_percent) / percent_per_second
        elif rows_per_second > 0 and progress is not None and progress.total_rows > progress.imported_rows:
            eta = (progress.total_rows - progress.imported_rows) / rows_per_second
        return ProgressRate(rows_per_second=rows_per_second, eta_seconds=eta)


# --------------------------------------------------------------------------------------------------------
# Text


def format_count(value: int) -> str:
    """``1234567`` -> ``"1,234,567"``."""
    return f"{value:,}"


def format_duration(seconds: float) -> str:
    """A short human duration: ``"0.05s"``, ``"2.5s"``, ``"45s"``, ``"3m05s"``, ``"2h03m"``, ``"3d04h"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "n/a"
    if seconds < 10:
        return f"{seconds:.2g}s" if seconds < 1 else f"{seconds:.1f}".removesuffix(".0") + "s"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _format_rate(rows_per_second: float) -> str:
    if rows_per_second >= 100:
        return f"{rows_per_second:,.0f}"
    if rows_per_second >= 10:
        return f"{rows_per_second:.1f}"
    return f"{rows_per_second:.2f}"


def describe_job(progress: ImportJobProgress | None, job_id: str | None = None) -> str:
    """``"job 4487 (collection 'books')"``; just the id when the collection is not known."""
    identifier = progress.job_id if progress is not None and progress.job_id else job_id or "?"
    if progress is not None and progress.collection_name:
        return f"job {identifier} (collection {progress.collection_name!r})"
    return f"job {identifier}"


def _files_text(progress: ImportJobProgress) -> str:
    if not progress.details:
        return "files n/a"
    return f"files {progress.completed_files}/{len(progress.details)}"


def format_progress_line(progress: ImportJobProgress, rate: ProgressRate | None = None) -> str:
    """
    The line a poll logs for one job.

    ``job 4487 (collection 'books'): Importing 45% | rows 12,000/100,000 | files 1/4 | 2,345 rows/s |
    ETA 1m12s``. Rows/s and ETA read ``n/a`` until they can be estimated; a finished job shows how long
    it took instead of an ETA, when the server gave both times.
    """
    parts = [
        f"{describe_job(progress)}: {progress.state.value} {progress.progress}%",
        f"rows {format_count(progress.imported_rows)}/{format_count(progress.total_rows)}",
        _files_text(progress),
    ]
    rate = rate or ProgressRate()
    if rate.rows_per_second is not None:
        parts.append(f"{_format_rate(rate.rows_per_second)} rows/s")
    else:
        parts.append("rows/s n/a")
    if progress.state.is_terminal:
        if progress.create_time is not None and progress.complete_time is not None:
            took = (progress.complete_time - progress.create_time).total_seconds()
            parts.append(f"took {format_duration(took)}")
    elif rate.eta_seconds is not None:
        parts.append(f"ETA {format_duration(rate.eta_seconds)}")
    else:
        parts.append("ETA n/a")
    if progress.reason and progress.state is not ImportJobState.COMPLETED:
        parts.append(f"reason: {progress.reason}")
    return " | ".join(parts)


def format_summary_line(
    job_ids: Sequence[str],
    latest: Mapping[str, ImportJobProgress],
    rates: Mapping[str, ProgressRate] | None = None,
) -> str:
    """
    One line for a wait on several jobs: ``5 jobs: Completed 3, Importing 2 | rows 1,200/3,000 |
    files 7/10 | 45,000 rows/s | ETA 2m10s`` (ETA of the slowest job, when every unfinished job has one).
    """
    counts: dict[str, int] = {}
    for job_id in job_ids:
        state = latest[job_id].state.value if job_id in latest else "not seen yet"
        counts[state] = counts.get(state, 0) + 1
    seen = [latest[job_id] for job_id in job_ids if job_id in latest]
    imported = sum(progress.imported_rows for progress in seen)
    total = sum(progress.total_rows for progress in seen)
    files_done = sum(progress.completed_files for progress in seen)
    files_total = sum(len(progress.details) for progress in seen)
    parts = [
        f"{len(job_ids)} jobs: " + ", ".join(f"{state} {count}" for state, count in counts.items()),
        f"rows {format_count(imported)}/{format_count(total)}",
        f"files {files_done}/{files_total}" if files_total else "files n/a",
    ]
    rates = rates or {}
    known_rates = [rates[job_id].rows_per_second for job_id in job_ids if job_id in rates]
    row_rates = [value for value in known_rates if value is not None]
    parts.append(f"{_format_rate(sum(row_rates))} rows/s" if row_rates else "rows/s n/a")
    unfinished = [
        job_id for job_id in job_ids if job_id not in latest or not latest[job_id].state.is_terminal
    ]
    etas = [rates[job_id].eta_seconds if job_id in rates else None for job_id in unfinished]
    if unfinished:
        known_etas = [eta for eta in etas if eta is not None]
        parts.append(f"ETA {format_duration(max(known_etas))}" if len(known_etas) == len(etas) else "ETA n/a")
    return " | ".join(parts)


def failed_files(progress: ImportJobProgress) -> list[tuple[str, str]]:
    """``(file name, reason)`` of each failed file of a job (reason ``""`` when the server gave none)."""
    return [(detail.file_name or " ".join(detail.files), detail.reason) for detail in progress.failed_files]


def _failure_text(progress: ImportJobProgress) -> str:
    text = f"{describe_job(progress)} failed: {progress.reason or 'the server gave no reason'}"
    files = failed_files(progress)
    if files:
        shown = "; ".join(
            f"{name}: {reason or 'no reason given'}" for name, reason in files[:_MAX_FILES_IN_MESSAGE]
        )
        more = (
            f"; and {len(files) - _MAX_FILES_IN_MESSAGE} more" if len(files) > _MAX_FILES_IN_MESSAGE else ""
        )
        text += f". Failed files ({len(files)}): {shown}{more}"
    return text


def _polls(count: int, adjective: str = "") -> str:
    return f"{count} {adjective}poll{'' if count == 1 else 's'}"


def _state_text(progress: ImportJobProgress) -> str:
    return (
        f"{describe_job(progress)}: last state {progress.state.value} at {progress.progress}% "
        f"(rows {format_count(progress.imported_rows)}/{format_count(progress.total_rows)}, "
        f"{_files_text(progress)})"
    )


# --------------------------------------------------------------------------------------------------------
# Outcomes


@dataclass(frozen=True)
class WaitResult:
    """
    How a wait on one or more import jobs ended; the payload of the trigger's single event.

    :param status: success, failed, timeout or error.
    :param message: a sentence a person can act on (no secrets).
    :param job_ids: every job waited for, in the order given.
    :param jobs: the last progress seen of each job, where one was seen (same order).
    :param error_type: for an ``error`` ended by a non-transient error, the name of its class in
        :mod:`airflow_milvus_import.exceptions` (``"MilvusImportNotFoundError"``); None means
        :class:`MilvusImportError`.
    :param error_endpoint: the endpoint that error named, when it did.
    :param error_job_id: the job whose poll raised that error.
    :param error_code: the server's envelope ``code`` of that error, when it sent one.
    :param error_http_status: the HTTP status of that error, when there was a response.
    """

    status: WaitStatus
    message: str
    job_ids: tuple[str, ...]
    jobs: tuple[ImportJobProgress, ...] = ()
    error_type: str | None = None
    error_endpoint: str | None = None
    error_job_id: str | None = None
    error_code: int | None = None
    error_http_status: int | None = None

    def to_event(self) -> dict[str, Any]:
        """
        The event payload: ``{"status", "message", "job_ids", "jobs": [progress.to_dict(), ...]}``.

        An ``error`` ended by a non-transient error adds ``"error_type"`` (its class name) and, where known,
        ``"error_endpoint"``, ``"error_job_id"``, ``"error_code"`` and ``"error_http_status"``.
        """
        payload: dict[str, Any] = {
            "status": self.status.value,
            "message": self.message,
            "job_ids": list(self.job_ids),
            "jobs": [progress.to_dict() for progress in self.jobs],
        }
        for key in _ERROR_FIELDS:
            value = getattr(self, key)
            if value is not None:
                payload[key] = value
        return payload

    @classmethod
    def from_event(cls, payload: Any) -> WaitResult:
        """
        Read an event payload back (what a task gets when it resumes).

        :raises MilvusImportError: the payload is not one this package's trigger sends.
        """
        if not isinstance(payload, Mapping):
            raise MilvusImportError(
                f"unexpected trigger event payload: {type(payload).__name__}, not a mapping"
            )
        try:
            status = WaitStatus(payload.get("status"))
        except ValueError:
            raise MilvusImportError(
                f"unexpected trigger event status {payload.get('status')!r}"
                " (expected success, failed, timeout or error)"
            ) from None
        raw_ids = payload.get("job_ids") or []
        raw_jobs = payload.get("jobs") or []
        if not isinstance(raw_ids, list) or not isinstance(raw_jobs, list):
            raise MilvusImportError("unexpected trigger event payload: job_ids and jobs must be lists")
        return cls(
            status=status,
            message=str(payload.get("message") or ""),
            job_ids=tuple(str(job_id) for job_id in raw_ids),
            jobs=tuple(ImportJobProgress.from_dict(item) for item in raw_jobs if isinstance(item, Mapping)),
            # Optional (events of earlier versions lack them); a value of the wrong type is ignored.
            error_type=_text_or_none(payload.get("error_type")),
            error_endpoint=_text_or_none(payload.get("error_endpoint")),
            error_job_id=_text_or_none(payload.get("error_job_id")),
            error_code=_int_or_none(payload.get("error_code")),
            error_http_status=_int_or_none(payload.get("error_http_status")),
        )

    def progress_of(self, job_id: str) -> ImportJobProgress | None:
        return next((progress for progress in self.jobs if progress.job_id == job_id), None)

    @property
    def failed_jobs(self) -> list[ImportJobProgress]:
        return [progress for progress in self.jobs if progress.state is ImportJobState.FAILED]

    def xcom_value(self, *, single: bool) -> dict[str, Any] | list[dict[str, Any]]:
        """What a successful wait returns: one job's ``to_dict()``, or the list of them."""
        dicts = [progress.to_dict() for progress in self.jobs]
        if single:
            return dicts[0] if dicts else {}
        return dicts


_ERROR_FIELDS = ("error_type", "error_endpoint", "error_job_id", "error_code", "error_http_status")


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@functools.cache
def _error_classes() -> dict[str, type[MilvusImportError]]:
    """What an ``error_type`` may name: :class:`MilvusImportError` and its subclasses in exceptions.py."""
    return {
        name: value
        for name, value in vars(_exceptions).items()
        if isinstance(value, type)
        and issubclass(value, MilvusImportError)
        and value.__module__ == _exceptions.__name__
    }


def _error_class_name(error: BaseException) -> str | None:
    """The name of the nearest class of ``error`` that exceptions.py defines (None: not one of ours)."""
    known = _error_classes()
    for cls in type(error).__mro__:
        if known.get(cls.__name__) is cls:
            return cls.__name__
    return None


def exception_for_result(result: WaitResult) -> MilvusImportError | None:
    """
    The exception an unsuccessful wait raises (None for success).

    ``failed`` -> :class:`MilvusImportJobFailed` (job, collection, reason, failed files; ``failed_files``
    lists every failed file of every failed job); ``timeout`` -> :class:`MilvusImportJobTimeout` (a sensor
    raises Airflow's own sensor timeout instead); ``error`` -> the class of the non-transient error that
    ended the wait (``error_type``: looked up among this package's exceptions only), else
    :class:`MilvusImportError`.
    """
    first_job = result.job_ids[0] if len(result.job_ids) == 1 else None
    if result.status is WaitStatus.SUCCESS:
        return None
    if result.status is WaitStatus.FAILED:
        failed = result.failed_jobs
        first = failed[0] if failed else None
        return MilvusImportJobFailed(
            result.message,
            failed_files=[item for progress in failed for item in failed_files(progress)],
            state=ImportJobState.FAILED.value,
            job_id=first.job_id if first else first_job,
            collection_name=(first.collection_name or None) if first else None,
        )
    if result.status is WaitStatus.TIMEOUT:
        return MilvusImportJobTimeout(result.message, job_id=first_job)
    error_class = _error_classes().get(result.error_type or "", MilvusImportError)
    if issubclass(error_class, (MilvusImportJobFailed, MilvusImportJobTimeout)):
        error_class = MilvusImportError  # outcomes of their own, never what a poll raises
    return error_class(
        result.message,
        endpoint=result.error_endpoint,
        job_id=result.error_job_id or first_job,
        code=result.error_code,
        http_status=result.error_http_status,
    )


class JobWaitTracker:
    """
    The state of one wait on one or more jobs: last progress per job, error and unknown-state counters.

    Feed it each poll's answers (:meth:`record_progress`, :meth:`record_error`, with the time of the
    poll on one monotonic clock), ask :meth:`evaluate` for the outcome, and poll again only
    :meth:`pending_job_ids`. Rules in the module docstring.

    :param job_ids: the jobs to wait for (normalised with :func:`normalize_job_ids`).
    :param accept_uncommitted: count ``Uncommitted`` (a 2PC job waiting for its commit) as success.
    :param max_consecutive_errors: polls in a row, per job, that report an unknown state before giving up.
        (Before 1.1 it also counted failed polls; those are now measured in time, ``error_tolerance``.)
    :param error_tolerance: seconds (or a timedelta) a job's polls may keep failing with transient errors
        before the wait gives up: from the first failed poll of a run of failures to a failed poll that
        long after it.
    :param conn_id: the connection, named in messages.
    :param endpoint: the endpoint polled (base URL), named in the give-up message when known.
    """

    def __init__(
        self,
        job_ids: Any,
        *,
        accept_uncommitted: bool = False,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        error_tolerance: Any = DEFAULT_ERROR_TOLERANCE_SECONDS,
        conn_id: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.error_tolerance = parse_error_tolerance(error_tolerance)
        if isinstance(max_consecutive_errors, bool) or not isinstance(max_consecutive_errors, int):
            raise TypeError("max_consecutive_errors must be an integer")
        if max_consecutive_errors < 1:
            raise ValueError(f"max_consecutive_errors must be at least 1, got {max_consecutive_errors}")
        self.job_ids: tuple[str, ...] = tuple(normalize_job_ids(job_ids))
        self.accept_uncommitted = accept_uncommitted
        self.max_consecutive_errors = max_consecutive_errors
        self.conn_id = conn_id
        self.endpoint = endpoint
        self.latest: dict[str, ImportJobProgress] = {}
        self.histories: dict[str, ProgressHistory] = {job_id: ProgressHistory() for job_id in self.job_ids}
        self._errors: dict[str, int] = dict.fromkeys(self.job_ids, 0)
        self._last_error: dict[str, str] = {}
        self._last_error_endpoint: dict[str, str] = {}
        #: per job: (monotonic time of the first failed poll of the current run of failures, of the last)
        self._failing: dict[str, tuple[float, float]] = {}
        self._unknown: dict[str, int] = dict.fromkeys(self.job_ids, 0)
        self._fatal: WaitResult | None = None  # its message and error fields; jobs are re-read at the end

    # -- feeding

    def record_progress(self, job_id: str, progress: ImportJobProgress, at: float) -> ProgressRate:
        """Record a successful poll of ``job_id`` at time ``at``; returns the job's rate estimate."""
        self._errors[job_id] = 0
        self._last_error.pop(job_id, None)
        self._failing.pop(job_id, None)
        if progress.state is ImportJobState.UNKNOWN:
            self._unknown[job_id] += 1
        else:
            self._unknown[job_id] = 0
        self.latest[job_id] = progress
        history = self.histories[job_id]
        history.add(progress, at)
        return history.rate(progress)

    def record_error(self, job_id: str, error: BaseException, at: float) -> int:
        """
        Record a failed poll of ``job_id`` at time ``at``; returns the job's consecutive failures so far.

        A non-transient error (one whose ``transient`` flag is not True: auth, permission, not found, bad
        request, unreadable answer, or anything that is not a :class:`MilvusImportError`) ends the wait
        with ``error`` at the next :meth:`evaluate`.
        """
        self._errors[job_id] += 1
        first = self._failing.get(job_id, (at, at))[0]
        self._failing[job_id] = (first, max(first, at))
        endpoint = _text_or_none(getattr(error, "endpoint", None))
        if endpoint is not None:
            self._last_error_endpoint[job_id] = endpoint
        text = str(error) or type(error).__name__
        if not isinstance(error, MilvusImportError):
            text = f"{type(error).__name__}: {text}"
        self._last_error[job_id] = text
        if not getattr(error, "transient", False) and self._fatal is None:
            self._fatal = replace(
                self.result(WaitStatus.ERROR, f"Cannot wait for Milvus import job {job_id}: {text}"),
                error_type=_error_class_name(error),
                error_endpoint=_text_or_none(getattr(error, "endpoint", None)),
                error_job_id=_text_or_none(getattr(error, "job_id", None)) or job_id,
                error_code=_int_or_none(getattr(error, "code", None)),
                error_http_status=_int_or_none(getattr(error, "http_status", None)),
            )
        return self._errors[job_id]

    def consecutive_errors(self, job_id: str) -> int:
        return self._errors[job_id]

    def failing_for(self, job_id: str) -> float:
        """Seconds from the first to the last failed poll of ``job_id``'s current run of failures."""
        first, last = self._failing.get(job_id, (0.0, 0.0))
        return last - first

    def tolerance_left(self, job_id: str, now: float) -> float | None:
        """Seconds until ``job_id``'s failing polls use up the tolerance (None: they are not failing)."""
        if job_id not in self._failing:
            return None
        return self._failing[job_id][0] + self.error_tolerance - now

    # -- asking

    def is_done(self, job_id: str) -> bool:
        progress = self.latest.get(job_id)
        return progress is not None and is_done_state(
            progress.state, accept_uncommitted=self.accept_uncommitted
        )

    def pending_job_ids(self) -> list[str]:
        """Jobs still worth polling: not finished (a Failed job ends the wait, so it is never pending)."""
        return [
            job_id
            for job_id in self.job_ids
            if not self.is_done(job_id)
            and not (job_id in self.latest and self.latest[job_id].state is ImportJobState.FAILED)
        ]

    def rates(self) -> dict[str, ProgressRate]:
        return {
            job_id: self.histories[job_id].rate(self.latest[job_id])
            for job_id in self.job_ids
            if job_id in self.latest
        }

    def evaluate(self) -> WaitResult | None:
        """The outcome so far, or None to keep waiting."""
        failed = [self.latest[job_id] for job_id in self.job_ids if self._is_failed(job_id)]
        if failed:
            return self.result(WaitStatus.FAILED, self._failed_message(failed))
        if self._fatal is not None:
            return replace(self._fatal, jobs=self._latest_jobs())
        failing = [job_id for job_id in self.job_ids if self.failing_for(job_id) >= self.error_tolerance]
        if failing:
            return self.result(WaitStatus.ERROR, self._gave_up_message(failing))
        for job_id in self.job_ids:
            if self._unknown[job_id] >= self.max_consecutive_errors:
                progress = self.latest[job_id]
                said = f" (server said: {progress.reason})" if progress.reason else ""
                return self.result(
                    WaitStatus.ERROR,
                    f"Milvus import {describe_job(progress, job_id)} reported an unknown state "
                    f"{_polls(self._unknown[job_id])} in a row{said}; not treating it as success"
                    f"{self._connection_text()}",
                )
        if all(self.is_done(job_id) for job_id in self.job_ids):
            return self.result(WaitStatus.SUCCESS, self._success_message())
        return None

    def timeout_result(self, deadline_text: str) -> WaitResult:
        """The ``timeout`` outcome: the last state and percent of every unfinished job."""
        unfinished = [job_id for job_id in self.job_ids if not self.is_done(job_id)]
        lines = [
            _state_text(self.latest[job_id]) if job_id in self.latest else f"job {job_id}: never answered"
            for job_id in unfinished
        ]
        count = (
            f"{len(unfinished)} of {len(self.job_ids)} Milvus import jobs"
            if len(self.job_ids) > 1
            else ("Milvus import job")
        )
        return self.result(
            WaitStatus.TIMEOUT,
            f"{count} did not finish before the deadline ({deadline_text}); " + "; ".join(lines),
        )

    def result(self, status: WaitStatus, message: str) -> WaitResult:
        return WaitResult(
            status=status,
            message=message,
            job_ids=self.job_ids,
            jobs=self._latest_jobs(),
        )

    def _latest_jobs(self) -> tuple[ImportJobProgress, ...]:
        return tuple(self.latest[job_id] for job_id in self.job_ids if job_id in self.latest)

    # -- messages

    def _is_failed(self, job_id: str) -> bool:
        return job_id in self.latest and self.latest[job_id].state is ImportJobState.FAILED

    def _connection_text(self) -> str:
        return f" [connection {self.conn_id!r}]" if self.conn_id else ""

    def _failed_message(self, failed: list[ImportJobProgress]) -> str:
        body = "; ".join(_failure_text(progress) for progress in failed)
        connection = self._connection_text()
        if len(self.job_ids) == 1:
            return f"Milvus import {body}{connection}"
        return f"{len(failed)} of {len(self.job_ids)} Milvus import jobs failed{connection}: {body}"

    def _gave_up_message(self, failing: list[str]) -> str:
        job_id = failing[0]
        endpoint = self._last_error_endpoint.get(job_id) or self.endpoint
        if endpoint and endpoint.split(" ", 1)[0] in {"GET", "POST"}:
            endpoint = endpoint.split(" ", 1)[1]  # "POST http://...": the endpoint is the URL
        where = f" on {endpoint}" if endpoint else ""
        jobs = f"job {job_id}" if len(failing) == 1 else f"jobs {', '.join(failing)}"
        return (
            f"Gave up waiting for Milvus import {jobs}{where}{self._connection_text()}: its polls have been "
            f"failing for {format_duration(self.failing_for(job_id))} "
            f"({_polls(self._errors[job_id], 'failed ')} in a row; tolerance "
            f"{format_duration(self.error_tolerance)}, set by error_tolerance); "
            f"last error: {self._last_error.get(job_id, 'unknown')}"
        )

    def _success_message(self) -> str:
        done = [self.latest[job_id] for job_id in self.job_ids]
        rows = sum(progress.imported_rows for progress in done)
        files = sum(len(progress.details) for progress in done)
        uncommitted = [progress for progress in done if progress.state is ImportJobState.UNCOMMITTED]
        note = (
            f"; {len(uncommitted)} Uncommitted (accepted: accept_uncommitted=True, they still need a commit)"
            if uncommitted
            else ""
        )
        if len(done) == 1:
            return (
                f"Milvus import {describe_job(done[0])} {done[0].state.value.lower()}: "
                f"{format_count(rows)} rows from {files} file(s){note}"
            )
        totals = f"{format_count(rows)} rows from {files} file(s){note}"
        return f"All {len(done)} Milvus import jobs finished: {totals}"

    def earliest_tolerance_left(self, now: float) -> float | None:
        """Seconds until the first failing pending job uses up its error tolerance (None: none failing)."""
        lefts = [self.tolerance_left(job_id, now) for job_id in self.pending_job_ids()]
        known = [left for left in lefts if left is not None]
        return max(0.0, min(known)) if known else None


# --------------------------------------------------------------------------------------------------------
# One round of polls


class PollLog(Protocol):
    """The logger a poll round writes to (a task's or a trigger's ``self.log``)."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


@dataclass(frozen=True)
class FailedPoll:
    """
    A poll of one job that raised, as recorded by :meth:`PollRound.record`.

    :param job_id: the job polled.
    :param error: what the poll raised.
    :param failures: the job's failed polls in a row so far, this one included.
    :param failing_for: seconds from the first to this failed poll of the current run of failures.
    :param error_tolerance: the wait's error tolerance, in seconds.
    """

    job_id: str
    error: BaseException
    failures: int
    failing_for: float
    error_tolerance: float

    @property
    def transient(self) -> bool:
        """Whether the wait goes on (a transient error) rather than ending at the next evaluate."""
        return bool(getattr(self.error, "transient", False))

    @property
    def error_text(self) -> tuple[str, BaseException]:
        """``(class name, error)``: the ``%s: %s`` tail of a failed-poll log line."""
        return type(self.error).__name__, self.error

    def counts(self) -> tuple[str, int, str, str]:
        """``(job id, failures, failing for, tolerance)``: the arguments a failed-poll line starts with."""
        return (
            self.job_id,
            self.failures,
            format_duration(self.failing_for),
            format_duration(self.error_tolerance),
        )


#: how a waiter words a transient failed poll: the ``(message, *args)`` of its warning
FailureWording = Callable[[FailedPoll], Sequence[Any]]


class PollRound:
    """
    One round of polls of a wait, shared by the sensor, the import operator and the trigger.

    Each answer (a progress, or the exception the poll raised) goes to :meth:`record`: the tracker learns
    it, a transient failure is logged as the waiter words it, a progress is logged as its progress line.
    :meth:`end` logs the summary line of a wait on several jobs and returns the outcome so far.

    :param tracker: the wait's state.
    :param log: where the lines go.
    :param failure_wording: the warning of a transient failed poll; None logs none (the waiter ends
        the wait itself).
    :param show_line: whether a job's progress line is logged this round (default: always).
    :param hold_lines: log the progress lines at :meth:`end` rather than as they come.
    """

    def __init__(
        self,
        tracker: JobWaitTracker,
        log: PollLog,
        *,
        failure_wording: FailureWording | None,
        show_line: Callable[[str, ImportJobProgress], bool] | None = None,
        hold_lines: bool = False,
    ) -> None:
        self.tracker = tracker
        self._log = log
        self._failure_wording = failure_wording
        self._show_line = show_line
        self._hold_lines = hold_lines
        self._lines: list[str] = []

    def record(
        self,
        job_id: str,
        answer: ImportJobProgress | BaseException,
        *,
        sent_at: float,
        answered_at: float,
    ) -> FailedPoll | None:
        """
        Record one poll's answer; returns what failed, if it did.

        :param sent_at: when the poll was sent (a failed poll counts from then, not from the end of its
            retries), on the tracker's monotonic clock.
        :param answered_at: when the answer came, on the same clock.
        """
        tracker = self.tracker
        if isinstance(answer, BaseException):
            failed = FailedPoll(
                job_id=job_id,
                error=answer,
                failures=tracker.record_error(job_id, answer, sent_at),
                failing_for=tracker.failing_for(job_id),
                error_tolerance=tracker.error_tolerance,
            )
            if failed.transient and self._failure_wording is not None:
                message, *args = self._failure_wording(failed)
                self._log.warning(message, *args)
            return failed
        rate = tracker.record_progress(job_id, answer, answered_at)
        if self._show_line is None or self._show_line(job_id, answer):
            line = format_progress_line(answer, rate)
            if self._hold_lines:
                self._lines.append(line)
            else:
                self._log.info("%s", line)
        return None

    def end(self) -> WaitResult | None:
        """Log the held lines and, for several jobs, the summary line; the outcome so far (None: wait on)."""
        tracker = self.tracker
        for line in self._lines:
            self._log.info("%s", line)
        self._lines.clear()
        if len(tracker.job_ids) > 1:
            self._log.info("%s", format_summary_line(tracker.job_ids, tracker.latest, tracker.rates()))
        return tracker.evaluate()
