"""MilvusImportJobTrigger: wait for Milvus / Zilliz Cloud import jobs in the triggerer, fully async."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_milvus_import._waiting import (
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    JobWaitTracker,
    WaitResult,
    WaitStatus,
    format_duration,
    format_progress_line,
    format_summary_line,
    normalize_job_ids,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from airflow_milvus_import.models import ImportJobProgress

__all__ = ["MilvusImportJobTrigger"]

#: the hook's ``default_conn_name`` (not imported from the hook: this module stays cheap to import)
DEFAULT_CONN_ID = "milvus_import_default"
DEFAULT_POLL_INTERVAL = 10.0
#: a poll still under way at the deadline may finish within this many seconds; then it is abandoned
DEADLINE_GRACE_SECONDS = 2.0
#: the longest ``Retry-After`` honoured (the hook caps its own retries the same way)
RETRY_AFTER_CAP_SECONDS = 60.0
#: progress calls in flight at once for one trigger waiting on many jobs
MAX_CONCURRENT_POLLS = 8
#: above this many unfinished jobs a poll logs the summary line and state changes, not a line per job
MAX_JOB_LINES_PER_POLL = 10


class _HookProgressSource:
    """
    Where a trigger gets job progress from: here, its own hook (one reused async HTTP client).

    This is the seam for a process-wide shared poller: a replacement only needs ``fetch`` and ``aclose``,
    and nothing of it is part of the trigger's serialized form.
    """

    def __init__(self, conn_id: str, db_name: str | None) -> None:
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

        # No retries inside the hook: the trigger tolerates failed polls itself, one per poll interval.
        self._hook: MilvusImportHook = MilvusImportHook(conn_id, max_retries=0)
        self._db_name = db_name
        self._limit = asyncio.Semaphore(MAX_CONCURRENT_POLLS)

    async def fetch(self, job_ids: Sequence[str]) -> dict[str, ImportJobProgress | Exception]:
        """The progress of each job, or the exception its call raised."""

        async def one(job_id: str) -> ImportJobProgress | Exception:
            async with self._limit:
                try:
                    return await self._hook.aget_import_progress(job_id, db_name=self._db_name)
                except Exception as error:
                    return error

        answers = await asyncio.gather(*(one(job_id) for job_id in job_ids))
        return dict(zip(job_ids, answers, strict=True))

    async def aclose(self) -> None:
        await self._hook.aclose()


class MilvusImportJobTrigger(BaseTrigger):
    """
    Poll one or more import jobs until they all finish, then fire one event and return.

    Fully async (the hook's httpx path; the connection is read with ``BaseHook.aget_connection``). The
    event payload is ``{"status": "success" | "failed" | "timeout" | "error", "message": str,
    "job_ids": [str, ...], "jobs": [ImportJobProgress.to_dict(), ...]}`` (``jobs``: the last progress seen
    of each job, where one was seen). Outcome rules (see :mod:`airflow_milvus_import._waiting`):

    - ``success``: every job ``Completed`` (or ``Uncommitted`` with ``accept_uncommitted``);
    - ``failed``: as soon as any job is ``Failed`` (fail fast: the other jobs are not waited for);
    - ``timeout``: ``end_time`` reached first (the trigger never sleeps past it);
    - ``error``: a non-transient error (auth, permission, not found, bad request) at once; a job whose
      polls fail ``max_consecutive_errors`` times in a row (connection errors, 5xx, 408, 429: each logged
      and retried at the next poll, after at least ``Retry-After``); or a job whose state stays unknown
      (``None``) that many polls in a row.

    Everything it needs is in :meth:`serialize` (no secret: the token stays in the Airflow connection),
    so a trigger rebuilt elsewhere (triggerer restart, another triggerer) resumes the same wait.
    :meth:`on_kill` leaves the jobs alone: a waiter does not own the jobs it watches.

    :param job_ids: one job id or a list (normalised to a list of strings, duplicates dropped).
    :param milvus_import_conn_id: the Airflow connection of the Milvus / Zilliz Cloud endpoint.
    :param db_name: the database (Milvus); None uses the connection's ``db_name`` extra or ``default``.
    :param poll_interval: seconds between polls.
    :param end_time: wall-clock deadline in epoch seconds; None waits without a deadline.
    :param max_consecutive_errors: failed polls (or unknown states) in a row, per job, before giving up.
    :param accept_uncommitted: count ``Uncommitted`` (a 2PC job waiting for its commit) as success.
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
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not isinstance(milvus_import_conn_id, str) or not milvus_import_conn_id.strip():
            raise ValueError("milvus_import_conn_id must be a non-empty string")
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
        self.job_ids: list[str] = normalize_job_ids(job_ids)
        self.milvus_import_conn_id = milvus_import_conn_id
        self.db_name = db_name
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time) if end_time is not None else None
        # Validates max_consecutive_errors the same way the wait will.
        JobWaitTracker(self.job_ids, max_consecutive_errors=max_consecutive_errors)
        self.max_consecutive_errors = max_consecutive_errors
        self.accept_uncommitted = bool(accept_uncommitted)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Every constructor argument; nothing secret."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_ids": list(self.job_ids),
                "milvus_import_conn_id": self.milvus_import_conn_id,
                "db_name": self.db_name,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "max_consecutive_errors": self.max_consecutive_errors,
                "accept_uncommitted": self.accept_uncommitted,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait, then yield exactly one event (the HTTP client is already closed when it is yielded)."""
        result = await self._wait()
        log = self.log.info if result.status is WaitStatus.SUCCESS else self.log.warning
        log("Milvus import wait ended with %s: %s", result.status.value, result.message)
        yield TriggerEvent(result.to_event())  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """Do nothing to the jobs: whoever created them owns them (the import operator can abort its own)."""
        self.log.info(
            "Not cancelling Milvus import job(s) %s: a waiter does not own the jobs it watches",
            ", ".join(self.job_ids),
        )

    # ----------------------------------------------------------------------------------------------------

    def _open_progress_source(self) -> _HookProgressSource:
        return _HookProgressSource(self.milvus_import_conn_id, self.db_name)

    def _deadline_text(self) -> str:
        if self.end_time is None:
            return "none"
        return datetime.fromtimestamp(self.end_time, tz=timezone.utc).isoformat(timespec="seconds")

    async def _wait(self) -> WaitResult:
        tracker = JobWaitTracker(
            self.job_ids,
            accept_uncommitted=self.accept_uncommitted,
            max_consecutive_errors=self.max_consecutive_errors,
            conn_id=self.milvus_import_conn_id,
        )
        try:
            source = self._open_progress_source()
        except Exception as error:
            return tracker.result(
                WaitStatus.ERROR, f"Cannot poll Milvus import jobs on {self.milvus_import_conn_id!r}: {error}"
            )
        last_logged_states: dict[str, str] = {}
        try:
            while True:
                poll_budget = None
                if self.end_time is not None:
                    poll_budget = max(0.0, self.end_time - time.time()) + DEADLINE_GRACE_SECONDS
                try:
                    retry_after = await asyncio.wait_for(
                        self._poll(source, tracker, last_logged_states), timeout=poll_budget
                    )
                except asyncio.TimeoutError:
                    return tracker.timeout_result(f"{self._deadline_text()}; a poll was still under way")
                result = tracker.evaluate()
                if result is not None:
                    return result
                delay = max(self.poll_interval, retry_after or 0.0)
                if self.end_time is not None:
                    remaining = self.end_time - time.time()
                    if remaining <= 0:
                        return tracker.timeout_result(self._deadline_text())
                    delay = min(delay, remaining)
                await asyncio.sleep(delay)
        finally:
            await source.aclose()

    async def _poll(
        self, source: _HookProgressSource, tracker: JobWaitTracker, last_logged_states: dict[str, str]
    ) -> float | None:
        """Poll every unfinished job once; returns the longest ``Retry-After`` a server asked for."""
        pending = tracker.pending_job_ids()
        answers = await source.fetch(pending)
        polled_at = time.monotonic()
        retry_after: float | None = None
        lines: list[str] = []
        for job_id in pending:
            answer = answers[job_id]
            if isinstance(answer, Exception):
                failures = tracker.record_error(job_id, answer)
                if getattr(answer, "transient", False):
                    asked = getattr(answer, "retry_after", None)
                    if isinstance(asked, (int, float)) and math.isfinite(asked) and asked > 0:
                        retry_after = max(retry_after or 0.0, min(float(asked), RETRY_AFTER_CAP_SECONDS))
                    wait = max(self.poll_interval, retry_after or 0.0)
                    self.log.warning(
                        "Poll of Milvus import job %s failed (%d/%d in a row), retrying in %s: %s: %s",
                        job_id,
                        failures,
                        self.max_consecutive_errors,
                        format_duration(wait),
                        type(answer).__name__,
                        answer,
                    )
                continue
            rate = tracker.record_progress(job_id, answer, polled_at)
            state = answer.state.value
            if len(pending) <= MAX_JOB_LINES_PER_POLL or last_logged_states.get(job_id) != state:
                lines.append(format_progress_line(answer, rate))
            last_logged_states[job_id] = state
        for line in lines:
            self.log.info("%s", line)
        if len(self.job_ids) > 1:
            self.log.info("%s", format_summary_line(tracker.job_ids, tracker.latest, tracker.rates()))
        return retry_after
