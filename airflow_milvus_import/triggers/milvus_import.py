"""MilvusImportJobTrigger: wait for Milvus / Zilliz Cloud import jobs in the triggerer, fully async."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_milvus_import.arguments import check_conn_id, normalize_job_ids
from airflow_milvus_import.waiting.events import WaitResult, WaitStatus
from airflow_milvus_import.waiting.messages import format_duration
from airflow_milvus_import.waiting.tracker import (
    DEFAULT_ERROR_TOLERANCE_SECONDS,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    JobWaitTracker,
    PollRound,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence

    from airflow_milvus_import.models import ImportJobProgress
    from airflow_milvus_import.polling import SharedProgressSource
    from airflow_milvus_import.waiting.tracker import FailedPoll

__all__ = ["MilvusImportJobTrigger", "next_poll_delay"]

#: the hook's ``default_conn_name`` (not imported from the hook: this module stays cheap to import)
DEFAULT_CONN_ID = "milvus_import_default"
DEFAULT_POLL_INTERVAL = 10.0
#: a poll still under way at the deadline may finish within this many seconds; then it is abandoned
DEADLINE_GRACE_SECONDS = 2.0
#: the longest ``Retry-After`` honoured (the hook caps its own retries the same way)
RETRY_AFTER_CAP_SECONDS = 60.0
#: above this many unfinished jobs a poll logs the summary line and state changes, not a line per job
MAX_JOB_LINES_PER_POLL = 10


#: with ``max_poll_interval``, the next poll comes after this share of the job's estimated time left
STRETCH_FRACTION = 0.25
#: ``on_kill`` gives up on the abort calls after this many seconds (Airflow allows ``on_kill`` 30 s)
ON_KILL_TIMEOUT_SECONDS = 20.0


_T = TypeVar("_T")


async def _within(seconds: float | None, awaitable: Awaitable[_T]) -> _T:
    """
    ``await awaitable``, for at most ``seconds`` (None: no limit); raises :class:`asyncio.TimeoutError`.

    Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancellation that arrives just as the
    awaited poll completes, and a trigger the triggerer cancelled would then go on polling forever.
    """
    if seconds is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10


def next_poll_delay(
    poll_interval: float,
    *,
    max_poll_interval: float | None = None,
    etas: Iterable[float | None] = (),
    retry_after: float | None = None,
    remaining: float | None = None,
) -> tuple[float, bool]:
    """
    Seconds until the next poll, and whether they must not be shortened (a server's ``Retry-After``, or
    the deadline's last look).

    ``poll_interval`` is the user's bound. With ``max_poll_interval`` set, a wait on jobs that will take a
    while polls less often: a quarter of the shortest estimated time left (``etas``, one per unfinished
    job; no stretching while any job has no estimate yet), between ``poll_interval`` and
    ``max_poll_interval``. A ``Retry-After`` longer than that wins; the deadline (``remaining`` seconds)
    caps everything.
    """
    delay = poll_interval
    if max_poll_interval is not None and max_poll_interval > poll_interval:
        known = list(etas)
        if known and all(eta is not None and math.isfinite(eta) and eta >= 0 for eta in known):
            shortest = min(eta for eta in known if eta is not None)
            delay = min(max_poll_interval, max(poll_interval, shortest * STRETCH_FRACTION))
    exact = False
    if retry_after is not None and retry_after > delay:
        delay, exact = retry_after, True
    if remaining is not None and remaining <= delay:
        delay, exact = max(0.0, remaining), True
    return delay, exact


class MilvusImportJobTrigger(BaseTrigger):
    """
    Poll one or more import jobs until they all finish, then fire one event and return.

    Fully async (the hook's httpx path; the connection is read with ``BaseHook.aget_connection``). The
    event payload is ``{"status": "success" | "failed" | "timeout" | "error", "message": str,
    "job_ids": [str, ...], "jobs": [ImportJobProgress.to_dict(), ...]}`` (``jobs``: the last progress seen
    of each job, where one was seen). Outcome rules (see :mod:`airflow_milvus_import.waiting.tracker`):

    - ``success``: every job ``Completed`` (or ``Uncommitted`` with ``accept_uncommitted``);
    - ``failed``: as soon as any job is ``Failed`` (fail fast: the other jobs are not waited for);
    - ``timeout``: ``end_time`` reached first (the trigger never sleeps past it);
    - ``error``: a non-transient error (auth, permission, not found, bad request) at once; a job whose
      polls keep failing with transient errors (connection errors, timeouts, 5xx, 408, 429) for
      ``error_tolerance`` (10 minutes by default, at any poll interval; each poll already retries within
      itself, and a failed poll is logged and polled again at the next interval, after at least
      ``Retry-After``); or a job whose state stays unknown (``None``) ``max_consecutive_errors`` polls in
      a row.

    Everything it needs is in :meth:`serialize` (no secret: the token stays in the Airflow connection),
    so a trigger rebuilt elsewhere (triggerer restart, another triggerer) resumes the same wait.
    :meth:`on_kill` (Airflow 3.3+, a user killed the deferred task) leaves the jobs alone unless
    ``abort_on_kill`` is set: a waiter does not own the jobs it watches, the operator that created a
    two-phase job does.

    Triggers of one triggerer that wait on the same endpoint share one poller and one HTTP connection pool
    (:mod:`airflow_milvus_import.polling`): many waits cost about one ``list`` per interval instead of one
    ``describe`` per job, within the endpoint's rate budget. Alone, a trigger polls ``describe`` per job.

    :param job_ids: one job id or a list (normalised to a list of strings, duplicates dropped).
    :param milvus_import_conn_id: the Airflow connection of the Milvus / Zilliz Cloud endpoint.
    :param db_name: the database (Milvus); None uses the connection's ``db_name`` extra or ``default``.
    :param poll_interval: seconds between polls (the shortest interval, with ``max_poll_interval``).
    :param end_time: wall-clock deadline in epoch seconds; None waits without a deadline.
    :param max_consecutive_errors: polls in a row, per job, that report an unknown state before giving up.
    :param accept_uncommitted: count ``Uncommitted`` (a 2PC job waiting for its commit) as success.
    :param max_poll_interval: let the interval grow up to this many seconds for jobs whose estimated time
        left is long (a quarter of it; never past the deadline). None: always ``poll_interval``.
    :param abort_on_kill: abort the jobs that have not ended when the task is killed while deferred
        (for the import operator's two-phase jobs); False: leave them running.
    :param error_tolerance: seconds (or a timedelta) a job's polls may keep failing with transient errors
        before the wait ends with ``error`` (default 600: an outage of up to 10 minutes is waited out).

    """

    def __init__(
        self,
        job_ids: str | int | Sequence[str | int],
        *,
        milvus_import_conn_id: str = DEFAULT_CONN_ID,
        db_name: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        end_time: float | None = None,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        accept_uncommitted: bool = False,
        max_poll_interval: float | None = None,
        abort_on_kill: bool = False,
        error_tolerance: Any = DEFAULT_ERROR_TOLERANCE_SECONDS,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        check_conn_id(milvus_import_conn_id)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
            raise TypeError(f"poll_interval must be a number of seconds, got {poll_interval!r}")
        if not math.isfinite(poll_interval) or poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        if end_time is not None and (
            isinstance(end_time, bool)
            or not isinstance(end_time, (int, float))
            or not math.isfinite(end_time)
        ):
            raise ValueError(f"end_time must be epoch seconds or None, got {end_time!r}")
        if max_poll_interval is not None:
            if isinstance(max_poll_interval, bool) or not isinstance(max_poll_interval, (int, float)):
                raise TypeError(f"max_poll_interval must be a number of seconds, got {max_poll_interval!r}")
            if not math.isfinite(max_poll_interval) or max_poll_interval < poll_interval:
                raise ValueError(
                    f"max_poll_interval must be at least poll_interval ({poll_interval:g} s), "
                    f"got {max_poll_interval!r}"
                )
        self.job_ids: list[str] = normalize_job_ids(job_ids)
        self.milvus_import_conn_id = milvus_import_conn_id
        self.db_name = db_name
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time) if end_time is not None else None
        # Validates max_consecutive_errors and error_tolerance the same way the wait will.
        checked = JobWaitTracker(
            self.job_ids, max_consecutive_errors=max_consecutive_errors, error_tolerance=error_tolerance
        )
        self.max_consecutive_errors = max_consecutive_errors
        self.error_tolerance = checked.error_tolerance
        self.accept_uncommitted = bool(accept_uncommitted)
        self.max_poll_interval = float(max_poll_interval) if max_poll_interval is not None else None
        self.abort_on_kill = bool(abort_on_kill)
        self._tracker: JobWaitTracker | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """
        Every constructor argument; nothing secret.

        ``max_poll_interval``, ``abort_on_kill`` and ``error_tolerance`` are written only when they differ
        from their defaults,
        so a trigger that does not use them keeps the serialized form of earlier versions (a triggerer
        still running an older version of this package can rebuild it).
        """
        kwargs: dict[str, Any] = {
            "job_ids": list(self.job_ids),
            "milvus_import_conn_id": self.milvus_import_conn_id,
            "db_name": self.db_name,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "max_consecutive_errors": self.max_consecutive_errors,
            "accept_uncommitted": self.accept_uncommitted,
        }
        if self.max_poll_interval is not None:
            kwargs["max_poll_interval"] = self.max_poll_interval
        if self.abort_on_kill:
            kwargs["abort_on_kill"] = True
        if self.error_tolerance != DEFAULT_ERROR_TOLERANCE_SECONDS:
            kwargs["error_tolerance"] = self.error_tolerance
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait, then yield exactly one event (the HTTP client is already closed when it is yielded)."""
        result = await self._wait()
        log = self.log.info if result.status is WaitStatus.SUCCESS else self.log.warning
        log("Milvus import wait ended with %s: %s", result.status.value, result.message)
        yield TriggerEvent(result.to_event())  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """
        The task was killed while deferred: abort the unfinished jobs with ``abort_on_kill``, else leave
        them alone (whoever created them owns them). Errors are logged, never raised.
        """
        if not self.abort_on_kill:
            self.log.info(
                "Not cancelling Milvus import job(s) %s: a waiter does not own the jobs it watches",
                ", ".join(self.job_ids),
            )
            return
        latest = self._tracker.latest if self._tracker is not None else {}
        ended = [job_id for job_id in self.job_ids if job_id in latest and latest[job_id].state.is_terminal]
        targets = [job_id for job_id in self.job_ids if job_id not in ended]
        if ended:
            self.log.info(
                "Task killed: Milvus import job(s) %s already ended; nothing to abort there", ", ".join(ended)
            )
        if not targets:
            return
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

        self.log.warning(
            "Task killed: aborting Milvus import job(s) %s (abort_on_kill=True)", ", ".join(targets)
        )
        hook = MilvusImportHook(self.milvus_import_conn_id, max_retries=1)

        async def abort(job_id: str) -> None:
            try:
                await hook.aabort_import_job(job_id, db_name=self.db_name)
            except Exception as error:
                self.log.error(
                    "Task killed: could not abort Milvus import job %s; it may still complete (abort it by "
                    "hand if needed): %s",
                    job_id,
                    error,
                )
            else:
                self.log.info(
                    "Task killed: aborted Milvus import job %s; its data will not be committed", job_id
                )

        try:
            await _within(ON_KILL_TIMEOUT_SECONDS, asyncio.gather(*(abort(job_id) for job_id in targets)))
        except asyncio.TimeoutError:
            self.log.error(
                "Task killed: aborting Milvus import job(s) %s did not finish within %s",
                ", ".join(targets),
                format_duration(ON_KILL_TIMEOUT_SECONDS),
            )
        finally:
            await hook.aclose()

    # ----------------------------------------------------------------------------------------------------

    def _open_progress_source(self) -> SharedProgressSource:
        """The shared poller of this trigger's endpoint (per triggerer process and event loop)."""
        from airflow_milvus_import.polling import SharedProgressSource

        return SharedProgressSource(
            self.milvus_import_conn_id,
            self.db_name,
            accept_uncommitted=self.accept_uncommitted,
            end_time=self.end_time,
        )

    def _deadline_text(self) -> str:
        if self.end_time is None:
            return "none"
        return datetime.fromtimestamp(self.end_time, tz=timezone.utc).isoformat(timespec="seconds")

    async def _wait(self) -> WaitResult:
        tracker = JobWaitTracker(
            self.job_ids,
            accept_uncommitted=self.accept_uncommitted,
            max_consecutive_errors=self.max_consecutive_errors,
            error_tolerance=self.error_tolerance,
            conn_id=self.milvus_import_conn_id,
        )
        self._tracker = tracker
        try:
            source = self._open_progress_source()
        except Exception as error:
            return tracker.result(
                WaitStatus.ERROR, f"Cannot poll Milvus import jobs on {self.milvus_import_conn_id!r}: {error}"
            )
        last_logged_states: dict[str, str] = {}
        delay, exact = 0.0, False
        try:
            while True:
                poll_budget = None
                if self.end_time is not None:
                    poll_budget = max(0.0, self.end_time - time.time()) + DEADLINE_GRACE_SECONDS
                try:
                    retry_after = await _within(
                        poll_budget, self._poll(source, tracker, last_logged_states, delay, exact)
                    )
                except asyncio.TimeoutError:
                    return tracker.timeout_result(f"{self._deadline_text()}; a poll was still under way")
                result = tracker.evaluate()
                if result is not None:
                    return result
                remaining = None
                if self.end_time is not None:
                    remaining = self.end_time - time.time()
                    if remaining <= 0:
                        return tracker.timeout_result(self._deadline_text())
                rates = tracker.rates()
                delay, exact = next_poll_delay(
                    self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    etas=[
                        rates[job_id].eta_seconds if job_id in rates else None
                        for job_id in tracker.pending_job_ids()
                    ],
                    retry_after=retry_after,
                    remaining=remaining,
                )
                # A job whose polls keep failing is polled again when its tolerance runs out, not later:
                # the wait gives up within the tolerance plus one interval of an outage's start.
                left = tracker.earliest_tolerance_left(time.monotonic())
                if left is not None and left < delay and (retry_after is None or left >= retry_after):
                    delay, exact = left, True
        finally:
            await source.aclose()

    async def _poll(
        self,
        source: SharedProgressSource,
        tracker: JobWaitTracker,
        last_logged_states: dict[str, str],
        delay: float = 0.0,
        exact: bool = False,
    ) -> float | None:
        """
        Poll every unfinished job once, ``delay`` seconds from now; returns the longest ``Retry-After``
        a server asked for.
        """
        pending = tracker.pending_job_ids()
        asked_at = time.monotonic()
        # While polls fail, a poll's own retries stop where the tolerance runs out.
        left = tracker.earliest_tolerance_left(asked_at)
        answers = await source.fetch(
            pending, delay=delay, exact=exact, retry_until=None if left is None else asked_at + left
        )
        polled_at = time.monotonic()
        # A failed poll counts from when it was sent, not from the end of its retries.
        sent_at = min(polled_at, asked_at + delay)
        retry_after: float | None = None

        def failed_poll_warning(failed: FailedPoll) -> tuple[Any, ...]:
            return (
                "Poll of Milvus import job %s failed (%d in a row, failing for %s of the %s tolerated), "
                "polling again in %s: %s: %s",
                *failed.counts(),
                format_duration(max(self.poll_interval, retry_after or 0.0)),
                *failed.error_text,
            )

        def show_line(job_id: str, progress: ImportJobProgress) -> bool:
            state, last_state = progress.state.value, last_logged_states.get(job_id)
            last_logged_states[job_id] = state
            return len(pending) <= MAX_JOB_LINES_PER_POLL or last_state != state

        poll_round = PollRound(
            tracker, self.log, failure_wording=failed_poll_warning, show_line=show_line, hold_lines=True
        )
        for job_id in pending:
            answer = answers[job_id]
            if isinstance(answer, Exception) and getattr(answer, "transient", False):
                asked = getattr(answer, "retry_after", None)
                if isinstance(asked, (int, float)) and math.isfinite(asked) and asked > 0:
                    retry_after = max(retry_after or 0.0, min(float(asked), RETRY_AFTER_CAP_SECONDS))
            poll_round.record(job_id, answer, sent_at=sent_at, answered_at=polled_at)
        poll_round.end()
        return retry_after
