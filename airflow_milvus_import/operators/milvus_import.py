"""
Operators for Milvus / Zilliz Cloud bulk-import jobs.

* :class:`MilvusBulkImportOperator` creates an import job, pushes its id to XCom at once, then (by default)
  waits for it to end: deferred to the ``MilvusImportJobTrigger`` (no worker slot held) or by polling on
  the worker, with the same outcome rules as the sensor.
* :class:`MilvusListImportJobsOperator` lists jobs with filters and reports every job's per-file progress,
  fetched concurrently over one reused HTTP connection pool.

This module is imported by DAG files: it imports the hook, the trigger, HTTP clients and the models lazily.
"""

from __future__ import annotations

import ast
import concurrent.futures
import hashlib
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_milvus_import.operators import ImportJobTask

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_milvus_import.arguments import normalize_files
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from airflow_milvus_import.lineage import LineageTarget
    from airflow_milvus_import.models import ImportJobProgress, ImportJobState, ImportJobSummary
    from airflow_milvus_import.operators import LineageInputs
    from airflow_milvus_import.waiting.events import WaitResult
    from airflow_milvus_import.waiting.tracker import FailedPoll

__all__ = [
    "MilvusBulkImportOperator",
    "MilvusListImportJobsOperator",
    "file_records",
    "normalize_files",
    "parse_created_since",
    "parse_states",
    "stringify_options",
    "task_state_store_of",
]


def __getattr__(name: str) -> Any:
    """``normalize_files`` still imports from here; it lives in :mod:`airflow_milvus_import.arguments`
    (loaded on first use: DAG files import this module)."""
    if name == "normalize_files":
        from airflow_milvus_import.arguments import normalize_files

        return normalize_files
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The default wait deadline: a week, as for Airflow's sensors. Import jobs have no server-side timeout.
DEFAULT_WAIT_TIMEOUT = timedelta(days=7)
#: how long a wait tolerates failing polls by default (``waiting.tracker.DEFAULT_ERROR_TOLERANCE_SECONDS``;
#: not imported: DAG files import this module)
DEFAULT_ERROR_TOLERANCE = timedelta(minutes=10)
#: the task state store key of the job a try created (renaming it breaks retries of running tasks)
TASK_STATE_JOB_KEY = "milvus_import_job"
#: without a task state store, this many of the collection's newest jobs are looked at for a retry's job
MAX_JOBS_EXAMINED_ON_RETRY = 20

FilesArgument = str | os.PathLike[str] | Sequence[str | os.PathLike[str] | Sequence[str | os.PathLike[str]]]


def stringify_options(options: Mapping[str, Any] | str | None) -> dict[str, str]:
    """
    Option values as the strings the servers require: ``True`` -> ``"true"``, ``300`` -> ``"300"``,
    a ``timedelta`` -> ``"300s"``; ``None`` values are left out.

    :raises ValueError: a key that is not text, or a value that is a list, a mapping or another object.
    """
    if options is None:
        return {}
    if isinstance(options, str):
        parsed = _literal_mapping(options)
        if parsed is None:
            raise ValueError(f"options must be a mapping of option name to value; got the text {options!r}")
        options = parsed
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be a mapping of option name to value; got {type(options).__name__}")
    result: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"option names must be non-empty text; got {key!r}")
        if value is None:
            continue
        if isinstance(value, bool):
            result[key] = "true" if value else "false"
        elif isinstance(value, timedelta):
            result[key] = f"{math.ceil(value.total_seconds())}s"
        elif isinstance(value, (int, float, str)):
            result[key] = str(value)
        else:
            raise ValueError(
                f"option {key!r} must be text, a number, a boolean or a timedelta; got {type(value).__name__}"
            )
    return result


def _literal_mapping(text: str) -> Mapping[str, Any] | None:
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, Mapping):
            return value
    return None


def _seconds(value: float | timedelta, argument: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{argument} must be a positive number of seconds or a timedelta; got {value!r}")
    return seconds


def _is_two_phase(options: Mapping[str, str]) -> bool:
    return options.get("auto_commit", "").strip().lower() == "false"


def task_state_store_of(context: Context | Mapping[str, Any]) -> Any | None:
    """The running task's task state store, or None (see ``compat.get_task_state_store``)."""
    from airflow_milvus_import.compat import get_task_state_store

    return get_task_state_store(context)


def import_request_fingerprint(
    collection_name: str,
    db_name: str | None,
    partition_name: str | None,
    files: Sequence[Sequence[str]] | None,
    object_urls: Sequence[Sequence[str]] | None,
    options: Mapping[str, str],
    volume_name: str | None = None,
) -> str:
    """A short hash of what a create sends (no credentials): retries reuse a job only for the same request."""
    request: list[Any] = [
        collection_name,
        db_name,
        partition_name,
        files,
        object_urls,
        sorted(options.items()),
    ]
    if volume_name:
        request.append(volume_name)
    text = json.dumps(
        request,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _sent_paths(progress: ImportJobProgress) -> set[str]:
    return {path for detail in progress.details for path in detail.files}


def _failed_poll_warning(failed: FailedPoll) -> tuple[Any, ...]:
    return (
        "Poll of import job %s failed (%d in a row, failing for %s of the %s tolerated): %s",
        *failed.counts(),
        failed.error,
    )


def _lineage_arguments(
    *,
    jobs: list[dict[str, Any]],
    job_id: Any,
    files: list[list[str]] | None,
    collection_name: Any,
    db_name: Any,
    volume_name: Any,
) -> dict[str, Any]:
    return {
        "jobs": jobs,
        "job_ids": [str(job_id)] if job_id is not None else [],
        "files": files,
        "collection_name": _literal(collection_name),
        "db_name": _literal(db_name),
        "volume_name": _literal(volume_name),
    }


def _literal(value: Any) -> str | None:
    """A rendered text argument, or None for an empty or (on a never-run task object) unrendered one."""
    if isinstance(value, str) and value.strip() and "{{" not in value and "{%" not in value:
        return value.strip()
    return None


class MilvusBulkImportOperator(ImportJobTask, BaseOperator):  # type: ignore[misc]  # links: a property
    """
    Create a bulk-import job on Milvus or Zilliz Cloud and (by default) wait until it ends.

    The job id goes to XCom under the key ``job_id`` as soon as the job exists, so a failure later on still
    leaves it to downstream tasks and to the person reading the log.

    With ``wait_for_completion=True`` (the default) the task succeeds when the job is ``Completed`` and
    returns its final progress (``ImportJobProgress.to_dict()``: state, rows, sizes, per-file ``details``);
    it fails with :class:`~airflow_milvus_import.exceptions.MilvusImportJobFailed` when the job fails (the
    message names the job, the collection, the reason and the failed files), with
    :class:`~airflow_milvus_import.exceptions.MilvusImportJobTimeout` after ``timeout``, and with a
    :class:`~airflow_milvus_import.exceptions.MilvusImportError` after ``max_consecutive_errors`` failed
    polls in a row, or when the state stays unknown (``None``) that many polls. With
    ``wait_for_completion=False`` the task returns the job id (a ``str``) right after creating the job.

    :param collection_name: the target collection. (templated)
    :param files: self-hosted Milvus: the files to import, relative to the server's bucket (or absolute
        paths inside it, as pymilvus' ``LocalBulkWriter.batch_files`` gives). A list of lists (each inner list
        is one file, or the column files of one NumPy set), a flat list (one file per path; a flat list of
        ``.npy`` files in one folder is one column set), one path, or ``BulkWriter.batch_files`` as is. Map
        over it with ``.expand(files=...)`` for one job per file. (templated)
    :param object_urls: Zilliz Cloud: object-storage URLs (``s3://...``, ``gs://...``, ``https://...``) in
        any of the shapes ``files`` accepts; sent as ``objectUrls``. Give ``files`` or ``object_urls``, not
        both. (templated)
    :param volume_name: Zilliz Cloud: import from this volume (Zilliz-managed storage); ``files`` are then
        paths inside it (``"folder/1.parquet"``), sent as ``dataPaths``, with no ``object_urls`` and no
        ``storage_conn_id``. (templated)
    :param storage_conn_id: an Airflow connection holding the object-storage credentials Zilliz Cloud needs
        to read ``object_urls``: login = access key, password = secret key (an ``aws`` connection as is; the
        extras ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token`` or ``access_key`` /
        ``secret_key`` / ``token`` work too). Credentials are never task arguments, and never logged.
        (templated)
    :param db_name: the database (default: the connection's ``db_name`` extra, else ``default``). (templated)
    :param partition_name: the target partition. (templated)
    :param options: import options; values become strings (``True`` -> ``"true"``, ``timedelta`` ->
        ``"300s"``). ``{"auto_commit": False}`` makes a two-phase job (Milvus 3.x), which ``on_kill`` can
        abort. (templated)
    :param milvus_import_conn_id: the ``milvus_import`` connection. (templated)
    :param wait_for_completion: wait for the job to end (default) or return its id at once.
    :param deferrable: wait in the triggerer instead of holding a worker slot (default: Airflow's
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between progress polls.
    :param timeout: how long to wait for the job to end (seconds or a timedelta; default 7 days), counted
        from its creation (on a retry that reconnects to the job, from the retry's start). The job itself
        keeps running on the server after a timeout.
    :param accept_uncommitted: treat ``Uncommitted`` (a two-phase job whose data is ready, waiting for its
        commit) as success, so a downstream task can check the data and commit it.
    :param max_consecutive_errors: give up after the job's state is unknown (``None``) this many polls in a
        row.
    :param error_tolerance: how long (seconds or a timedelta; default 10 minutes) the job's polls may keep
        failing with transient errors before the task fails (each poll already retries them, as every hook
        call does), on the worker and while deferred alike.

    **Retries.** On a retry of the same task instance the operator reconnects to the job an earlier try
    created instead of creating another (Milvus does not deduplicate rows on import): the job id is kept
    in Airflow 3.3's task state store. Still running: it waits on it; Completed: it returns its result
    with no new create; Failed (or aborted): it creates a fresh job. Without a task state store (Airflow
    before 3.3) it looks for the earlier try's job among the collection's newest jobs: same files, created
    since the DAG run started and not Failed (docs/operators.md says what this does and does not guarantee).

    **Assets.** Declare the collection as an outlet,
    ``outlets=[milvus_collection_asset("books", endpoint="http://milvus:19530")]`` (see
    :mod:`airflow_milvus_import.lineage`), and DAGs scheduled on that asset run when the import lands. The
    asset event's ``extra`` carries ``job_id``, ``collection_name``, ``db_name``, ``deployment``,
    ``endpoint`` (``cluster_id`` on Zilliz Cloud) and, once the job has ended, ``state``,
    ``imported_rows``, ``total_rows``, ``file_size`` and ``files``. An ``AssetAlias`` outlet receives the
    collection's asset as the connection names it, for DAGs whose collection is only known at run time.

    **Lineage.** With Airflow's OpenLineage provider installed, the imported files are the task's inputs
    and the collection its output (with the rows imported); see
    :func:`airflow_milvus_import.lineage.build_lineage`. **Link.** "Milvus import job" opens the job in the
    Zilliz Cloud console, or in the console the connection's ``console_link`` template names.
    """

    template_fields: Sequence[str] = (
        "collection_name",
        "files",
        "object_urls",
        "volume_name",
        "db_name",
        "partition_name",
        "options",
        "milvus_import_conn_id",
        "storage_conn_id",
    )
    template_fields_renderers = {"files": "json", "object_urls": "json", "options": "json"}
    lineage_needs = "Lineage and asset events"
    ui_color = "#e7f3ff"

    def __init__(
        self,
        *,
        collection_name: str,
        files: FilesArgument | None = None,
        object_urls: FilesArgument | None = None,
        storage_conn_id: str | None = None,
        volume_name: str | None = None,
        db_name: str | None = None,
        partition_name: str | None = None,
        options: Mapping[str, Any] | str | None = None,
        milvus_import_conn_id: str = "milvus_import_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta = 10.0,
        timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        accept_uncommitted: bool = False,
        max_consecutive_errors: int = 5,
        error_tolerance: float | timedelta = DEFAULT_ERROR_TOLERANCE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.files = files
        self.object_urls = object_urls
        self.storage_conn_id = storage_conn_id
        self.volume_name = volume_name
        self.db_name = db_name
        self.partition_name = partition_name
        self.options = options
        self.milvus_import_conn_id = milvus_import_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.timeout = _seconds(timeout, "timeout")
        self.accept_uncommitted = accept_uncommitted
        if max_consecutive_errors < 1:
            raise ValueError(f"max_consecutive_errors must be at least 1; got {max_consecutive_errors}")
        self.max_consecutive_errors = max_consecutive_errors
        self.error_tolerance = _seconds(error_tolerance, "error_tolerance")
        self._job_id: str | None = None
        self._two_phase = False
        # What this process learnt about the import, for lineage, links and asset events.
        self._sent_files: list[list[str]] | None = None
        self._start_import_task()

    def execute(self, context: Context) -> dict[str, Any] | str:
        from airflow_milvus_import.exceptions import MilvusImportRequestError

        self._ran = True
        try:
            files, object_urls = self._files_to_send()
            options = stringify_options(self.options)
        except ValueError as error:
            raise MilvusImportRequestError(
                f"Invalid import request for collection {self.collection_name!r}: {error}",
                collection_name=self.collection_name,
            ) from None
        if not isinstance(self.collection_name, str) or not self.collection_name.strip():
            raise MilvusImportRequestError(
                f"collection_name must be a non-empty string; got {self.collection_name!r}"
            )
        credentials = self._storage_credentials()
        self._two_phase = _is_two_phase(options)
        self._sent_files = files if files is not None else object_urls

        batches = files if files is not None else object_urls or []
        shown = ", ".join("+".join(batch) for batch in batches[:5]) + (" ..." if len(batches) > 5 else "")
        self.log.info(
            "Creating an import job into collection %r%s%s: %d file%s (%s)%s",
            self.collection_name,
            f" (database {self.db_name!r})" if self.db_name else "",
            f", partition {self.partition_name!r}" if self.partition_name else "",
            len(batches),
            "" if len(batches) == 1 else "s",
            shown,
            f", options {options}" if options else "",
        )
        self._learn_target()
        fingerprint = import_request_fingerprint(
            self.collection_name,
            self.db_name,
            self.partition_name,
            files,
            object_urls,
            options,
            volume_name=self.volume_name or None,
        )
        store = task_state_store_of(context)
        hook = self._hook()
        try:
            earlier = self._earlier_try_job(context, hook, store, fingerprint)
            if earlier is not None:
                job_id, end_time = earlier
            else:
                job_id = hook.create_import_job(
                    self.collection_name,
                    files,
                    db_name=self.db_name,
                    partition_name=self.partition_name,
                    options=options or None,
                    object_urls=object_urls,
                    storage_credentials=credentials,
                    volume_name=self.volume_name or None,
                )
                end_time = time.time() + self.timeout
                self._remember_job(store, job_id, fingerprint)
                self._mark_created(context, job_id)
            self._job_id = job_id
            context["ti"].xcom_push(key="job_id", value=job_id)
            if self._two_phase and earlier is None:
                self.log.info(
                    "Import job %s is two-phase: once its data is ready it waits (Uncommitted) for a commit",
                    job_id,
                )
            if not self.wait_for_completion:
                self._record_asset_events(context, job_id, None)
                return job_id

            result = self._wait(hook, job_id, end_time)
        finally:
            hook.close()
        self._record_asset_events(context, job_id, result)
        return result

    # ----------------------------------------------------------------------------------------------------
    # Retries: reconnect to the job an earlier try created

    def _remember_job(self, store: Any | None, job_id: str, fingerprint: str) -> None:
        """Keep the new job's id in the task state store, for a retry of this task instance."""
        if store is None:
            return
        try:
            store.set(TASK_STATE_JOB_KEY, {"job_id": job_id, "request": fingerprint})
        except Exception as error:
            self.log.warning(
                "Could not keep import job %s in the task state store (%s): a retry of this task may not "
                "find it and create another job",
                job_id,
                error,
            )

    def _earlier_try_job(
        self, context: Context, hook: MilvusImportHook, store: Any | None, fingerprint: str
    ) -> tuple[str, float] | None:
        """
        The job an earlier try of this task instance created for the same request and its wait deadline,
        when it is still running or Completed; None: create a job (first try, or the earlier job Failed).
        """
        if store is not None:
            stored = store.get(TASK_STATE_JOB_KEY)
            if not isinstance(stored, Mapping) or not isinstance(stored.get("job_id"), str):
                return None
            job_id: str = stored["job_id"]
            if stored.get("request") != fingerprint:
                self.log.warning(
                    "An earlier try created import job %s for a different request (collection, files or "
                    "options changed): creating a job for this one",
                    job_id,
                )
                return None
            progress = self._describe_earlier_job(hook, job_id)
            if progress is None:
                return None
        else:
            found = self._find_earlier_job_without_store(context, hook)
            if found is None:
                return None
            job_id, progress = found
        return self._reuse_decision(job_id, progress)

    def _describe_earlier_job(self, hook: MilvusImportHook, job_id: str) -> ImportJobProgress | None:
        from airflow_milvus_import.exceptions import MilvusImportNotFoundError

        try:
            return hook.get_import_progress(job_id, db_name=self.db_name)
        except MilvusImportNotFoundError:
            self.log.warning(
                "Import job %s created by an earlier try no longer exists on the server: creating a new job",
                job_id,
            )
            return None
        # Any other error fails this try: creating a job while the earlier one may be running would
        # import the same rows twice.

    def _reuse_decision(self, job_id: str, progress: ImportJobProgress) -> tuple[str, float] | None:
        from airflow_milvus_import.models import ImportJobState

        state = progress.state
        if state is ImportJobState.FAILED:
            self.log.warning(
                "Import job %s created by an earlier try Failed (%s): creating a fresh job",
                job_id,
                progress.reason or "no reason given",
            )
            return None
        end_time = time.time() + self.timeout  # each try waits up to ``timeout``, as the first one did
        if state is ImportJobState.COMPLETED:
            self.log.info(
                "Import job %s created by an earlier try already Completed: returning its result, no new job",
                job_id,
            )
        else:
            self.log.info(
                "Reconnecting to import job %s (%s, %d%%) created by an earlier try instead of creating "
                "another",
                job_id,
                state.value,
                progress.progress,
            )
        return job_id, end_time

    def _find_earlier_job_without_store(
        self, context: Context, hook: MilvusImportHook
    ) -> tuple[str, ImportJobProgress] | None:
        """
        No task state store (Airflow before 3.3): on a retry, the newest job of the collection with exactly
        the files this task sends, created since the DAG run started, is taken for the earlier try's.
        """
        ti = context.get("ti")
        try_number = getattr(ti, "try_number", None)
        if not isinstance(try_number, int) or try_number <= 1:
            return None
        from airflow_milvus_import.compat import log_unavailable_once

        log_unavailable_once("task state store", self.log)
        dag_run = context.get("dag_run")
        run_start = getattr(dag_run, "start_date", None)
        wanted = {path for batch in (self._sent_files or []) for path in batch}
        if run_start is None or not wanted:
            self.log.warning(
                "Retry %d without a task state store: cannot tell this task's earlier job apart (%s); "
                "creating a new job",
                try_number,
                "no DAG run start time" if run_start is None else "no files",
            )
            return None
        from airflow_milvus_import.models import ImportJobState

        # Servers give createTime to the second: a job created in the run's first second is the run's.
        since = math.floor(run_start.timestamp())
        candidates = [
            job
            for job in _newest_first(hook.list_import_jobs(self.collection_name, db_name=self.db_name))
            if job.state is not ImportJobState.FAILED
        ][:MAX_JOBS_EXAMINED_ON_RETRY]
        for job in candidates:
            progress = self._describe_earlier_job(hook, job.job_id)
            if progress is None or progress.create_time is None:
                continue
            if progress.create_time.timestamp() >= since and _sent_paths(progress) == wanted:
                self.log.info(
                    "Retry %d without a task state store: import job %s has this task's files and was "
                    "created at %s, after the DAG run started: taking it for the earlier try's",
                    try_number,
                    job.job_id,
                    progress.create_time.isoformat(),
                )
                return job.job_id, progress
        self.log.info(
            "Retry %d without a task state store: no job of collection %r created since the DAG run started "
            "has this task's files; creating a new job",
            try_number,
            self.collection_name,
        )
        return None

    # ----------------------------------------------------------------------------------------------------
    # Waiting

    def _wait(self, hook: MilvusImportHook, job_id: str, end_time: float) -> dict[str, Any]:
        """Check once; defer if the job is still running and deferrable, else poll here until it ends."""
        from airflow_milvus_import.waiting.messages import format_duration
        from airflow_milvus_import.waiting.tracker import PollRound

        tracker = self._wait_tracker([job_id])
        first_poll = True
        while True:
            if not first_poll:
                remaining = end_time - time.time()
                if remaining <= 0:
                    deadline = f"timeout {format_duration(self.timeout)}; the job keeps running on the server"
                    return self._finish(tracker.timeout_result(deadline))
                sleep = min(self.poll_interval, remaining)
                left = tracker.tolerance_left(job_id, time.monotonic())
                if left is not None:  # failing polls: poll again when the tolerance runs out, not later
                    sleep = min(sleep, max(0.0, left))
                time.sleep(sleep)
            poll_round = PollRound(tracker, self.log, failure_wording=_failed_poll_warning)
            self._check_job(hook, poll_round, job_id)
            result = poll_round.end()
            if result is not None:
                return self._finish(result)
            if first_poll and self.deferrable:
                self._defer(job_id, end_time)
            first_poll = False

    def _finish(self, result: WaitResult) -> dict[str, Any]:
        """Return the job's final progress, or raise what an unsuccessful wait means."""
        from airflow_milvus_import.waiting.events import exception_for_result

        self._remember_outcome(result)
        error = exception_for_result(result)
        if error is not None:
            if not error.collection_name:
                error.collection_name = self.collection_name
            raise error
        self.log.info("%s", result.message)
        return cast("dict[str, Any]", result.xcom_value(single=True))

    def _defer(self, job_id: str, end_time: float) -> None:
        from airflow_milvus_import import compat
        from airflow_milvus_import.waiting.messages import format_duration

        if self._two_phase and not compat.HAS_TRIGGER_ON_KILL:
            compat.log_unavailable_once("trigger on_kill", self.log)

        self.log.info(
            "Deferring: the triggerer polls import job %s every %s until it ends (deadline in %s)",
            job_id,
            format_duration(self.poll_interval),
            format_duration(end_time - time.time()),
        )
        self.defer(
            # killed while deferred, the trigger (not this operator) gets on_kill: it aborts jobs we own
            trigger=self._wait_trigger(
                [job_id], poll_interval=self.poll_interval, end_time=end_time, abort_on_kill=self._two_phase
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger's event: the final progress, or the error the event describes."""
        from airflow_milvus_import.waiting.events import WaitResult

        self._ran = True
        result = WaitResult.from_event(event)
        if self._job_id is None and result.job_ids:
            self._job_id = result.job_ids[0]
        self._learn_target()
        progress = self._finish(result)
        if self._job_id is not None:
            self._record_asset_events(context, self._job_id, progress)
        return progress

    # ----------------------------------------------------------------------------------------------------
    # Lineage, assets and links

    def _mark_created(self, context: Context, job_id: str) -> None:
        """Tell watchers of the outlets' collection assets that this task emits the job's event itself."""
        if not self.outlets or self._lineage_target is None:
            return
        from airflow_milvus_import.import_events import mark_created_by_operator

        collection = self._lineage_target.collection(self.collection_name, self.db_name)
        outlets = list(self.outlets)
        mark_created_by_operator(cast("Mapping[str, Any]", context), outlets, collection, job_id, self.log)

    def import_job_ids(self) -> list[str]:
        """The job this try created (or reconnected to), once it exists."""
        return [self._job_id] if self._job_id else []

    def _record_asset_events(self, context: Context, job_id: str, progress: Mapping[str, Any] | None) -> None:
        """Describe the import in the events of the task's outlets (collection assets and aliases)."""
        outlets = list(self.outlets or [])
        if not outlets or self._lineage_target is None:
            return
        from airflow.providers.common.compat.sdk import AssetAlias

        from airflow_milvus_import.compat import new_asset
        from airflow_milvus_import.lineage import asset_event_extra, is_collection_asset, parse_collection_uri

        target = self._lineage_target
        collection = target.collection(self.collection_name, self.db_name)
        extra = asset_event_extra(
            target,
            job_id=job_id,
            collection_name=self.collection_name,
            db_name=self.db_name,
            progress=progress,
            volume_name=_literal(self.volume_name),
        )
        outlet_events = context["outlet_events"]
        for outlet in outlets:
            if isinstance(outlet, AssetAlias):
                try:
                    asset = new_asset(collection.uri, name=collection.uri)
                except ValueError as error:
                    self.log.warning("Cannot add collection %r to %s: %s", collection.uri, outlet, error)
                    continue
                outlet_events[outlet].add(asset, extra=extra)
                self.log.info("Asset alias %r: added %s", outlet.name, collection.uri)
            elif is_collection_asset(outlet):
                declared = parse_collection_uri(outlet.uri)
                if declared != collection:
                    self.log.warning(
                        "Outlet %s does not name the collection this task imported into (%s): its event "
                        "describes import job %s all the same",
                        outlet.uri,
                        collection.uri,
                        job_id,
                    )
                outlet_events[outlet].extra.update(extra)

    def _lineage_of_run(self, target: LineageTarget) -> LineageInputs | None:
        return target, _lineage_arguments(
            jobs=self._jobs_seen or [],
            job_id=self._job_id,
            files=self._sent_files,
            collection_name=self.collection_name,
            db_name=self.db_name,
            volume_name=self.volume_name,
        )

    def _lineage_from_records(self, task_instance: Any) -> LineageInputs:
        from airflow_milvus_import.lineage import pull_xcom, rendered_value, target_from_connection

        pulled = pull_xcom(task_instance, self.task_id, "return_value")
        rendered: dict[str, Any] = {}
        target = target_from_connection(
            str(rendered_value(self, "milvus_import_conn_id", task_instance, rendered))
        )
        return target, _lineage_arguments(
            jobs=[dict(pulled)] if isinstance(pulled, Mapping) else [],
            job_id=pull_xcom(task_instance, self.task_id, "job_id"),
            files=None,  # the jobs' details name them
            collection_name=rendered_value(self, "collection_name", task_instance, rendered),
            db_name=rendered_value(self, "db_name", task_instance, rendered),
            volume_name=rendered_value(self, "volume_name", task_instance, rendered),
        )

    def on_kill(self) -> None:
        """Abort the job this task created if it is a two-phase job; otherwise say that it keeps running."""
        from airflow_milvus_import.exceptions import MilvusImportError

        job_id = self._job_id
        if job_id is None:
            self.log.info("Task killed before an import job was created: nothing to cancel")
            return
        if not self._two_phase:
            self.log.warning(
                "Task killed: import job %s into collection %r keeps running on the server. Milvus and "
                "Zilliz Cloud cannot cancel an import job that commits by itself; only two-phase jobs "
                "(created with options {'auto_commit': 'false'}, Milvus 3.x) can be aborted.",
                job_id,
                self.collection_name,
            )
            return
        # A fresh hook: the kill may interrupt a request in flight on the task's own session.
        hook = self._hook()
        try:
            hook.abort_import_job(job_id, db_name=self.db_name)
        except MilvusImportError as error:
            self.log.error(
                "Task killed: could not abort two-phase import job %s (%s). It may still be committed by "
                "someone else; abort it by hand if needed.",
                job_id,
                error,
            )
        else:
            self.log.info(
                "Task killed: aborted two-phase import job %s; its data will not be committed", job_id
            )
        finally:
            hook.close()

    def _hook(self) -> MilvusImportHook:
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

        return MilvusImportHook(milvus_import_conn_id=self.milvus_import_conn_id)

    def _files_to_send(self) -> tuple[list[list[str]] | None, list[list[str]] | None]:
        from airflow_milvus_import import arguments

        has_files = self.files is not None and self.files != ""
        has_urls = self.object_urls is not None and self.object_urls != ""
        if has_files and has_urls:
            raise ValueError("give either files (self-hosted Milvus) or object_urls (Zilliz Cloud), not both")
        if not has_files and not has_urls:
            raise ValueError(
                "no data to import: give files (self-hosted Milvus) or object_urls (Zilliz Cloud)"
            )
        if has_urls:
            return None, arguments.normalize_files(self.object_urls, argument="object_urls")
        if self.storage_conn_id:
            raise ValueError(
                "storage_conn_id is for Zilliz Cloud's object_urls; self-hosted Milvus reads files from its "
                "own bucket with its own credentials"
            )
        return arguments.normalize_files(self.files), None

    def _storage_credentials(self) -> dict[str, str] | None:
        if not self.storage_conn_id:
            return None
        from airflow.providers.common.compat.sdk import BaseHook

        from airflow_milvus_import.compat import mask_secret
        from airflow_milvus_import.exceptions import MilvusImportRequestError

        connection = BaseHook.get_connection(self.storage_conn_id)
        extra = connection.extra_dejson if isinstance(connection.extra_dejson, Mapping) else {}

        def pick(*values: Any) -> str | None:
            for value in values:
                if isinstance(value, str) and value.strip():
                    return value.strip()
            return None

        access_key = pick(
            connection.login, extra.get("aws_access_key_id"), extra.get("access_key"), extra.get("accessKey")
        )
        secret_key = pick(
            connection.password,
            extra.get("aws_secret_access_key"),
            extra.get("secret_key"),
            extra.get("secretKey"),
        )
        token = pick(extra.get("aws_session_token"), extra.get("session_token"), extra.get("token"))
        if access_key is None or secret_key is None:
            raise MilvusImportRequestError(
                f"Storage connection {self.storage_conn_id!r} has no "
                f"{'access key' if access_key is None else 'secret key'}: set its login (access key) and "
                "password (secret key), or the extras aws_access_key_id / aws_secret_access_key",
                collection_name=self.collection_name,
            )
        for secret in (access_key, secret_key, token):
            if secret:
                mask_secret(secret)
        credentials = {"access_key": access_key, "secret_key": secret_key}
        if token:
            credentials["token"] = token
        return credentials


def parse_states(states: str | Iterable[str] | None) -> frozenset[ImportJobState] | None:
    """
    State names (case-insensitive; any spelling the servers use, e.g. ``InProgress``) to job states.

    :param states: names as an iterable, or one text with names separated by commas.
    :raises ValueError: a name that is no import-job state.
    """
    from airflow_milvus_import.models import ImportJobState

    if states is None:
        return None
    if isinstance(states, str):
        from airflow_milvus_import.arguments import literal_list

        parsed = literal_list(states)
        names: list[Any] = list(parsed) if isinstance(parsed, list) else parsed.split(",")
    else:
        names = list(states)
    known = {state.value.lower() for state in ImportJobState} | {"none"}
    result: set[ImportJobState] = set()
    for name in names:
        text = name.value if isinstance(name, ImportJobState) else str(name).strip()
        if not text:
            continue
        state = ImportJobState.from_wire(text)
        if state is ImportJobState.UNKNOWN and text.lower() not in known:
            valid = ", ".join(state.value for state in ImportJobState)
            raise ValueError(f"unknown import-job state {name!r} in states; use one of: {valid}")
        result.add(state)
    if not result:
        raise ValueError("states is empty: leave it None for every state, or name at least one")
    return frozenset(result)


def parse_created_since(
    value: datetime | timedelta | str | None, *, now: datetime | None = None
) -> datetime | None:
    """
    ``created_since`` as an aware UTC datetime: a datetime (naive means UTC), an ISO 8601 text, or a
    timedelta meaning "that long before now".

    :raises ValueError: text that is not a date and time.
    """
    import pendulum

    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        return (now or datetime.now(timezone.utc)) - value
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = pendulum.parse(value.strip(), tz="UTC")
        except (ValueError, TypeError, OverflowError):
            parsed = None
        if isinstance(parsed, datetime):
            return parsed
        raise ValueError(f"created_since must be a datetime, an ISO 8601 text or a timedelta; got {value!r}")
    raise ValueError(
        f"created_since must be a datetime, an ISO 8601 text or a timedelta; got {type(value).__name__}"
    )


def _newest_first(jobs: list[ImportJobSummary]) -> list[ImportJobSummary]:
    """Milvus allocates job ids in increasing order: sort numeric ids newest first; keep other orders."""
    if jobs and all(job.job_id.isdigit() for job in jobs):
        return sorted(jobs, key=lambda job: int(job.job_id), reverse=True)
    return jobs


def file_records(progress: ImportJobProgress) -> list[dict[str, Any]]:
    """One flat, JSON-safe record per file of a job (the ``file_details`` XCom)."""
    records = []
    for detail in progress.details:
        item = detail.to_dict()
        records.append(
            {
                "job_id": progress.job_id,
                "collection_name": progress.collection_name,
                "file_name": item["file_name"],
                "files": item["files"],
                "file_size": item["file_size"],
                "state": item["state"],
                "progress": item["progress"],
                "imported_rows": item["imported_rows"],
                "total_rows": item["total_rows"],
                "reason": item["reason"],
                "complete_time": item["complete_time"],
            }
        )
    return records


class MilvusListImportJobsOperator(BaseOperator):
    """
    List import jobs, with each job's per-file progress.

    ``return_value`` (XCom) is the list of jobs, newest first where the order is known (Milvus' numeric job
    ids grow over time; Zilliz Cloud's keep the server's order). With ``include_details=True`` each job is
    ``ImportJobProgress.to_dict()`` (state, rows, sizes, times, ``details``), else
    ``ImportJobSummary.to_dict()`` (``job_id``, ``collection_name``, ``state``, ``progress``, ``reason``).
    XCom key ``file_details`` is a flat list with one record per file: ``job_id``, ``collection_name``,
    ``file_name``, ``files``, ``file_size``, ``state``, ``progress``, ``imported_rows``, ``total_rows``,
    ``reason``, ``complete_time`` (empty without details).

    Details take one progress call per job: they run concurrently on ``max_concurrency`` threads over the
    hook's one ``requests`` session (its connection pool kept alive: one TLS handshake per thread, not per
    call). A job that disappears between the list and its progress call is left out with a warning; any
    other error fails the task, naming the job.

    :param collection_name: only jobs of this collection. (templated)
    :param db_name: the database (default: the connection's). (templated)
    :param states: only jobs in these states (names, case-insensitive, e.g. ``["Failed", "Importing"]`` or
        ``"Failed,Importing"``). (templated)
    :param limit: keep at most this many jobs (the newest, see above), applied after every other filter.
    :param created_since: only jobs created at or after this time: a datetime (naive = UTC), an ISO 8601
        text such as ``"{{ data_interval_start }}"``, or a timedelta (that long before now); compared at
        the one-second resolution of the servers' times. It needs each job's ``createTime`` (Milvus 2.6+,
        Zilliz Cloud), so every job passing the other filters gets a progress call. (templated)
    :param keep_undated: what ``created_since`` does with jobs whose server gives no ``createTime`` (Milvus
        before 2.6): keep them (default, with a warning: nothing is hidden because the server is old) or drop.
    :param include_details: fetch each job's progress and per-file details (default). Without it, one
        ``list`` call is all, unless ``created_since`` needs the progress calls anyway (the result is then as
        with ``include_details=True``).
    :param max_concurrency: at most this many progress calls in flight (default 16).
    :param milvus_import_conn_id: the ``milvus_import`` connection. (templated)
    """

    template_fields: Sequence[str] = (
        "collection_name",
        "db_name",
        "states",
        "created_since",
        "milvus_import_conn_id",
    )
    ui_color = "#e7f3ff"

    def __init__(
        self,
        *,
        collection_name: str | None = None,
        db_name: str | None = None,
        states: str | Iterable[str] | None = None,
        limit: int | None = None,
        created_since: datetime | timedelta | str | None = None,
        keep_undated: bool = True,
        include_details: bool = True,
        max_concurrency: int = 16,
        milvus_import_conn_id: str = "milvus_import_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer or None; got {limit!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive integer; got {max_concurrency!r}")
        if isinstance(states, str) and "{{" not in states:
            parse_states(states)
        elif states is not None and not isinstance(states, str):
            states = list(states)
            if not any("{{" in str(state) for state in states):
                parse_states(states)
        self.collection_name = collection_name
        self.db_name = db_name
        self.states = states
        self.limit = limit
        self.created_since = created_since
        self.keep_undated = keep_undated
        self.include_details = include_details
        self.max_concurrency = max_concurrency
        self.milvus_import_conn_id = milvus_import_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_milvus_import.exceptions import MilvusImportRequestError
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

        try:
            states = parse_states(self.states)
            since = parse_created_since(self.created_since)
        except ValueError as error:
            raise MilvusImportRequestError(f"Invalid filter for listing import jobs: {error}") from None
        started = time.monotonic()
        hook = MilvusImportHook(milvus_import_conn_id=self.milvus_import_conn_id)
        with hook:
            listed, jobs, progresses = self._collect(hook, states, since)
        elapsed = time.monotonic() - started

        details = [record for progress in progresses for record in file_records(progress)]
        if self.include_details or since is not None:
            result = [progress.to_dict() for progress in progresses]
        else:
            result = [job.to_dict() for job in jobs]
        context["ti"].xcom_push(key="file_details", value=details)
        self._log_counts(listed, result, details, states, since, elapsed, progresses)
        return result

    def _collect(
        self,
        hook: MilvusImportHook,
        states: frozenset[ImportJobState] | None,
        since: datetime | None,
    ) -> tuple[int, list[ImportJobSummary], list[ImportJobProgress]]:
        summaries = hook.list_import_jobs(self.collection_name or None, db_name=self.db_name)
        listed = len(summaries)
        jobs = _newest_first([job for job in summaries if states is None or job.state in states])
        if since is None:
            if self.limit is not None:
                jobs = jobs[: self.limit]
            if not self.include_details:
                return listed, jobs, []
            progresses = self._progress_of(hook, jobs)
            return listed, jobs, progresses
        progresses = self._progress_of(hook, jobs)
        undated = [progress for progress in progresses if progress.create_time is None]
        if undated:
            self.log.warning(
                "%d of %d jobs have no create time (the server is older than Milvus 2.6?): %s them, as "
                "keep_undated=%s says",
                len(undated),
                len(progresses),
                "keeping" if self.keep_undated else "dropping",
                self.keep_undated,
            )
        # Servers report create times in whole seconds: compare at that resolution.
        since = since.replace(microsecond=0)
        progresses = [
            progress
            for progress in progresses
            if (progress.create_time is None and self.keep_undated)
            or (progress.create_time is not None and progress.create_time >= since)
        ]
        if self.limit is not None:
            progresses = progresses[: self.limit]
        kept = {progress.job_id for progress in progresses}
        return listed, [job for job in jobs if job.job_id in kept], progresses

    def _progress_of(self, hook: MilvusImportHook, jobs: list[ImportJobSummary]) -> list[ImportJobProgress]:
        """Each job's progress, ``max_concurrency`` calls at a time; an error (not "not found") stops them."""
        from airflow_milvus_import.exceptions import MilvusImportError, MilvusImportNotFoundError

        if not jobs:
            return []
        failed = threading.Event()

        def fetch(job: ImportJobSummary) -> ImportJobProgress | None:
            if failed.is_set():
                return None
            try:
                return hook.get_import_progress(job.job_id, db_name=self.db_name)
            except MilvusImportNotFoundError as error:
                self.log.warning(
                    "Import job %s was listed but is gone now; leaving it out: %s", job.job_id, error
                )
                return None
            except MilvusImportError:
                failed.set()
                raise

        workers = min(self.max_concurrency, len(jobs))
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="milvus-progress"
        )
        try:
            futures = [pool.submit(fetch, job) for job in jobs]
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
            for future in futures:  # the first error in job order, once every call under way has ended
                if future.done() and future.exception() is not None:
                    raise cast("BaseException", future.exception())
            return [progress for future in futures if (progress := future.result()) is not None]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _log_counts(
        self,
        listed: int,
        jobs: list[dict[str, Any]],
        details: list[dict[str, Any]],
        states: frozenset[ImportJobState] | None,
        since: datetime | None,
        elapsed: float,
        progresses: list[ImportJobProgress],
    ) -> None:
        filters = []
        if self.collection_name:
            filters.append(f"collection {self.collection_name!r}")
        if self.db_name:
            filters.append(f"database {self.db_name!r}")
        if states is not None:
            filters.append("states " + ", ".join(sorted(state.value for state in states)))
        if since is not None:
            filters.append(f"created since {since.isoformat()}")
        if self.limit is not None:
            filters.append(f"limit {self.limit}")
        job_states = Counter(str(job.get("state")) for job in jobs)
        self.log.info(
            "%d import job%s of %d listed%s: %s",
            len(jobs),
            "" if len(jobs) == 1 else "s",
            listed,
            f" ({'; '.join(filters)})" if filters else "",
            _counts(job_states) or "none",
        )
        if progresses:
            file_states = Counter(str(record["state"]) for record in details)
            rows = sum(int(record["imported_rows"]) for record in details)
            self.log.info(
                "%d file%s: %s; %d rows imported; %d progress calls in %.2f s (at most %d at a time)",
                len(details),
                "" if len(details) == 1 else "s",
                _counts(file_states) or "none",
                rows,
                len(progresses),
                elapsed,
                self.max_concurrency,
            )
            for progress in progresses[:20]:
                if progress.state.is_failure:
                    self.log.info(
                        "Job %s failed: %s", progress.job_id, progress.reason or "(no reason given)"
                    )


def _counts(counter: Counter[str]) -> str:
    return ", ".join(
        f"{name} {count}" for name, count in sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    )
