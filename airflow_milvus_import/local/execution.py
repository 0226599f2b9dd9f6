"""Running imports: a small pool of worker threads moves each job through Milvus' phases.

Pre-import opens every file, checks it against the collection's schema and counts its rows; import reads the
rows in batches and inserts them into Milvus Lite (for a 2PC job it only reads them: the rows go in at
commit); sort and index are bookkeeping here. A job that fails (or is aborted) takes back the rows it had
inserted, so a failed job leaves the collection as it found it, as on Milvus.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from milvus_lite import (
    CollectionNotFoundError,
    MilvusLiteError,
    PartitionNotFoundError,
    SchemaValidationError,
)

from airflow_milvus_import.local.importer import (
    Bucket,
    ImportFileError,
    PathError,
    SchemaInfo,
    Source,
    batch_rows_for,
    open_sources,
)
from airflow_milvus_import.local.jobs import TIMEOUT_REASON, FileState, FileTask, Job, Phase
from airflow_milvus_import.local.wire import go_string_slice

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_milvus_import.local.milvus import MilvusLiteHost

logger = logging.getLogger(__name__)

ABORTED_REASON = "import job aborted"
SHUTDOWN_REASON = "import interrupted by a server shutdown"
_DELETE_CHUNK = 10_000


class _Stopped(Exception):
    """The job must stop now (abort or shutdown); the message is the job's reason."""


@dataclass
class _Attempt:
    """What one run of a job has done so far: the primary keys it inserted, the file it is on."""

    inserted: list[Any] = field(default_factory=list)
    task: FileTask | None = None


def entry_label(job: Job, entry: list[str]) -> str:
    """How messages name one ``files`` entry: Go's rendering on Milvus, the plain path(s) on Zilliz Cloud."""
    return go_string_slice(entry) if job.flavour == "milvus" else ", ".join(entry)


class JobExecutor:
    """Runs imports and commits on a thread pool.

    :param host: Milvus Lite.
    :param bucket_for: where a job's files are (the bucket, or the job's Zilliz Cloud volume).
    :param save: persists a job record.
    :param lock: guards job fields that readers combine (phase and its fraction).
    :param workers: imports that run at the same time.
    :param rows_per_second: throttle per import, or None.
    """

    def __init__(
        self,
        host: MilvusLiteHost,
        bucket_for: Callable[[Job], Bucket],
        save: Callable[[Job], None],
        lock: threading.Lock,
        workers: int,
        rows_per_second: float | None,
    ) -> None:
        self._host = host
        self._bucket_for = bucket_for
        self._save = save
        self._lock = lock
        self._rows_per_second = rows_per_second
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="import-worker")
        self._stop = threading.Event()
        self._aborted: set[str] = set()
        self._running: dict[str, Future[None]] = {}
        self._running_lock = threading.Lock()

    # -- public --

    def submit_import(self, job: Job) -> None:
        """Queue a job's import."""
        self._submit(job, self._run_import)

    def submit_commit(self, job: Job) -> None:
        """Queue the commit of a 2PC job (its rows go in now)."""
        self._submit(job, self._run_commit)

    def is_queued_or_running(self, job_id: str) -> bool:
        """True while the pool still has work for this job."""
        future = self._running.get(job_id)
        return future is not None and not future.done()

    def abort(self, job_id: str) -> None:
        """Ask a queued or running job to stop (it ends Failed, its rows taken back)."""
        self._aborted.add(job_id)

    def shutdown(self) -> None:
        """Stop: queued jobs stay Pending (resumed at the next start), running ones end Failed."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- plumbing --

    def _submit(self, job: Job, work: Callable[[Job], None]) -> None:
        def run() -> None:
            try:
                work(job)
            finally:
                with self._running_lock:
                    self._running.pop(job.job_id, None)
                    self._aborted.discard(job.job_id)

        with self._running_lock:
            self._running[job.job_id] = self._pool.submit(run)

    def _check(self, job: Job) -> None:
        if job.job_id in self._aborted:
            raise _Stopped(ABORTED_REASON)
        if self._stop.is_set():
            raise _Stopped(SHUTDOWN_REASON)
        if job.timeout_at is not None and job.ready_time is None and time.time() >= job.timeout_at:
            raise _Stopped(TIMEOUT_REASON)

    def _set_phase(self, job: Job, phase: Phase) -> None:
        with self._lock:
            job.phase = phase
            job.phase_fraction = 0.0

    def _fail(self, job: Job, reason: str, task: FileTask | None = None) -> None:
        now = time.time()
        if reason == TIMEOUT_REASON and job.timeout_at is not None:
            now = max(now, job.timeout_at)
        with self._lock:
            if task is not None:
                task.state = FileState.FAILED
                task.reason = reason
                task.complete_time = now
            job.reason = reason
            job.finish_time = now
            job.phase = Phase.FAILED
        self._save(job)
        logger.info("import job %s failed: %s", job.job_id, reason)

    # -- the phases --

    def _run_import(self, job: Job) -> None:
        with self._lock:
            if job.phase is not Phase.PENDING:
                return
            job.phase = Phase.PRE_IMPORTING
            job.phase_fraction = 0.0
        attempt = _Attempt()
        try:
            self._save(job)
            self._check(job)
            plan = self._open_all(job, report=True)
            try:
                self._set_phase(job, Phase.IMPORTING)
                with self._lock:
                    job.tasks_visible = True
                self._import(job, plan, attempt)
            finally:
                _close(plan)
            self._after_import(job)
            if _times_out_on_its_timeline(job):
                raise _Stopped(TIMEOUT_REASON)
            self._finish(job, Phase.COMPLETED if job.auto_commit else Phase.UNCOMMITTED)
        except (_Stopped, ImportFileError) as exc:
            self._rollback(job, attempt.inserted)
            self._fail(job, str(exc), attempt.task)
        except Exception as exc:
            logger.exception("import job %s failed unexpectedly", job.job_id)
            self._rollback(job, attempt.inserted)
            self._fail(job, f"internal error of the local import server: {exc}", attempt.task)

    def _run_commit(self, job: Job) -> None:
        inserted: list[Any] = []
        try:
            plan = self._open_all(job, report=False)
            try:
                for task, sources in plan:
                    for first, rows in self._rows(job, sources):
                        inserted.extend(self._insert(job, task, first, rows))
            finally:
                _close(plan)
            self._finish(job, Phase.COMPLETED)
        except (_Stopped, ImportFileError) as exc:
            self._rollback(job, inserted)
            self._fail(job, f"commit failed: {exc}")
        except Exception as exc:
            logger.exception("commit of import job %s failed unexpectedly", job.job_id)
            self._rollback(job, inserted)
            self._fail(job, f"commit failed: internal error of the local import server: {exc}")

    def _schema(self, job: Job) -> SchemaInfo:
        try:
            collection = self._host.db.get_collection(job.collection_name, database_name=job.db_name)
        except CollectionNotFoundError:
            raise ImportFileError(
                f"collection not found[database={job.db_name}][collection={job.collection_name}]"
            ) from None
        if job.partition_name and not collection.has_partition(job.partition_name):
            raise ImportFileError(f"partition not found[partition={job.partition_name}]")
        return SchemaInfo.from_milvus_lite(collection.schema)

    def _open_all(self, job: Job, *, report: bool) -> list[tuple[FileTask, list[Source]]]:
        schema = self._schema(job)
        tasks = job.tasks or [FileTask(paths=list(entry)) for entry in job.files]
        plan: list[tuple[FileTask, list[Source]]] = []
        try:
            for number, task in enumerate(tasks, start=1):
                self._check(job)
                label = entry_label(job, task.paths)
                try:
                    bucket = self._bucket_for(job)
                    allow_urls = job.flavour == "cloud" and not job.volume_name
                    paths = [bucket.resolve(p, allow_urls=allow_urls) for p in task.paths]
                except PathError as exc:
                    raise ImportFileError(f"{label}: {exc}") from None
                sources = open_sources(label, paths, schema)
                plan.append((task, sources))
                if report:
                    with self._lock:
                        task.file_size = sum(s.file_size for s in sources)
                        task.total_rows = sum(s.total_rows for s in sources)
                        job.phase_fraction = number / len(tasks)
        except BaseException:
            _close(plan)
            raise
        if report:
            with self._lock:
                job.tasks = tasks
        return plan

    def _import(self, job: Job, plan: list[tuple[FileTask, list[Source]]], attempt: _Attempt) -> None:
        """Read every row; insert it unless the job is 2PC (its rows go in at commit)."""
        total = max(1, sum(task.total_rows for task, _ in plan))
        done = 0
        started = time.monotonic()
        for task, sources in plan:
            attempt.task = task
            with self._lock:
                task.state = FileState.IN_PROGRESS
            for first, rows in self._rows(job, sources):
                if job.auto_commit:
                    attempt.inserted.extend(self._insert(job, task, first, rows))
                done += len(rows)
                with self._lock:
                    task.imported_rows += len(rows)
                    job.phase_fraction = done / total
                self._throttle(job, started, done)
            with self._lock:
                task.state = FileState.COMPLETED
                task.complete_time = time.time()
        attempt.task = None

    def _rows(self, job: Job, sources: list[Source]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        for source in sources:
            first = 1
            for rows in source.batches(batch_rows_for(source.row_bytes, self._rows_per_second)):
                self._check(job)
                yield first, rows
                first += len(rows)

    def _insert(self, job: Job, task: FileTask, first: int, rows: list[dict[str, Any]]) -> list[Any]:
        partition = job.partition_name or "_default"
        label = entry_label(job, task.paths)
        try:
            with self._host.writing(job.db_name, job.collection_name) as collection:
                try:
                    pks: list[Any] = collection.insert(rows, partition_name=partition)
                except SchemaValidationError as exc:
                    raise ImportFileError(
                        f"{label}: {_locate_invalid_row(rows, first, collection.schema, exc)}"
                    ) from None
                return pks
        except CollectionNotFoundError:
            raise ImportFileError(
                f"collection '{job.collection_name}' was dropped during the import"
            ) from None
        except PartitionNotFoundError:
            raise ImportFileError(f"partition not found[partition={job.partition_name}]") from None
        except MilvusLiteError as exc:
            raise ImportFileError(f"{label}: Milvus Lite refused the rows: {exc}") from None

    def _throttle(self, job: Job, started: float, done: int) -> None:
        if self._rows_per_second is None:
            return
        due = started + done / self._rows_per_second
        while (wait := due - time.monotonic()) > 0:
            self._check(job)
            self._stop.wait(min(wait, 0.1))

    def _after_import(self, job: Job) -> None:
        """Sort and index: Milvus Lite sorts and indexes on its own, so these phases only pass by."""
        self._set_phase(job, Phase.SORTING)
        self._check(job)
        self._set_phase(job, Phase.INDEX_BUILDING)
        self._check(job)

    def _finish(self, job: Job, phase: Phase) -> None:
        with self._lock:
            if job.phase is Phase.FAILED:
                return
            job.phase = phase
            job.phase_fraction = 0.0
            job.finish_time = time.time()
            if job.ready_time is None:
                job.ready_time = job.finish_time
        self._save(job)

    def _rollback(self, job: Job, inserted: list[Any]) -> None:
        if not inserted:
            return
        try:
            with self._host.writing(job.db_name, job.collection_name) as collection:
                for start in range(0, len(inserted), _DELETE_CHUNK):
                    collection.delete(inserted[start : start + _DELETE_CHUNK])
        except Exception:
            logger.warning("import job %s: could not take back %d inserted rows", job.job_id, len(inserted))


def _times_out_on_its_timeline(job: Job) -> bool:
    """True when ``local.duration`` would show the job done only after its ``options.timeout``: Milvus would
    have failed it, so its rows must not stay (it is shown running until the timeout, then Failed)."""
    if job.timeout_at is None or job.duration <= 0:
        return False
    return job.create_time + job.duration > job.timeout_at


def _close(plan: list[tuple[FileTask, list[Source]]]) -> None:
    for _, sources in plan:
        for source in sources:
            source.close()


def _locate_invalid_row(rows: list[dict[str, Any]], first: int, schema: Any, error: Exception) -> str:
    """Name the first row Milvus Lite refuses (its own error names no row)."""
    from milvus_lite.schema.validation import validate_record

    for offset, row in enumerate(rows):
        try:
            validate_record(dict(row), schema)
        except SchemaValidationError as exc:
            return f"row {first + offset}: {exc}"
    return f"rows {first}-{first + len(rows) - 1}: {error}"
