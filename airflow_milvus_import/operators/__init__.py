"""
The task layer's operators; here, what the import operator and the sensor share: the job(s) a try works
on, the collection target read from the connection, the wait's tracker and trigger, and the OpenLineage
view. Imported by DAG files through them: nothing heavy here (typing only at import time).

:class:`ImportJobTask` is also the interface the "Milvus import job" link reads
(:class:`airflow_milvus_import.links.ImportJobSource`, declared there):
:meth:`~ImportJobTask.import_job_ids` and :meth:`~ImportJobTask.known_import_jobs`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from airflow_milvus_import.lineage import LineageTarget
    from airflow_milvus_import.models import ImportJobProgress
    from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger
    from airflow_milvus_import.waiting.events import WaitResult
    from airflow_milvus_import.waiting.tracker import FailedPoll, JobWaitTracker, PollRound

__all__ = ["ImportJobSource", "ImportJobTask", "LineageInputs"]


def __getattr__(name: str) -> Any:
    # the interface is declared by its reader, airflow_milvus_import.links; kept importable from here
    if name == "ImportJobSource":
        from airflow_milvus_import.links import ImportJobSource

        return ImportJobSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: what a task gives :func:`~airflow_milvus_import.lineage.build_lineage`: the target and its arguments
LineageInputs = tuple["LineageTarget", dict[str, Any]]


class ImportJobTask:
    """
    Mixed into :class:`~airflow_milvus_import.operators.milvus_import.MilvusBulkImportOperator` and
    :class:`~airflow_milvus_import.sensors.milvus_import.MilvusImportJobSensor` (before the Airflow base
    class). A subclass sets ``milvus_import_conn_id`` and ``log``, calls :meth:`_start_import_task` in its
    ``__init__`` and :meth:`_mark_ran` when Airflow runs it, and says what lineage reports in
    :meth:`_lineage_of_run` and :meth:`_lineage_from_records`.
    """

    #: what lacks when the connection does not name the data's place (the warning's first words)
    lineage_needs: ClassVar[str] = "Lineage"

    milvus_import_conn_id: str
    db_name: str | None
    accept_uncommitted: bool
    max_consecutive_errors: int
    error_tolerance: float
    log: Any
    task_id: str
    _jobs_seen: list[dict[str, Any]] | None
    _lineage_target: LineageTarget | None
    _ran: bool

    def _start_import_task(self) -> None:
        """What this process learns about the import, for lineage, links and asset events."""
        self._jobs_seen = None
        self._lineage_target = None
        self._ran = False

    @property
    def operator_extra_links(self) -> tuple[Any, ...]:
        """The "Milvus import job" console link (imported on use: DAG files import this module)."""
        from airflow_milvus_import.links import MilvusImportJobLink

        return (MilvusImportJobLink(),)

    # -- the declared interface (ImportJobSource)

    def import_job_ids(self) -> list[str]:
        """The jobs this try created or waited for (empty: none yet)."""
        return []

    def known_import_jobs(self) -> list[dict[str, Any]]:
        """The jobs' last known progress in this process (final, else the latest poll)."""
        if self._jobs_seen is not None:
            return list(self._jobs_seen)
        return self._jobs_in_progress()

    def _jobs_in_progress(self) -> list[dict[str, Any]]:
        """The jobs' latest polled progress while the wait is still going (default: none)."""
        return []

    # -- the wait

    def _wait_tracker(self, job_ids: Any) -> JobWaitTracker:
        """A new wait on ``job_ids`` with this task's settings."""
        from airflow_milvus_import.waiting.tracker import JobWaitTracker

        return JobWaitTracker(
            job_ids,
            accept_uncommitted=self.accept_uncommitted,
            max_consecutive_errors=self.max_consecutive_errors,
            error_tolerance=self.error_tolerance,
            conn_id=self.milvus_import_conn_id,
        )

    def _check_job(self, hook: MilvusImportHook, poll_round: PollRound, job_id: str) -> FailedPoll | None:
        """Check one job with the sync hook (its own retries inside) and record the answer in the round."""
        from airflow_milvus_import.exceptions import MilvusImportError

        sent_at = time.monotonic()
        answer: ImportJobProgress | MilvusImportError
        try:
            answer = hook.get_import_progress(job_id, db_name=self.db_name)
        except MilvusImportError as error:
            answer = error
        # a failed check counts from when it was sent, not from the end of the hook's retries
        return poll_round.record(job_id, answer, sent_at=sent_at, answered_at=time.monotonic())

    def _wait_trigger(
        self, job_ids: Any, *, poll_interval: float, end_time: float, abort_on_kill: bool = False
    ) -> MilvusImportJobTrigger:
        """The trigger that waits on ``job_ids`` in the triggerer, with this task's settings."""
        from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger

        return MilvusImportJobTrigger(
            job_ids,
            milvus_import_conn_id=self.milvus_import_conn_id,
            db_name=self.db_name,
            poll_interval=poll_interval,
            end_time=end_time,
            max_consecutive_errors=self.max_consecutive_errors,
            accept_uncommitted=self.accept_uncommitted,
            error_tolerance=self.error_tolerance,
            abort_on_kill=abort_on_kill,
        )

    def _remember_outcome(self, result: WaitResult) -> None:
        """Keep the wait's final view of the jobs (lineage, links and asset events read it)."""
        self._jobs_seen = [progress.to_dict() for progress in result.jobs]

    def _learn_target(self) -> None:
        """Read where the data lives from the connection (no call to Milvus); lineage never fails a task."""
        if self._lineage_target is None:
            from airflow_milvus_import.lineage import lineage_target_or_none

            self._lineage_target = lineage_target_or_none(
                self.milvus_import_conn_id, self.log, lacking=self.lineage_needs
            )

    # -- OpenLineage

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        The OpenLineage view of the import: the files as inputs, the collection as output (with the rows
        imported), the jobs as run facets. Called by the OpenLineage provider; it needs
        ``apache-airflow-providers-openlineage``.
        """
        from airflow_milvus_import.lineage import build_lineage, empty_lineage

        if self._ran:
            # This object ran the task (the OpenLineage listener asks it at the end of the try, possibly in a
            # forked process): use what it learnt, and ask nothing of Airflow or Milvus.
            inputs = self._lineage_of_run(self._lineage_target) if self._lineage_target is not None else None
            if inputs is None:
                return empty_lineage()
        else:
            # A task object that did not run (lineage asked for after the fact): the run's records.
            inputs = self._lineage_from_records(task_instance)
        target, arguments = inputs
        return build_lineage(target, **arguments)

    def _lineage_of_run(self, target: LineageTarget) -> LineageInputs | None:
        """What this object learnt running the try (None: nothing to report)."""
        raise NotImplementedError

    def _lineage_from_records(self, task_instance: Any) -> LineageInputs:
        """What the run's records (XCom, rendered fields, the connection) say."""
        raise NotImplementedError
