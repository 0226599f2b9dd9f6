"""
MilvusImportJobEventTrigger: start a DAG when an import into a collection finishes, whoever started it.

For :class:`~airflow.sdk.AssetWatcher` on a collection asset
(:func:`~airflow_milvus_import.lineage.milvus_collection_asset`); Airflow 3.0 or newer. The polling is one
``list`` per endpoint and database per interval, whatever the number of watchers (:class:`JobListFeed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final, Protocol

from airflow.triggers.base import TriggerEvent

from airflow_milvus_import import compat, import_events
from airflow_milvus_import.arguments import check_conn_id, check_max_consecutive_errors
from airflow_milvus_import.models import ImportJobState

#: whether this Airflow has event-driven scheduling (AssetWatcher, BaseEventTrigger: 3.0+)
EVENT_DRIVEN_SCHEDULING: bool = compat.HAS_EVENT_TRIGGERS
if TYPE_CHECKING:
    from airflow.triggers.base import BaseEventTrigger as _TriggerBase
else:
    _TriggerBase = compat.base_event_trigger_class()  # BaseTrigger on Airflow 2.11

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence

    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from airflow_milvus_import.lineage import LineageTarget
    from airflow_milvus_import.models import ImportJobProgress, ImportJobSummary
    from airflow_milvus_import.polling import PollerKey
    from airflow_milvus_import.protocol import ConnectionSettings

__all__ = ["EVENT_DRIVEN_SCHEDULING", "JobListFeed", "JobListSnapshot", "MilvusImportJobEventTrigger"]

DEFAULT_CONN_ID: Final = "milvus_import_default"
DEFAULT_POLL_INTERVAL: Final = 10.0
#: non-transient failed polls in a row (a wrong token, a missing collection) before the watcher fails
DEFAULT_MAX_CONSECUTIVE_ERRORS: Final = 5
#: a job missing from this many successful lists in a row is gone from the server: its state keys go too
VANISHED_AFTER_LISTS: Final = 3


def _require_event_driven_scheduling() -> None:
    if not EVENT_DRIVEN_SCHEDULING:
        raise compat.FeatureUnavailableError(
            "MilvusImportJobEventTrigger needs Airflow 3.0 or newer (AssetWatcher and BaseEventTrigger). "
            + compat.unavailable_message("asset watchers")
        )


# ---------------------------------------------------------------------------------------------------------
# One list per endpoint and interval, fanned out to every watcher of the event loop
# ---------------------------------------------------------------------------------------------------------


class JobListSnapshot:
    """
    One ``list`` answer (every job of a database) or the error that poll ended with.

    :param jobs: the records.
    :param error: the poll's error (then ``jobs`` is empty).
    """

    __slots__ = ("error", "jobs")

    def __init__(self, jobs: Sequence[ImportJobSummary] = (), error: Exception | None = None) -> None:
        self.jobs = tuple(jobs)
        self.error = error


class JobListFeed:
    """
    Lists the import jobs of one endpoint and database for every watcher of one event loop: one ``list``
    (paged on Zilliz Cloud) per round, at the shortest poll interval among its subscribers, through one hook,
    so through the endpoint's rate budget and the hook's retries. Created and stopped by :func:`subscribe`.

    :param key: the endpoint (base URL, cluster, database, TLS, a token fingerprint; never the token).
    :param conn_id: the connection the settings came from.
    """

    def __init__(self, key: PollerKey, conn_id: str) -> None:
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

        self.key = key
        self.db_name = key.db_name
        self.hook: MilvusImportHook = MilvusImportHook(conn_id)
        self.rounds = 0
        self._queues: dict[asyncio.Queue[JobListSnapshot], float] = {}
        self._latest: JobListSnapshot | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"JobListFeed({self.key}, subscribers={len(self._queues)})"

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def add(self, interval: float) -> asyncio.Queue[JobListSnapshot]:
        queue: asyncio.Queue[JobListSnapshot] = asyncio.Queue(maxsize=1)
        self._queues[queue] = interval
        if self._latest is not None:
            queue.put_nowait(self._latest)  # no older than one interval: the newcomer starts from it
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"milvus-import-list {self.key}"
            )
        return queue

    def remove(self, queue: asyncio.Queue[JobListSnapshot]) -> asyncio.Task[None] | None:
        self._queues.pop(queue, None)
        if self._queues or self._task is None:
            return None
        task, self._task = self._task, None
        task.cancel()
        return task

    async def _run(self) -> None:
        try:
            while self._queues:
                try:
                    snapshot = JobListSnapshot(await self.hook.alist_import_jobs(db_name=self.db_name))
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    snapshot = JobListSnapshot(error=error)
                self.rounds += 1
                self._latest = snapshot
                for queue in list(self._queues):
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()  # a slow watcher skips to the newest list
                    queue.put_nowait(snapshot)
                await asyncio.sleep(min(self._queues.values(), default=DEFAULT_POLL_INTERVAL))
        finally:
            await self.hook.aclose()


_feeds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PollerKey, JobListFeed]] = (
    weakref.WeakKeyDictionary()
)


def active_feeds() -> list[JobListFeed]:
    """The list feeds of the running event loop (for tests and benchmarks)."""
    return list(_feeds.get(asyncio.get_running_loop(), {}).values())


@contextlib.asynccontextmanager
async def subscribe(
    settings: ConnectionSettings, conn_id: str, db_name: str | None, interval: float
) -> AsyncIterator[tuple[JobListFeed, AsyncIterator[JobListSnapshot]]]:
    """The jobs of ``settings``' endpoint and ``db_name``, list by list, shared with the loop's watchers."""
    from airflow_milvus_import.polling import PollerKey

    feeds = _feeds.setdefault(asyncio.get_running_loop(), {})
    key = PollerKey.of(settings, db_name)
    feed = feeds.get(key)
    if feed is None:
        feed = feeds[key] = JobListFeed(key, conn_id)
    queue = feed.add(interval)

    async def snapshots() -> AsyncIterator[JobListSnapshot]:
        while True:
            yield await queue.get()

    try:
        yield feed, snapshots()
    finally:
        task = feed.remove(queue)
        if task is not None:
            if feeds.get(key) is feed:
                del feeds[key]
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ---------------------------------------------------------------------------------------------------------
# Where a watcher remembers what it reported
# ---------------------------------------------------------------------------------------------------------


class StateStore(Protocol):
    """The asynchronous half of Airflow 3.3's asset state store accessor (one asset)."""

    async def aget(self, key: str, default: Any = None) -> Any: ...

    async def aset(self, key: str, value: Any) -> None: ...

    async def adelete(self, key: str) -> None: ...


class MemoryStateStore:
    """A process-local state store, where Airflow offers none (before 3.3, ``dag.test()``, one watched asset
    among several): what was reported is remembered until the process ends."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value

    async def adelete(self, key: str) -> None:
        self.values.pop(key, None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# ---------------------------------------------------------------------------------------------------------
# The trigger
# ---------------------------------------------------------------------------------------------------------


class MilvusImportJobEventTrigger(_TriggerBase):
    """
    Fires one event per import job into ``collection_name`` that reaches a reported state (``Completed``
    by default; ``Failed`` too when ``states`` says so), whoever created the job: for an
    ``AssetWatcher`` on the collection's asset, so a DAG scheduled on that asset runs once per finished
    import. The event's payload (the asset event's ``extra["payload"]``) carries ``job_id``,
    ``collection_name``, ``db_name``, ``state``, ``imported_rows``, ``total_rows``, ``file_size``,
    ``files``, ``reason``, ``complete_time``, ``deployment``, ``endpoint`` (and ``cluster_id``); never the
    token. ``JOB_IDS_FROM_TRIGGERING_ASSET_EVENTS`` reads the job ids from it.

    **Polling.** Every watcher of a triggerer on one endpoint and database shares one ``list`` per round
    (at the shortest interval among them), through the endpoint's rate budget; a finished job of the
    watched collection costs one more ``list`` of that collection (which pins its database) and one
    ``describe`` (for the rows and files). Airflow 3.3's shared streams are not used: their key is computed
    before ``run`` without awaiting, so it could not know the endpoint behind a connection id, and they exist
    only on 3.3; the process-wide feed shares across connection ids, intervals and Airflow 3.x versions.

    **At most once per job.** With Airflow 3.3's asset state store, a job is marked reported in the asset's
    state (key ``milvus_import.reported.<job_id>``) just before its event is yielded, and a job so marked
    is never reported to that asset again: not after a triggerer restart, not by a second triggerer, not by
    another watcher of the same asset. A job that finishes while no triggerer runs the watcher is reported
    when one runs it again. The one gap: a triggerer killed between marking a job and Airflow storing the
    event (the next state sync, about a second) loses that job's event; it is never repeated. Two
    triggerers running the same watcher at the same instant (Airflow assigns a trigger to one) could both
    report a job that finished in that instant. Without a state store (Airflow 3.0-3.2) the same holds
    within one triggerer process; after a restart, jobs that finished while it was down are not reported.

    **Baseline.** Jobs already finished when the watcher first runs are not reported (remembered in the
    asset's state as this watcher's baseline), unless ``since`` is given: then those that finished at or
    after ``since`` are (a job whose server tells no finish time counts as before).

    :param collection_name: the collection whose imports to report.
    :param milvus_import_conn_id: the Airflow connection of the endpoint.
    :param db_name: the database (None: the connection's ``db_name`` extra, or ``default``).
    :param states: the states to report: ``"Completed"``, ``"Failed"`` or both.
    :param min_rows: report only jobs that imported at least this many rows.
    :param created_by: ``"anyone"`` (default) or ``"others"``: skip jobs that
        :class:`~airflow_milvus_import.operators.milvus_import.MilvusBulkImportOperator` created with this
        asset as an outlet (its task already emits the asset's event); needs the asset state store (3.3).
    :param since: also report jobs that finished before the watcher first ran, from this time on
        (a datetime or ISO 8601 text; naive means UTC).
    :param poll_interval: seconds between lists.
    :param max_consecutive_errors: failed lists in a row that are not transient (a wrong token, an unknown
        database) before the watcher fails; transient failures are retried by the hook and then logged.
    """

    def __init__(
        self,
        *,
        collection_name: str,
        milvus_import_conn_id: str = DEFAULT_CONN_ID,
        db_name: str | None = None,
        states: str | Sequence[str] = (ImportJobState.COMPLETED.value,),
        min_rows: int = 0,
        created_by: str = import_events.CREATED_BY_ANYONE,
        since: datetime | str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
    ) -> None:
        _require_event_driven_scheduling()
        super().__init__()  # type: ignore[no-untyped-call]
        if not isinstance(collection_name, str) or not collection_name.strip():
            raise ValueError(f"collection_name must be a non-empty string, got {collection_name!r}")
        check_conn_id(milvus_import_conn_id)
        if db_name is not None and (not isinstance(db_name, str) or not db_name.strip()):
            raise ValueError(f"db_name must be a non-empty string or None, got {db_name!r}")
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 0:
            raise ValueError(f"min_rows must be an integer >= 0, got {min_rows!r}")
        if created_by not in import_events.CREATED_BY_VALUES:
            allowed = ", ".join(import_events.CREATED_BY_VALUES)
            raise ValueError(f"created_by must be one of {allowed}, got {created_by!r}")
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or not poll_interval > 0
        ):
            raise ValueError(f"poll_interval must be a number of seconds > 0, got {poll_interval!r}")
        check_max_consecutive_errors(max_consecutive_errors, not_an_integer=ValueError)
        self.collection_name = collection_name
        self.milvus_import_conn_id = milvus_import_conn_id
        self.db_name = db_name
        self.states = import_events.normalize_states(states)
        self.min_rows = min_rows
        self.created_by = created_by
        self.since = import_events.parse_since(since)
        self.poll_interval = float(poll_interval)
        self.max_consecutive_errors = max_consecutive_errors

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(collection_name={self.collection_name!r}, "
            f"milvus_import_conn_id={self.milvus_import_conn_id!r}, db_name={self.db_name!r}, "
            f"states={list(self.states)!r})"
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_milvus_import.triggers.milvus_import_event.MilvusImportJobEventTrigger",
            {
                "collection_name": self.collection_name,
                "milvus_import_conn_id": self.milvus_import_conn_id,
                "db_name": self.db_name,
                "states": list(self.states),
                "min_rows": self.min_rows,
                "created_by": self.created_by,
                "since": self.since.isoformat() if self.since is not None else None,
                "poll_interval": self.poll_interval,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    def _identity(self) -> dict[str, Any]:
        """What makes two watchers the same for their baseline (not how often or through which connection)."""
        kwargs = self.serialize()[1]
        return {
            name: kwargs[name]
            for name in ("collection_name", "db_name", "states", "min_rows", "created_by", "since")
        }

    async def _state_store(self) -> tuple[StateStore, bool]:
        """The asset state store Airflow 3.3 gave this watcher (durable), else a process-local one."""
        store: StateStore | None = getattr(self, "asset_state_store", None)
        if store is None:
            return MemoryStateStore(), False
        try:
            await store.aget(import_events.watch_key(self._identity()))
        except ValueError:  # Airflow's accessor of several assets wants one named
            self.log.warning(
                "Watcher of collection %r watches several assets: what it reported is remembered in "
                "this process only (give each asset its own watcher for the restart guarantee)",
                self.collection_name,
            )
            return MemoryStateStore(), False
        return store, True

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_milvus_import.lineage import target_from_settings
        from airflow_milvus_import.polling import resolve_settings

        store, durable = await self._state_store()
        if self.created_by == import_events.CREATED_BY_OTHERS and not durable:
            raise RuntimeError(
                f"Watcher of collection {self.collection_name!r}: created_by='others' needs Airflow 3.3's "
                "asset state store (where the import operator marks its jobs), and this watcher has none"
            )
        settings = await resolve_settings(self.milvus_import_conn_id)
        target = target_from_settings(settings)
        async with subscribe(settings, self.milvus_import_conn_id, self.db_name, self.poll_interval) as (
            feed,
            snapshots,
        ):
            watch = _Watch(self, store, target, feed.hook)
            async for event in watch.events(snapshots):
                yield event


class _Watch:
    """One watcher's run: turns list snapshots into events (see :class:`MilvusImportJobEventTrigger`)."""

    def __init__(
        self,
        trigger: MilvusImportJobEventTrigger,
        store: StateStore,
        target: LineageTarget,
        hook: MilvusImportHook,
    ) -> None:
        self.trigger = trigger
        self.hook = hook
        self.log = trigger.log
        self.store = store
        self.target = target
        self.collection = trigger.collection_name
        self.baseline: set[str] | None = None
        self.baseline_key = import_events.watch_key(trigger._identity())
        #: decided jobs: reported, skipped by a filter, or in the baseline
        self.handled: set[str] = set()
        #: finished jobs of the collection seen, and how many lists in a row have not shown them since
        self.missing: dict[str, int] = {}
        self.failures = 0

    async def events(self, snapshots: AsyncIterator[JobListSnapshot]) -> AsyncIterator[TriggerEvent]:
        hook = self.hook
        async for snapshot in snapshots:
            if snapshot.error is not None:
                self._failed_poll(snapshot.error)
                continue
            self.failures = 0
            if self.baseline is None:
                self.baseline = await self._load_baseline(snapshot.jobs, hook)
                if self.baseline is None:
                    continue
                self.handled |= self.baseline
            await self._forget_vanished(snapshot.jobs)
            candidates = import_events.finished_jobs(snapshot.jobs, self.collection, exclude=self.handled)
            if not candidates:
                continue
            confirmed = await self._in_database(hook, {job.job_id for job in candidates})
            for job in candidates:
                if job.job_id not in confirmed:
                    continue
                payload = await self._decide(hook, job)
                if payload is not None:
                    yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    def _failed_poll(self, error: Exception) -> None:
        from airflow_milvus_import.exceptions import MilvusImportError

        transient = isinstance(error, MilvusImportError) and error.transient
        if not transient:
            self.failures += 1
        self.log.warning(
            "Watcher of collection %r: listing import jobs failed%s: %s",
            self.collection,
            "" if transient else f" ({self.failures}/{self.trigger.max_consecutive_errors} in a row)",
            error,
        )
        if self.failures >= self.trigger.max_consecutive_errors:
            raise error

    async def _load_baseline(
        self, jobs: Sequence[ImportJobSummary], hook: MilvusImportHook
    ) -> set[str] | None:
        stored = await self.store.aget(self.baseline_key)
        if isinstance(stored, dict) and isinstance(stored.get("baseline"), list):
            return {str(job_id) for job_id in stored["baseline"]}
        finished = import_events.finished_jobs(jobs, self.collection)
        baseline = {job.job_id for job in finished}
        since = self.trigger.since
        if since is not None:
            for job in finished:
                try:
                    progress = await hook.aget_import_progress(job.job_id, db_name=self.trigger.db_name)
                except Exception as error:
                    self.log.warning(
                        "Watcher of collection %r: cannot read job %s for since=%s (%s); "
                        "trying again at the next list",
                        self.collection,
                        job.job_id,
                        since,
                        error,
                    )
                    return None
                moment = import_events.finished_at(progress)
                if moment is not None and moment >= since:
                    baseline.discard(job.job_id)
        await self._save_baseline(baseline)
        self.log.info(
            "Watcher of collection %r: %d job(s) already finished are not reported%s; reporting %s jobs "
            "from now on",
            self.collection,
            len(baseline),
            f" (those finished since {since.isoformat()} are)" if since is not None else "",
            " and ".join(self.trigger.states),
        )
        return baseline

    async def _save_baseline(self, baseline: Iterable[str]) -> None:
        await self.store.aset(self.baseline_key, {"baseline": sorted(baseline), "updated_at": _now()})

    async def _forget_vanished(self, jobs: Sequence[ImportJobSummary]) -> None:
        """Drop the state of finished jobs the server no longer lists (it keeps jobs for a while only)."""
        listed = {job.job_id for job in jobs if job.collection_name == self.collection}
        for job in import_events.finished_jobs(jobs, self.collection):
            self.missing[job.job_id] = 0
        gone: list[str] = []
        for job_id in list(self.missing):
            if job_id in listed:
                continue
            self.missing[job_id] += 1
            if self.missing[job_id] >= VANISHED_AFTER_LISTS:
                gone.append(job_id)
        if not gone:
            return
        for job_id in gone:
            del self.missing[job_id]
            self.handled.discard(job_id)
            await self.store.adelete(import_events.reported_key(job_id))
            await self.store.adelete(import_events.created_key(job_id))
        assert self.baseline is not None
        if self.baseline & set(gone):
            self.baseline -= set(gone)
            await self._save_baseline(self.baseline)

    async def _in_database(self, hook: MilvusImportHook, job_ids: set[str]) -> set[str]:
        """The ids among ``job_ids`` that a list of the collection in its database shows.

        A ``list`` without a collection may answer every database's jobs, and its records name no database.
        """
        from airflow_milvus_import.exceptions import MilvusImportNotFoundError, MilvusImportRouteNotFoundError

        try:
            jobs = await hook.alist_import_jobs(self.collection, db_name=self.trigger.db_name)
        except Exception as error:
            if isinstance(error, MilvusImportNotFoundError) and not isinstance(
                error, MilvusImportRouteNotFoundError
            ):
                # No such collection in this database (any more): the jobs listed are not this database's.
                self.log.info(
                    "Watcher of collection %r: %s; finished jobs %s are not reported",
                    self.collection,
                    error,
                    ", ".join(sorted(job_ids)),
                )
                self.handled |= job_ids
            else:
                self.log.warning(
                    "Watcher of collection %r: listing its jobs failed (%s); trying again at the next list",
                    self.collection,
                    error,
                )
            return set()
        return {job.job_id for job in jobs} & job_ids

    async def _decide(self, hook: MilvusImportHook, job: ImportJobSummary) -> dict[str, Any] | None:
        """The event payload of a newly finished job, or None when it is not to be reported (now or ever)."""
        job_id = job.job_id
        trigger = self.trigger
        if job.state.value not in trigger.states:
            self.handled.add(job_id)
            return None
        if await self.store.aget(import_events.reported_key(job_id)) is not None:
            self.handled.add(job_id)
            return None
        if (
            trigger.created_by == import_events.CREATED_BY_OTHERS
            and await self.store.aget(import_events.created_key(job_id)) is not None
        ):
            self.log.info(
                "Import job %s into %r was created by the import operator: not reported",
                job_id,
                self.collection,
            )
            self.handled.add(job_id)
            return None
        try:
            progress: ImportJobProgress = await hook.aget_import_progress(job_id, db_name=trigger.db_name)
        except Exception as error:
            self.log.warning(
                "Watcher of collection %r: reading finished job %s failed (%s); trying again at "
                "the next list",
                self.collection,
                job_id,
                error,
            )
            return None
        if progress.state.value not in trigger.states:
            if not progress.state.is_terminal:
                return None  # the list ran ahead of describe: look again next time
            self.handled.add(job_id)
            return None
        if progress.imported_rows < trigger.min_rows:
            self.log.info(
                "Import job %s into %r imported %d rows (< min_rows %d): not reported",
                job_id,
                self.collection,
                progress.imported_rows,
                trigger.min_rows,
            )
            self.handled.add(job_id)
            return None
        # Another watcher of the asset may have reported it while this one described it.
        if await self.store.aget(import_events.reported_key(job_id)) is not None:
            self.handled.add(job_id)
            return None
        await self.store.aset(
            import_events.reported_key(job_id), {"state": progress.state.value, "at": _now()}
        )
        self.handled.add(job_id)
        payload = import_events.event_payload(
            self.target, progress, collection_name=self.collection, db_name=trigger.db_name
        )
        self.log.info(
            "Import job %s into %r is %s (%d rows, %d files%s): reporting it",
            job_id,
            self.collection,
            progress.state.value,
            progress.imported_rows,
            payload.get("files", 0),
            f", reason: {progress.reason}" if progress.reason else "",
        )
        return payload
