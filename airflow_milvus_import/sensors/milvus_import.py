"""MilvusImportJobSensor: wait for Milvus / Zilliz Cloud import jobs, deferrable, poke or reschedule."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_milvus_import.arguments import (
    check_max_consecutive_errors,
    job_ids_given_as_list,
    normalize_job_ids,
    parse_error_tolerance,
)
from airflow_milvus_import.exceptions import MilvusImportError
from airflow_milvus_import.operators import ImportJobTask
from airflow_milvus_import.waiting.events import WaitResult, WaitStatus, exception_for_result
from airflow_milvus_import.waiting.messages import format_duration
from airflow_milvus_import.waiting.tracker import (
    DEFAULT_ERROR_TOLERANCE_SECONDS,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    JobWaitTracker,
    PollRound,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from airflow_milvus_import.lineage import LineageTarget
    from airflow_milvus_import.operators import LineageInputs
    from airflow_milvus_import.waiting.tracker import FailedPoll

__all__ = ["JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS", "MilvusImportJobSensor"]

#: A ``job_id`` for a DAG scheduled on a collection asset: every ``job_id`` in the extras of the asset
#: events that triggered the run (what :class:`MilvusBulkImportOperator` puts there, and what an asset
#: watcher's ``MilvusImportJobEventTrigger`` puts in ``extra["payload"]``), as a list.
JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS = (
    "{{ ((triggering_asset_events.values() | sum(start=[]) | map(attribute='extra') "
    "| selectattr('job_id', 'defined') | map(attribute='job_id') | list) "
    "+ (triggering_asset_events.values() | sum(start=[]) | map(attribute='extra') "
    "| selectattr('payload', 'mapping') | map(attribute='payload') "
    "| selectattr('job_id', 'defined') | map(attribute='job_id') | list)) | unique | list }}"
)

DEFAULT_CONN_ID = "milvus_import_default"
#: poke interval (seconds) when neither ``poll_interval`` nor ``poke_interval`` is given (deferrable and
#: poke mode; reschedule mode keeps Airflow's default, as each reschedule costs the scheduler a round trip)
DEFAULT_POLL_INTERVAL = 10.0


def _failed_check_warning(failed: FailedPoll) -> tuple[Any, ...]:
    return (
        "Check of Milvus import job %s failed (%d in a row, failing for %s of the %s tolerated): %s: %s",
        *failed.counts(),
        *failed.error_text,
    )


class MilvusImportJobSensor(ImportJobTask, BaseSensorOperator):  # type: ignore[misc]  # links: a property
    """
    Wait until one import job, or every job of a list, has finished.

    Completed jobs succeed (the XCom ``return_value`` is the job's progress, ``ImportJobProgress.to_dict()``,
    or the list of them when ``job_id`` is a list). A Failed job fails the task at once with
    :class:`~airflow_milvus_import.exceptions.MilvusImportJobFailed` naming the job, the collection, the
    reason and each failed file with its reason. A job whose state stays unknown (``None``) fails the task
    rather than waiting forever. ``Uncommitted`` (a 2PC job waiting for its commit) only counts as done with
    ``accept_uncommitted=True``. Reaching ``timeout`` raises Airflow's sensor timeout; with ``soft_fail``
    every failure (timeouts included) skips the task instead, in every mode.

    Modes: ``deferrable=True`` checks once, then frees the worker and waits in the triggerer
    (:class:`~airflow_milvus_import.triggers.milvus_import.MilvusImportJobTrigger`); otherwise Airflow's
    ``mode="poke"`` (holds a worker slot) or ``mode="reschedule"`` (one check per reschedule).

    :param job_id: a job id, or a list of them (templated; the text of a list such as ``"['1', '2']"``,
        what a template renders a pulled XCom list to, is read as a list).
    :param milvus_import_conn_id: the Airflow connection of the endpoint (templated).
    :param db_name: the database (templated); None uses the connection's ``db_name`` extra or ``default``.
    :param accept_uncommitted: count ``Uncommitted`` as success.
    :param max_consecutive_errors: checks in a row, per job, that report an unknown state before failing.
    :param error_tolerance: seconds (or a timedelta) a job's checks may keep failing with transient errors
        (connection errors, timeouts, 5xx, 408, 429; each check already retries inside, as every hook call
        does) before the sensor fails: 600 (10 minutes) by default, at any poll interval. Measured while
        deferred and in poke mode; in reschedule mode each check is a fresh process, so a check whose call
        still fails after the hook's own retries fails the try (``retries`` apply).
    :param poll_interval: seconds between checks (an alias of ``poke_interval``; give one of them).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.

    **As an asset-watching step.** In a DAG scheduled on a collection asset that
    :class:`~airflow_milvus_import.operators.milvus_import.MilvusBulkImportOperator` updates,
    ``job_id=JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS`` waits for (or, when the producer already waited,
    re-checks) every import job that triggered the run, and returns their progress as a list.
    With Airflow's OpenLineage provider installed the sensor reports the jobs' files as inputs and their
    collections as outputs; its "Milvus import job" link opens the job's console page.
    """

    template_fields: Sequence[str] = ("job_id", "milvus_import_conn_id", "db_name")
    ui_color = "#d6ecfa"

    def __init__(
        self,
        *,
        job_id: str | int | Sequence[str | int],
        milvus_import_conn_id: str = DEFAULT_CONN_ID,
        db_name: str | None = None,
        accept_uncommitted: bool = False,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        error_tolerance: float | timedelta = DEFAULT_ERROR_TOLERANCE_SECONDS,
        poll_interval: float | timedelta | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None:
            if "poke_interval" in kwargs:
                raise ValueError("Give poll_interval or poke_interval, not both (they are the same setting)")
            kwargs["poke_interval"] = poll_interval
        elif "poke_interval" not in kwargs and kwargs.get("mode", "poke") != "reschedule":
            kwargs["poke_interval"] = DEFAULT_POLL_INTERVAL
        super().__init__(**kwargs)
        check_max_consecutive_errors(max_consecutive_errors)
        self.job_id = job_id
        self.milvus_import_conn_id = milvus_import_conn_id
        self.db_name = db_name
        self.accept_uncommitted = accept_uncommitted
        self.max_consecutive_errors = max_consecutive_errors
        self.error_tolerance = parse_error_tolerance(error_tolerance)
        self.deferrable = deferrable
        self._hook: MilvusImportHook | None = None
        self._tracker: JobWaitTracker | None = None
        self._start_import_task()

    # ----------------------------------------------------------------------------------------------------
    # Airflow entry points

    def execute(self, context: Context) -> Any:
        self._ran = True
        tracker = self._new_tracker()
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as timeout:
                # Airflow's own message says how long; add what the jobs were doing when time ran out.
                detail = tracker.timeout_result(f"sensor timeout {format_duration(self.timeout)}").message
                raise AirflowSensorTimeout(f"{timeout} {detail}") from None
            finally:
                self._close_hook()
        end_time = time.time() + self.timeout
        try:
            result = self._poll_round(tracker)
        finally:
            self._close_hook()
        if result is not None:
            self.log.info("Import finished before deferring: no need to wait in the triggerer")
            return self._finish(result)
        self.log.info(
            "Deferring: the triggerer checks %s every %s until done or the sensor's timeout (%s)",
            ", ".join(tracker.job_ids),
            format_duration(self.poke_interval),
            format_duration(self.timeout),
        )
        self.defer(
            trigger=self._wait_trigger(tracker.job_ids, poll_interval=self.poke_interval, end_time=end_time),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(0.0, end_time - time.time())),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        self._ran = True
        tracker = self._tracker or self._new_tracker()
        try:
            result = self._poll_round(tracker)
        finally:
            if self.reschedule:
                self._close_hook()
        if result is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(result))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: map its event to the XCom value or the exception."""
        self._ran = True
        if event is None:
            raise MilvusImportError(
                f"The trigger gave no event for Milvus import job(s) {self.job_id!r}", job_id=None
            )
        return self._finish(WaitResult.from_event(event))

    # ----------------------------------------------------------------------------------------------------

    def _new_tracker(self) -> JobWaitTracker:
        self._tracker = self._wait_tracker(self.job_id)
        return self._tracker

    @property
    def _checks_start_fresh(self) -> bool:
        """Reschedule mode: every check runs in a new process, so nothing carries over between checks."""
        return bool(self.reschedule) and not self.deferrable

    def _get_next_poke_interval(self, started_at: Any, run_duration: Any, poke_count: int) -> float:
        # Poke mode: a job whose checks keep failing is checked again when its tolerance runs out, so the
        # sensor gives up within the tolerance plus one interval of an outage's start.
        interval = float(super()._get_next_poke_interval(started_at, run_duration, poke_count))
        tracker = self._tracker
        if tracker is None or self._checks_start_fresh:
            return interval
        left = tracker.earliest_tolerance_left(time.monotonic())
        return interval if left is None else min(interval, left)

    @property
    def _single_job(self) -> bool:
        """Whether the user asked for one job (XCom: one dict) rather than a list (XCom: a list)."""
        return not job_ids_given_as_list(self.job_id)

    def _get_hook(self) -> MilvusImportHook:
        if self._hook is None:
            from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

            self._hook = MilvusImportHook(self.milvus_import_conn_id)
        return self._hook

    def _close_hook(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook.close()

    def _poll_round(self, tracker: JobWaitTracker) -> WaitResult | None:
        """Check every unfinished job once (sync hook, with its own retries); the outcome, if any yet."""
        hook = self._get_hook()
        # Reschedule mode ends the try at a transient failure instead of logging it and waiting on.
        wording = None if self._checks_start_fresh else _failed_check_warning
        poll_round = PollRound(tracker, self.log, failure_wording=wording)
        for job_id in tracker.pending_job_ids():
            failed = self._check_job(hook, poll_round, job_id)
            if failed is not None and failed.transient and self._checks_start_fresh:
                return tracker.result(
                    WaitStatus.ERROR,
                    f"Check of Milvus import job {job_id} failed after the connection's retries "
                    f"(reschedule mode: the task's retries apply): {failed.error}",
                )
        return poll_round.end()

    def _finish(self, result: WaitResult) -> Any:
        """The XCom value of a successful wait; otherwise raise what the outcome calls for."""
        self._remember_outcome(result)
        self._learn_target()
        if result.status is WaitStatus.SUCCESS:
            self.log.info("%s", result.message)
            return result.xcom_value(single=self._single_job)
        self.log.error("%s", result.message)
        if self.soft_fail:
            raise AirflowSkipException(f"Skipping (soft_fail=True): {result.message}")
        if result.status is WaitStatus.TIMEOUT:
            raise AirflowSensorTimeout(
                f"Sensor timed out after {format_duration(self.timeout)}: {result.message}"
            )
        error = exception_for_result(result)
        if error is None:  # pragma: no cover - success is handled above
            raise MilvusImportError(result.message)
        raise error

    # ----------------------------------------------------------------------------------------------------
    # Lineage and links (ImportJobTask)

    def import_job_ids(self) -> list[str]:
        """The jobs the sensor waits for: its rendered ``job_id`` (empty when it names no valid id)."""
        try:
            return normalize_job_ids(self.job_id)
        except ValueError:
            return []

    def _jobs_in_progress(self) -> list[dict[str, Any]]:
        if self._tracker is not None:
            return [progress.to_dict() for progress in self._tracker.latest.values()]
        return []

    def _lineage_of_run(self, target: LineageTarget) -> LineageInputs | None:
        jobs = self.known_import_jobs()
        return (target, _lineage_arguments(jobs, self.db_name)) if jobs else None

    def _lineage_from_records(self, task_instance: Any) -> LineageInputs:
        from airflow_milvus_import.lineage import pull_xcom, rendered_value, target_from_connection

        pulled = pull_xcom(task_instance, self.task_id, "return_value")
        jobs = pulled if isinstance(pulled, list) else [pulled] if pulled else []
        rendered: dict[str, Any] = {}
        conn_id = rendered_value(self, "milvus_import_conn_id", task_instance, rendered)
        db_name = rendered_value(self, "db_name", task_instance, rendered)
        return target_from_connection(str(conn_id)), _lineage_arguments(jobs, db_name)


def _lineage_arguments(jobs: list[Any], db_name: Any) -> dict[str, Any]:
    return {
        "jobs": jobs,
        "job_ids": [str(job.get("job_id")) for job in jobs if isinstance(job, dict) and job.get("job_id")],
        "db_name": db_name if isinstance(db_name, str) and db_name else None,
    }
