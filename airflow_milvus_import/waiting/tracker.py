"""
One wait on one or more import jobs, without the I/O: :class:`JobWaitTracker` (the rules deciding the
outcome) and :class:`PollRound` (one round of polls: record, log, evaluate), shared by the trigger, the
sensor and the import operator.

Rules of :meth:`JobWaitTracker.evaluate`:

1. **fail fast**: as soon as any job is ``Failed`` the wait ends ``failed`` (the other jobs are not
   waited for; their last-seen progress is reported);
2. a job whose polls keep failing with transient errors (connection errors, timeouts, 5xx, 408, 429)
   for ``error_tolerance`` seconds (10 minutes by default, whatever the poll interval), or whose state
   stays unknown (``None``) ``max_consecutive_errors`` polls in a row, ends the wait with ``error``; a
   non-transient error (auth, not found, bad request) ends it at once;
3. ``success`` once every job is ``Completed`` (or ``Uncommitted`` when ``accept_uncommitted``);
4. otherwise keep waiting; the caller ends the wait with ``timeout`` at its deadline.

Times are whatever monotonic clock the caller uses (callers pass them in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from airflow_milvus_import.arguments import (
    check_max_consecutive_errors,
    normalize_job_ids,
    parse_error_tolerance,
)
from airflow_milvus_import.exceptions import MilvusImportError
from airflow_milvus_import.models import ImportJobProgress, ImportJobState
from airflow_milvus_import.waiting.events import (
    WaitResult,
    WaitStatus,
    _error_class_name,
    _int_or_none,
    _text_or_none,
)
from airflow_milvus_import.waiting.messages import (
    _failure_text,
    _polls,
    _state_text,
    describe_job,
    format_count,
    format_duration,
    format_progress_line,
    format_summary_line,
)
from airflow_milvus_import.waiting.progress import ProgressHistory, ProgressRate

__all__ = [
    "DEFAULT_ERROR_TOLERANCE_SECONDS",
    "DEFAULT_MAX_CONSECUTIVE_ERRORS",
    "FailedPoll",
    "FailureWording",
    "JobWaitTracker",
    "PollLog",
    "PollRound",
    "is_done_state",
]

DEFAULT_MAX_CONSECUTIVE_ERRORS = 5
#: how long a wait tolerates polls failing with transient errors (an outage, a proxy restart) by default
DEFAULT_ERROR_TOLERANCE_SECONDS = 600.0


def is_done_state(state: ImportJobState, *, accept_uncommitted: bool = False) -> bool:
    """Whether a job in ``state`` counts as successfully finished for a waiter."""
    if state is ImportJobState.COMPLETED:
        return True
    return accept_uncommitted and state is ImportJobState.UNCOMMITTED


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
        check_max_consecutive_errors(max_consecutive_errors)
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
