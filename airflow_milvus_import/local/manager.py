"""The import-job API's behaviour, apart from HTTP: create, describe, list, commit, abort, restart recovery.

Handlers in :mod:`app` decode bodies and call these methods; every refusal is an :class:`ApiError` carrying
the code and message the real servers send.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_milvus_import.local.execution import ABORTED_REASON, JobExecutor
from airflow_milvus_import.local.generations import FLAVOUR_2_6, GENERATIONS, generation
from airflow_milvus_import.local.importer import Bucket, ImportFileError, PathError, file_kind
from airflow_milvus_import.local.jobs import (
    CreateRequest,
    FileTask,
    Job,
    JobIdAllocator,
    JobState,
    JobSummaryView,
    JobView,
    Phase,
    summarize_job,
    view_job,
)
from airflow_milvus_import.local.wire import (
    CODE_INVALID_PARAMETER,
    ApiError,
    collection_not_found,
    database_not_found,
    empty_import_request,
    go_parse_duration,
    go_parse_int64_error,
    import_failed,
    job_not_found,
    partition_not_found,
)

if TYPE_CHECKING:
    from airflow_milvus_import.local.config import ServerConfig
    from airflow_milvus_import.local.milvus import MilvusLiteHost
    from airflow_milvus_import.local.store import JobStore

logger = logging.getLogger(__name__)

MILVUS = "milvus"
CLOUD = "cloud"
MAX_FILES_PER_JOB = 1024
INTERRUPTED_REASON = "import interrupted by a server restart"
OPTION_DURATION = "local.duration"
OPTION_FAIL = "local.fail"
OPTION_RETRY = "local.retry"
OPTION_TIMEOUT = "timeout"
VOLUMES_DIR = "volumes"
_TERMINAL = frozenset({JobState.COMPLETED, JobState.FAILED})


def _timeout(options: dict[str, str]) -> float | None:
    """``options.timeout`` (a Go duration) in seconds, or None; an unparseable one is refused at create."""
    raw = options.get(OPTION_TIMEOUT)
    if raw is None:
        return None
    try:
        return go_parse_duration(raw)
    except ValueError as exc:
        # Milvus' ImportV2: fmt.Sprint("parse import timeout failed, err=%w", err) keeps the %w verbatim.
        raise import_failed(f"parse import timeout failed, err=%w{exc}") from None


def _duration(options: dict[str, str]) -> float:
    raw = options.get(OPTION_DURATION)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise ApiError(1100, f'invalid parameter[{OPTION_DURATION}={raw!r}]: expected seconds, e.g. "12.5"')
    return value


def _volume_name_error(name: str) -> str | None:
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return f"invalid volume name {name!r}"
    return None


class JobManager:
    """All import jobs of the server.

    :param config: the server's settings.
    :param host: Milvus Lite.
    :param store: where job records live.
    """

    def __init__(self, config: ServerConfig, host: MilvusLiteHost, store: JobStore) -> None:
        self._config = config
        self._host = host
        self._store = store
        self.bucket = Bucket(config.bucket_dir)
        self.lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._seq = 0
        self._ids = JobIdAllocator()
        self.generation = generation(config.flavour)
        self.volumes_root = Path(config.data_dir) / VOLUMES_DIR
        self._volume_buckets: dict[str, Bucket] = {}
        self._executor = JobExecutor(
            host, self.bucket_for, store.save, self.lock, config.import_workers, config.rows_per_second
        )

    # -- lifecycle --

    def recover(self) -> None:
        """Load stored jobs: a job cut off mid-import ends Failed; queued ones are queued again."""
        last_numeric = 0
        for job in self._store.load():
            self._jobs[job.job_id] = job
            self._seq = max(self._seq, job.seq)
            if job.job_id.isdigit():
                last_numeric = max(last_numeric, int(job.job_id))
            self._recover_one(job)
        self._ids = JobIdAllocator(last_numeric)
        if self._jobs:
            logger.info("loaded %d import jobs from %s", len(self._jobs), self._config.data_dir)

    def _recover_one(self, job: Job) -> None:
        if job.stalled and not self._stalls(job.collection_name):
            job.stalled = False
        if job.phase is Phase.PENDING and not job.stalled and job.injected_failure is None:
            self._executor.submit_import(job)
        elif job.phase in (
            Phase.PRE_IMPORTING,
            Phase.IMPORTING,
            Phase.SORTING,
            Phase.INDEX_BUILDING,
            Phase.COMMITTING,
        ):
            self._fail_now(job, INTERRUPTED_REASON)

    def shutdown(self) -> None:
        """Stop the import workers (running imports end Failed, queued ones wait for the next start)."""
        self._executor.shutdown()

    # -- create --

    def _stalls(self, collection_name: str) -> bool:
        return bool(self._config.stall) and fnmatch.fnmatchcase(collection_name, self._config.stall or "")

    def _check_target(self, request: CreateRequest) -> None:
        db = self._host.db
        if not db.has_database(request.db_name):
            raise database_not_found(request.db_name)
        if not db.has_collection(request.collection_name, database_name=request.db_name):
            raise collection_not_found(request.db_name, request.collection_name)
        if request.partition_name:
            collection = db.get_collection(request.collection_name, database_name=request.db_name)
            if not collection.has_partition(request.partition_name):
                raise partition_not_found(request.partition_name)

    def _volume(self, name: str) -> Bucket:
        """The bucket of a Zilliz Cloud volume: the folder ``<data_dir>/volumes/<name>``, which must exist."""
        bucket = self._volume_buckets.get(name)
        if bucket is None:
            error = _volume_name_error(name)
            folder = self.volumes_root / name
            if error is None and not folder.is_dir():
                error = f"volume {name} not found"
            if error is not None:
                raise ApiError(CODE_INVALID_PARAMETER, f"{error}: invalid parameter")
            bucket = self._volume_buckets[name] = Bucket(folder)
        return bucket

    def bucket_for(self, job: Job) -> Bucket:
        """Where a job's files are: its volume's folder, else the bucket."""
        return self._volume(job.volume_name) if job.volume_name else self.bucket

    def _check_files(self, request: CreateRequest) -> None:
        bucket = self._volume(request.volume_name) if request.volume_name else self.bucket
        if not request.files:
            raise empty_import_request()
        if len(request.files) > MAX_FILES_PER_JOB:
            raise import_failed(
                f"The max number of import files should not exceed {MAX_FILES_PER_JOB}, "
                f"but got {len(request.files)}"
            )
        cloud = request.flavour == CLOUD
        for entry in request.files:
            try:
                kind = file_kind(entry)
                if kind == "unknown" or (kind == "folder" and not cloud):
                    raise ImportFileError(f"unexpect file type, files=[{' '.join(entry)}]")
                for path in entry:
                    bucket.check(path, allow_urls=cloud and not request.volume_name)
            except (ImportFileError, PathError) as exc:
                raise import_failed(str(exc)) from None

    def _check_capacity(self, flavour: str) -> None:
        limit = self._config.max_active_jobs
        if limit is None:
            return
        now = time.time()
        jobs = list(self._jobs.values())
        active = sum(1 for summary in self.summaries(jobs, now) if summary.state not in _TERMINAL)
        if active >= limit:
            # Zilliz Cloud documents no wording of its own: it answers like the Milvus it runs (2.x).
            raise (self.generation if flavour == MILVUS else GENERATIONS[FLAVOUR_2_6]).too_many_jobs()

    def create(self, request: CreateRequest) -> Job:
        """Check and start a job; returns it (its id is ``job_id``)."""
        self._check_target(request)
        self._check_files(request)
        duration = _duration(request.options)
        timeout = _timeout(request.options)
        milvus = request.flavour == MILVUS
        auto_commit = self.generation.auto_commit(request.options) if milvus else True
        show_retry = self._retry_option(request)
        self._check_capacity(request.flavour)
        with self.lock:
            self._seq += 1
            job = Job(
                **vars(request),
                job_id=self._ids.numeric() if request.flavour == MILVUS else self._new_cloud_id(),
                seq=self._seq,
                create_time=time.time(),
                auto_commit=auto_commit,
                duration=duration,
                injected_failure=request.options.get(OPTION_FAIL) or None,
                stalled=self._stalls(request.collection_name),
                show_retry=show_retry,
            )
            if timeout is not None:
                job.timeout_at = job.create_time + timeout
            if job.injected_failure is not None:
                job.tasks = [FileTask(paths=list(entry)) for entry in job.files]
                job.phase = Phase.COMPLETED
                job.finish_time = job.ready_time = job.create_time
            self._jobs[job.job_id] = job
        self._store.save(job)
        if job.injected_failure is None and not job.stalled:
            self._executor.submit_import(job)
        return job

    def _retry_option(self, request: CreateRequest) -> bool:
        """``local.retry``: files shown in state ``Retry`` during the first half of the import phase (3.x)."""
        raw = request.options.get(OPTION_RETRY)
        if raw is None:
            return False
        if request.flavour != MILVUS or not self.generation.file_retry_state:
            raise ApiError(
                CODE_INVALID_PARAMETER,
                f"invalid parameter[{OPTION_RETRY}]: the per-file state Retry exists only on Milvus 3.x "
                "(start the server with --flavour 3.x)",
            )
        if OPTION_DURATION not in request.options:
            raise ApiError(
                CODE_INVALID_PARAMETER,
                f"invalid parameter[{OPTION_RETRY}]: needs {OPTION_DURATION} "
                "(the timeline the state is shown on)",
            )
        return raw.strip().lower() != "false"

    def _new_cloud_id(self) -> str:
        while (job_id := JobIdAllocator.cloud()) in self._jobs:
            pass
        return job_id

    # -- read --

    def view(self, job: Job, now: float) -> JobView:
        """What a client sees of a job now."""
        with self.lock:
            return view_job(job, now)

    def summaries(self, jobs: list[Job], now: float) -> list[JobSummaryView]:
        """What ``list`` records show of ``jobs`` now (state, percent, reason), under one lock.

        :param jobs: the jobs.
        :param now: the moment shown (epoch seconds).
        """
        with self.lock:
            return [summarize_job(job, now) for job in jobs]

    def find(self, flavour: str, raw_id: str, cluster_id: str = "", *, for_commit: bool = False) -> Job:
        """The job a ``jobId`` names, or the server's not-found answer.

        :param for_commit: answer as ``commit`` / ``abort`` do (3.x words them differently from ``describe``).
        """
        if flavour == MILVUS:
            parse_error = go_parse_int64_error(raw_id)
            if parse_error is not None:
                if for_commit:
                    raise self.generation.commit_bad_job_id(raw_id, parse_error)
                raise self.generation.bad_job_id(parse_error)
            job_id = str(int(raw_id))
            job = self._jobs.get(job_id)
            if job is None or job.flavour != MILVUS:
                if for_commit:
                    raise self.generation.commit_job_not_found(job_id)
                raise self.generation.job_not_found(job_id)
            return job
        job = self._jobs.get(raw_id)
        if job is None or job.flavour != CLOUD or job.cluster_id != cluster_id:
            raise job_not_found(raw_id)
        return job

    def list_jobs(
        self, flavour: str, *, db_name: str = "", collection_name: str = "", cluster_id: str = ""
    ) -> list[Job]:
        """Jobs of a flavour, oldest first, filtered like the servers filter them.

        On self-hosted Milvus a ``list`` without ``collectionName`` shows every job of every database (the
        database only resolves the collection name).
        """
        if flavour == MILVUS:
            if not self._host.db.has_database(db_name):
                raise database_not_found(db_name)
            if not collection_name:
                return [job for job in list(self._jobs.values()) if job.flavour == MILVUS]
            if not self._host.db.has_collection(collection_name, database_name=db_name):
                raise collection_not_found(db_name, collection_name)
            return [
                job
                for job in list(self._jobs.values())
                if job.flavour == MILVUS and job.db_name == db_name and job.collection_name == collection_name
            ]
        return [
            job
            for job in list(self._jobs.values())
            if job.flavour == CLOUD
            and job.cluster_id == cluster_id
            and (not collection_name or job.collection_name == collection_name)
        ]

    def counts(self) -> dict[str, Any]:
        """Jobs by client-visible state (for the stats route)."""
        now = time.time()
        by_state: dict[str, int] = {}
        for summary in self.summaries(list(self._jobs.values()), now):
            by_state[summary.state.value] = by_state.get(summary.state.value, 0) + 1
        return {"total": len(self._jobs), "by_state": by_state}

    # -- 2PC and abort --

    def _refuse_auto_commit(self, job: Job) -> None:
        if job.auto_commit:
            raise import_failed(f"job {job.job_id} is auto-commit, manual commit/abort not allowed")

    def commit(self, job: Job) -> None:
        """Commit a 2PC job waiting in Uncommitted; a job already Committing or Completed: nothing to do."""
        self._refuse_auto_commit(job)
        state = self.view(job, time.time()).state
        if state in (JobState.COMMITTING, JobState.COMPLETED):
            return
        if state is not JobState.UNCOMMITTED:
            raise import_failed(f"import job {job.job_id} is in state {state.value}, expected Uncommitted")
        with self.lock:
            job.phase = Phase.COMMITTING
        self._store.save(job)
        self._executor.submit_commit(job)

    def abort(self, job: Job) -> None:
        """Abort an uncommitted 2PC job: it ends Failed and its rows are taken back.

        Aborting it again succeeds; a job that failed on its own, or is Committing or Completed, is refused
        (committed rows are not taken back).
        """
        self._refuse_auto_commit(job)
        view = self.view(job, time.time())
        if view.state is JobState.FAILED and view.reason == ABORTED_REASON:
            return
        if view.state in (JobState.FAILED, JobState.COMMITTING, JobState.COMPLETED):
            raise import_failed(
                f"job {job.job_id} is in terminal/committed state {view.state.value}, abort not allowed"
            )
        with self.lock:
            running = job.phase not in (Phase.PENDING, Phase.UNCOMMITTED, Phase.COMPLETED) and not job.stalled
            if running and self._executor.is_queued_or_running(job.job_id):
                self._executor.abort(job.job_id)
                return
        self._fail_now(job, ABORTED_REASON)

    def _fail_now(self, job: Job, reason: str) -> None:
        with self.lock:
            job.phase = Phase.FAILED
            job.reason = reason
            job.finish_time = time.time()
            job.stalled = False
        self._store.save(job)
