"""
One triggerer, thousands of waits: process-wide shared polling.

:class:`SharedPoller`, one per event loop and endpoint (base URL, cluster, database, TLS settings and a
fingerprint of the token, never the token itself), polls for every :class:`SharedProgressSource`
(one per trigger) that waits on that endpoint, over one hook and one HTTP connection pool. Each round
it serves every wait that is due with either one ``list`` (self-hosted Milvus answers the state and
progress of every job in one request; Zilliz Cloud pages) or one ``describe`` per job, whichever costs
fewer requests and bytes (:func:`choose_poll_mode`); in list rounds a job is described only when it
reaches a state that ends its wait, so the event still carries the full per-file details. Waits that
come due close together are served by the same round, so 1,000 waits at a 1 s interval cost about one
list per second (plus one describe per job at its end) instead of 1,000 describes per second.

The per-endpoint rate budget every request takes a token from lives on the transport side
(:mod:`airflow_milvus_import.transport`); its names are re-exported here.

Every poll is protected like a hook call: a transient failure (connection error, timeout, 5xx, 408,
429 honouring ``Retry-After``) is retried inside the poll, up to the connection's ``max_retries`` (3 by
default) with exponential backoff and jitter, each attempt within the endpoint's rate budget, and never
past the earliest deadline of the waits it serves. A round whose ``list`` still fails is one event for
the endpoint: logged once here, and each wait it served counts one failed poll.

A trigger alone (``dag.test()``, one wait in a triggerer) polls exactly as before: ``describe`` per job
at its own interval. Nothing here is part of a trigger's serialized form.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import math
import random
import sys
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from airflow_milvus_import import protocol
from airflow_milvus_import.exceptions import (
    MilvusImportAuthError,
    MilvusImportError,
    MilvusImportPermissionError,
)
from airflow_milvus_import.models import ImportJobProgress, ImportJobState, ImportJobSummary
from airflow_milvus_import.transport import (
    DEFAULT_PAUSE_SECONDS,
    SHARED_PAUSE_CAP_SECONDS,
    RateBudget,
    rate_budget_for,
    request_deadline,
    request_not_after,
    reset_rate_budgets,
    token_fingerprint,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence

    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
    from airflow_milvus_import.protocol import ConnectionSettings

__all__ = [
    "DEFAULT_PAUSE_SECONDS",
    "SHARED_PAUSE_CAP_SECONDS",
    "PollCost",
    "PollMode",
    "PollerKey",
    "RateBudget",
    "SharedPoller",
    "SharedProgressSource",
    "active_pollers",
    "choose_poll_mode",
    "describe_cost",
    "list_cost",
    "poll_retry_delay",
    "rate_budget_for",
    "request_not_after",
    "reset_rate_budgets",
    "retry_transient",
    "token_fingerprint",
]

log = logging.getLogger(__name__)

PollMode = Literal["list", "describe"]
ProgressAnswer = ImportJobProgress | Exception
_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------------------
# list or describe: the cost model
# ---------------------------------------------------------------------------------------------------------

#: what one request costs beside its answer, in bytes: headers both ways, a round trip, the work a server
#: and a client do per call (on Zilliz Cloud, also a share of a per-second request limit)
REQUEST_COST_BYTES: Final = 4096
#: one ``list`` record (jobId, collectionName, state, progress): ~90 bytes on Milvus
LIST_RECORD_BYTES: Final = 100
#: one ``describe`` answer of a job with a file or two: ~400 bytes
DESCRIBE_BYTES: Final = 450
#: a trigger alone uses ``list`` only from this many jobs on (fewer: describe, exactly as before)
MIN_JOBS_FOR_LIST_ALONE: Final = 32
#: a list result that shows the server's job count is trusted for this long; then a list is tried again
SERVER_JOBS_MAX_AGE_SECONDS: Final = 600.0
#: switching modes needs a clear win (10%), so a poller does not flap between them
_HYSTERESIS: Final = 1.1


@dataclass(frozen=True)
class PollCost:
    """What one poll round costs: requests and answer bytes (:attr:`total` weighs both in bytes)."""

    requests: float
    bytes: float

    @property
    def total(self) -> float:
        return self.requests * REQUEST_COST_BYTES + self.bytes


def describe_cost(jobs: int) -> PollCost:
    """One ``describe`` per job."""
    return PollCost(requests=jobs, bytes=jobs * DESCRIBE_BYTES)


def list_cost(server_jobs: int, *, zilliz: bool, page_size: int = protocol.ZILLIZ_PAGE_SIZE) -> PollCost:
    """One ``list`` of every job on the server (Zilliz Cloud: one request per page of ``page_size``)."""
    pages = max(1, math.ceil(server_jobs / page_size)) if zilliz else 1
    return PollCost(requests=pages, bytes=server_jobs * LIST_RECORD_BYTES)


def choose_poll_mode(
    *,
    watchers: int,
    jobs: int,
    server_jobs: int | None,
    zilliz: bool,
    list_usable: bool = True,
    current: PollMode | None = None,
    page_size: int = protocol.ZILLIZ_PAGE_SIZE,
) -> PollMode:
    """
    ``list`` or ``describe`` for the next round: whichever costs less (:class:`PollCost`).

    :param watchers: waits (triggers) sharing the poller.
    :param jobs: distinct unfinished jobs they wait for.
    :param server_jobs: jobs the server held at the last list (None: unknown; then a list finds out).
    :param zilliz: Zilliz Cloud (list is paged) rather than self-hosted Milvus.
    :param list_usable: False once ``list`` failed in a way that will not change (missing route, answer
        too large): describe from then on.
    :param current: the mode in use (a switch needs a clear win).
    """
    if not list_usable or jobs < 2:
        return "describe"
    if watchers < 2 and jobs < MIN_JOBS_FOR_LIST_ALONE:
        return "describe"  # a trigger alone polls as it always did
    if server_jobs is None:
        return "list"
    listing = list_cost(server_jobs, zilliz=zilliz, page_size=page_size).total
    describing = describe_cost(jobs).total
    if current == "list":
        return "list" if listing <= describing * _HYSTERESIS else "describe"
    return "list" if listing * _HYSTERESIS < describing else "describe"


def progress_from_summary(summary: ImportJobSummary, last: ImportJobProgress | None) -> ImportJobProgress:
    """
    A job's progress from its ``list`` record: state, percent and reason from the record; rows, sizes and
    files from the last ``describe`` seen, if any (a list record has none of them).
    """
    if last is None:
        return ImportJobProgress(
            job_id=summary.job_id,
            collection_name=summary.collection_name,
            state=summary.state,
            progress=summary.progress or 0,
            reason=summary.reason,
        )
    return dataclasses.replace(
        last,
        collection_name=summary.collection_name or last.collection_name,
        state=summary.state,
        progress=summary.progress if summary.progress is not None else last.progress,
        reason=summary.reason,
    )


def _list_unusable(error: BaseException) -> bool:
    """Whether a failed ``list`` says list will not work here (rather than a failed poll of every job)."""
    if not isinstance(error, MilvusImportError):
        return False
    return not error.transient and not isinstance(error, (MilvusImportAuthError, MilvusImportPermissionError))


# ---------------------------------------------------------------------------------------------------------
# The shared poller
# ---------------------------------------------------------------------------------------------------------

#: in list rounds, a wait due within this share of its interval is served by the round under way (once:
#: from then on it is due with that round's group)
LIST_ALIGN_FRACTION: Final = 0.5
#: in describe rounds, waits due this close together are served by one round
DESCRIBE_ALIGN_SECONDS: Final = 0.02
#: describe calls in flight at once per poller
MAX_CONCURRENT_DESCRIBES: Final = 16
#: waits answered per event-loop turn: the triggers' own work after an answer is spread over turns
DISPATCH_CHUNK: Final = 16
#: list records turned into answers per event-loop turn
CLASSIFY_CHUNK: Final = 500
#: a connection read for one trigger serves the others of the same connection id this long
SETTINGS_TTL_SECONDS: Final = 30.0
#: a poll's retries: the first backoff (it doubles, with jitter, up to the longest one), as the hook's
POLL_RETRY_MIN_WAIT_SECONDS: Final = 0.5
POLL_RETRY_MAX_WAIT_SECONDS: Final = 10.0
#: the longest ``Retry-After`` a poll's retry honours (the trigger caps its own wait the same way)
POLL_RETRY_AFTER_CAP_SECONDS: Final = 60.0


def poll_retry_delay(attempt: int, error: BaseException) -> float:
    """
    Seconds before retry ``attempt`` (1 = the first retry) of a poll that failed with ``error``:
    exponential backoff with jitter (half fixed, half random), at least the server's ``Retry-After``.
    """
    base = min(POLL_RETRY_MAX_WAIT_SECONDS, POLL_RETRY_MIN_WAIT_SECONDS * 2 ** (attempt - 1))
    delay = base / 2 + random.uniform(0, base / 2)
    asked = getattr(error, "retry_after", None)
    if isinstance(asked, (int, float)) and math.isfinite(asked) and asked > 0:
        delay = max(delay, min(float(asked), POLL_RETRY_AFTER_CAP_SECONDS))
    return float(delay)


async def retry_transient(
    call: Callable[[], Awaitable[_T]],
    *,
    retries: int,
    not_after: float | None,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> _T:
    """
    ``await call()``, retrying transient failures (:attr:`MilvusImportError.transient`) up to ``retries``
    times with :func:`poll_retry_delay`; a retry that could not start before ``not_after`` (monotonic)
    is not made, and the last error is raised instead.

    :param on_retry: called with (retry number, delay, error) before each retry's sleep.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except MilvusImportError as error:
            if not error.transient or attempt >= retries:
                raise
            attempt += 1
            delay = poll_retry_delay(attempt, error)
            if not_after is not None and time.monotonic() + delay >= not_after:
                raise
            if on_retry is not None:
                on_retry(attempt, delay, error)
            await asyncio.sleep(delay)


@dataclass(frozen=True)
class PollerKey:
    """
    What makes two waits share a poller: the same endpoint, cluster, database, TLS and timeout settings,
    and the same token (by its :func:`token_fingerprint`, never the token itself).
    """

    base_url: str
    cluster_id: str | None
    db_name: str | None
    token_fingerprint: str
    verify: bool | str
    timeout: float

    @classmethod
    def of(cls, settings: ConnectionSettings, db_name: str | None) -> PollerKey:
        return cls(
            base_url=settings.base_url,
            cluster_id=settings.cluster_id,
            db_name=db_name or settings.db_name,
            token_fingerprint=token_fingerprint(settings.token),
            verify=settings.verify,
            timeout=settings.timeout,
        )

    def __str__(self) -> str:
        return f"{self.base_url} (database {self.db_name or 'default'})"


class _Watch:
    """One wait (one trigger) registered with a poller."""

    __slots__ = ("final_states", "jobs", "request", "served_at")

    def __init__(self, final_states: frozenset[ImportJobState]) -> None:
        self.final_states = final_states
        self.jobs: frozenset[str] = frozenset()
        self.request: _Request | None = None
        #: when the round that served its last request started (monotonic)
        self.served_at: float | None = None


class _Request:
    """One poll a wait asked for: these jobs, not before ``due``."""

    __slots__ = ("answers", "due", "future", "job_ids", "not_after", "pending", "slack", "watch")

    def __init__(
        self,
        watch: _Watch,
        job_ids: tuple[str, ...],
        due: float,
        slack: float,
        not_after: float | None,
        future: asyncio.Future[dict[str, ProgressAnswer]],
    ) -> None:
        self.watch = watch
        self.job_ids = job_ids
        self.due = due
        self.slack = slack
        self.not_after = not_after
        self.future = future
        self.answers: dict[str, ProgressAnswer] = {}
        self.pending = len(job_ids)

    @property
    def done(self) -> bool:
        return self.future.done()

    def answer(self, job_id: str, value: ProgressAnswer) -> bool:
        """Record one job's answer; True when every job of the request has one."""
        if job_id not in self.answers:
            self.answers[job_id] = value
            self.pending -= 1
        return self.pending <= 0

    def resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(self.answers)


async def _wait_event(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass (not ``wait_for``: it can swallow a cancellation)."""
    with contextlib.suppress(asyncio.TimeoutError):
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(seconds):
                await event.wait()
        else:  # pragma: no cover - Python 3.10
            await asyncio.wait_for(event.wait(), seconds)


def _earliest(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return min(known) if known else None


class SharedPoller:
    """
    Polls one endpoint for every wait of one event loop that shares its :class:`PollerKey`.

    Waits ask for a poll of their unfinished jobs at a time of their choosing (:meth:`request`); the
    poller serves everything due in rounds (one task), each round either one ``list`` for all or one
    ``describe`` per job (:func:`choose_poll_mode`), each retried on transient failures
    (:func:`retry_transient`). A list that still fails is a failed poll of every job it was for, logged
    once. Created and stopped by the registry (:func:`_attach`, :func:`_detach`): it stops, closing its
    HTTP client, when its last wait leaves.

    :param key: what it polls.
    :param settings: the connection settings (read once, by the first wait).
    :param conn_id: the connection id the settings came from (for the hook's messages).
    """

    def __init__(self, key: PollerKey, settings: ConnectionSettings, conn_id: str) -> None:
        self.key = key
        self.settings = settings
        self.conn_id = conn_id
        self.db_name = key.db_name
        #: retries inside one poll (the connection's ``max_retries``)
        self.max_retries = settings.max_retries
        self.mode: PollMode = "describe"
        self.server_jobs: int | None = None
        self.list_usable = True
        self.stats: dict[str, int] = {
            "rounds": 0,
            "list_rounds": 0,
            "list_requests": 0,
            "describes": 0,
            "failed_lists": 0,
            "failed_describes": 0,
            "retries": 0,
            "answers": 0,
        }
        self._server_jobs_at = -math.inf
        self._watches: set[_Watch] = set()
        self._job_refs: dict[str, int] = {}
        self._last_full: dict[str, ImportJobProgress] = {}
        self._heap: list[tuple[float, int, _Request]] = []
        self._sequence = itertools.count()
        self._wakeup = asyncio.Event()
        self._describe_limit = asyncio.Semaphore(MAX_CONCURRENT_DESCRIBES)
        self._background: set[asyncio.Task[None]] = set()
        self._hook: MilvusImportHook | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"SharedPoller({self.key}, watchers={len(self._watches)}, mode={self.mode})"

    # -- what tests and benchmarks look at

    @property
    def watchers(self) -> int:
        return len(self._watches)

    @property
    def watched_jobs(self) -> int:
        return len(self._job_refs)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def http_client_closed(self) -> bool:
        return self._hook is None or self._hook.async_client_closed

    # -- watches

    def add_watch(self, final_states: frozenset[ImportJobState]) -> _Watch:
        watch = _Watch(final_states)
        self._watches.add(watch)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"milvus-import-poller {self.key}"
            )
        return watch

    def remove_watch(self, watch: _Watch) -> None:
        if watch not in self._watches:
            return
        self._watches.discard(watch)
        self._set_jobs(watch, frozenset())
        if watch.request is not None and not watch.request.done:
            watch.request.future.cancel()
        watch.request = None
        self._wakeup.set()

    def _set_jobs(self, watch: _Watch, jobs: frozenset[str]) -> None:
        if jobs == watch.jobs:
            return
        for job_id in watch.jobs - jobs:
            count = self._job_refs.get(job_id, 0) - 1
            if count > 0:
                self._job_refs[job_id] = count
            else:
                self._job_refs.pop(job_id, None)
                self._last_full.pop(job_id, None)
        for job_id in jobs - watch.jobs:
            self._job_refs[job_id] = self._job_refs.get(job_id, 0) + 1
        watch.jobs = jobs

    def request(
        self,
        watch: _Watch,
        job_ids: Sequence[str],
        *,
        delay: float = 0.0,
        exact: bool = False,
        not_after: float | None = None,
    ) -> asyncio.Future[dict[str, ProgressAnswer]]:
        """
        Ask for one poll of ``job_ids`` in ``delay`` seconds; the future gets ``{job_id: progress or
        exception}``.

        :param exact: ``delay`` from now, not a moment earlier (a ``Retry-After``, a deadline). Otherwise
            ``delay`` counts from the start of the round that served the wait last (so waits served by one
            round stay together however long it took to answer them all), and a round under way may serve
            it up to half of ``delay`` early, which is how a new wait joins the others' rounds.
        :param not_after: a monotonic time past which the request goes even if the endpoint's rate
            budget is paused (the wait's deadline).
        """
        if self.closed:
            raise RuntimeError(f"the poller of {self.key} is stopped")
        if watch.request is not None and not watch.request.done:
            watch.request.future.cancel()
        loop = asyncio.get_running_loop()
        ids = tuple(dict.fromkeys(job_ids))
        self._set_jobs(watch, frozenset(ids))
        now = time.monotonic()
        delay = max(0.0, delay)
        anchor = now if exact or watch.served_at is None else watch.served_at
        due = max(now, anchor + delay)
        slack = 0.0 if exact else LIST_ALIGN_FRACTION * delay
        request = _Request(watch, ids, due, slack, not_after, loop.create_future())
        watch.request = request
        if not ids:
            request.resolve()
            return request.future
        heapq.heappush(self._heap, (due, next(self._sequence), request))
        self._wakeup.set()
        return request.future

    # -- the loop

    async def _run(self) -> None:
        try:
            while not self.closed:
                self._wakeup.clear()
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    await self._wakeup.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    await _wait_event(self._wakeup, wait)
                    continue
                await self._round()
        finally:
            await self._shutdown()

    def _end_pending(self, error: Exception | None = None) -> None:
        """End the queued waits' requests: cancelled, or with ``error`` as their answer."""
        for _, _, request in self._heap:
            if request.done:
                continue
            if error is None:
                request.future.cancel()
            else:
                request.future.set_exception(error)
        self._heap.clear()

    def _take_due(self, mode: PollMode) -> list[_Request]:
        now = time.monotonic()
        batch: list[_Request] = []
        while self._heap:
            due, _, request = self._heap[0]
            if request.done:
                heapq.heappop(self._heap)
                continue
            slack = request.slack if mode == "list" else min(request.slack, DESCRIBE_ALIGN_SECONDS)
            if due > now + slack:
                break
            heapq.heappop(self._heap)
            request.watch.served_at = now
            batch.append(request)
        return batch

    def _choose_mode(self) -> PollMode:
        server_jobs = self.server_jobs
        if time.monotonic() - self._server_jobs_at > SERVER_JOBS_MAX_AGE_SECONDS:
            server_jobs = None
        mode = choose_poll_mode(
            watchers=len(self._watches),
            jobs=len(self._job_refs),
            server_jobs=server_jobs,
            zilliz=self.settings.is_zilliz,
            list_usable=self.list_usable,
            current=self.mode,
        )
        if mode != self.mode:
            log.info(
                "Milvus import poller of %s: %d waits on %d jobs; polling with %s (the server held %s jobs "
                "at the last list)",
                self.key,
                len(self._watches),
                len(self._job_refs),
                "one list per round" if mode == "list" else "one describe per job",
                "an unknown number of" if self.server_jobs is None else self.server_jobs,
            )
            self.mode = mode
        return mode

    async def _round(self) -> None:
        mode = self._choose_mode()
        batch = self._take_due(mode)
        if not batch:
            return
        self.stats["rounds"] += 1
        try:
            if mode == "list":
                await self._list_round(batch)
            else:
                self._describe(batch, {job_id for request in batch for job_id in request.job_ids})
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug must not leave waits hanging: each gets the error as its answer
            log.exception("Milvus import poller of %s failed a round", self.key)
            for request in batch:
                if not request.done and self._answer_all(request, error):
                    request.resolve()

    # -- list rounds

    async def _list_round(self, batch: list[_Request]) -> None:
        wanted: dict[str, list[_Request]] = {}
        for request in batch:
            for job_id in request.job_ids:
                wanted.setdefault(job_id, []).append(request)
        self.stats["list_rounds"] += 1
        try:
            with request_deadline(_earliest(request.not_after for request in batch)):
                found = await self._list(wanted)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stats["failed_lists"] += 1
            if not _list_unusable(error):
                log.warning(
                    "Milvus import poller of %s: list failed (retried up to %d times within the waits' "
                    "deadlines); %d waits on %d jobs each count one failed poll and poll again at their next "
                    "interval: %s: %s",
                    self.key,
                    self.max_retries,
                    len(batch),
                    len(wanted),
                    type(error).__name__,
                    error,
                )
            if _list_unusable(error):
                self.list_usable = False
                log.warning(
                    "Milvus import poller of %s: list is not usable here (%s); describing each job instead",
                    self.key,
                    error,
                )
                self._describe(batch, set(wanted))
                return
            await self._dispatch([request for request in batch if self._answer_all(request, error)])
            return
        # Jobs that ended (their event needs the per-file details) or that the list does not show are
        # described first, so those calls run while the other waits are being answered.
        to_describe: set[str] = set()
        ready: list[_Request] = []
        for position, request in enumerate(batch, start=1):
            complete = False
            for job_id in request.job_ids:
                summary = found.get(job_id)
                if summary is None or summary.state in request.watch.final_states:
                    to_describe.add(job_id)
                    continue
                complete = request.answer(job_id, progress_from_summary(summary, self._last_full.get(job_id)))
            if complete:
                ready.append(request)
            if position % CLASSIFY_CHUNK == 0:
                await asyncio.sleep(0)
        if to_describe:
            self._describe([request for request in batch if not request.done], to_describe)
        await self._dispatch(ready)

    async def _list(self, wanted: Mapping[str, object]) -> dict[str, ImportJobSummary]:
        """The list records of the ``wanted`` jobs; also learns how many jobs the server holds."""
        hook = self._get_hook()
        pager = protocol.ListPager(self.settings, db_name=self.db_name)
        found: dict[str, ImportJobSummary] = {}
        seen = 0

        async def next_page() -> bool:
            self.stats["list_requests"] += 1
            return await hook.afeed_list_page(pager)

        not_after = request_not_after()
        while not pager.done:
            await retry_transient(
                next_page, retries=self.max_retries, not_after=not_after, on_retry=self._retrying
            )
            jobs = pager.jobs
            for job in jobs[seen:]:
                if job.job_id in wanted:
                    found[job.job_id] = job
            seen = len(jobs)
            if len(found) == len(wanted):
                break
            if pager.total is not None:
                # Stop paging once describing the jobs still missing is cheaper than the remaining pages.
                rest = list_cost(max(0, pager.total - seen), zilliz=True)
                if rest.total > describe_cost(len(wanted) - len(found)).total:
                    break
        self.server_jobs = max(pager.total or 0, seen)  # count may be per page (the Zilliz docs say so)
        self._server_jobs_at = time.monotonic()
        return found

    def _answer_all(self, request: _Request, error: Exception) -> bool:
        complete = False
        for job_id in request.job_ids:
            complete = request.answer(job_id, error)
        return complete

    async def _dispatch(self, ready: Sequence[_Request]) -> None:
        """Answer waits, a chunk per event-loop turn (each answered trigger then does its own work)."""
        for position, request in enumerate(ready, start=1):
            request.resolve()
            self.stats["answers"] += 1
            if position % DISPATCH_CHUNK == 0 and position < len(ready):
                await asyncio.sleep(0)

    # -- describe

    def _describe(self, batch: Sequence[_Request], job_ids: Collection[str]) -> None:
        """One ``describe`` per job (in background tasks); each answers the waits of ``batch`` for it."""
        waiting: dict[str, list[_Request]] = {}
        for request in batch:
            for job_id in request.job_ids:
                if job_id in job_ids:
                    waiting.setdefault(job_id, []).append(request)
        for job_id, requests in waiting.items():
            task = asyncio.get_running_loop().create_task(self._describe_one(job_id, requests))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _describe_one(self, job_id: str, requests: list[_Request]) -> None:
        async with self._describe_limit:
            if all(request.done for request in requests):
                return  # every wait that wanted it is gone
            answer: ProgressAnswer
            try:
                not_after = _earliest(request.not_after for request in requests)
                hook = self._get_hook()

                async def describe() -> ImportJobProgress:
                    self.stats["describes"] += 1
                    return await hook.aget_import_progress(job_id, db_name=self.db_name)

                with request_deadline(not_after):
                    answer = await retry_transient(
                        describe, retries=self.max_retries, not_after=not_after, on_retry=self._retrying
                    )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.stats["failed_describes"] += 1
                answer = error
        if isinstance(answer, ImportJobProgress) and job_id in self._job_refs:
            self._last_full[job_id] = answer
        for request in requests:
            if not request.done and request.answer(job_id, answer):
                request.resolve()
                self.stats["answers"] += 1

    # -- lifecycle

    def _retrying(self, attempt: int, delay: float, error: BaseException) -> None:
        self.stats["retries"] += 1
        log.info(
            "Milvus import poller of %s: a poll failed (%s: %s); retry %d of %d in %.1f s",
            self.key,
            type(error).__name__,
            error,
            attempt,
            self.max_retries,
            delay,
        )

    def _get_hook(self) -> MilvusImportHook:
        if self._hook is None:
            from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

            # Single attempts: the poller retries each poll itself (retry_transient), within the deadline
            # of the waits it serves, which the hook's own retries would not know.
            hook = MilvusImportHook(self.conn_id, max_retries=0)
            hook.use_settings(dataclasses.replace(self.settings, max_retries=0))
            self._hook = hook
        return self._hook

    def stop(self) -> asyncio.Task[None] | None:
        """Stop polling (cancel the loop, which then closes the HTTP client); returns the loop's task."""
        self.closed = True
        for background in list(self._background):
            background.cancel()
        self._end_pending()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        return task

    async def _shutdown(self) -> None:
        self.closed = True
        # Only a loop that died of a bug still has waits queued (stop() cancels them first).
        self._end_pending(RuntimeError(f"the Milvus import poller of {self.key} stopped"))
        background = list(self._background)
        for task in background:
            task.cancel()
        if background:
            await asyncio.gather(*background, return_exceptions=True)
        hook, self._hook = self._hook, None
        if hook is not None:
            await hook.aclose()


# ---------------------------------------------------------------------------------------------------------
# Registry: one poller per event loop and key
# ---------------------------------------------------------------------------------------------------------


class _Registry:
    def __init__(self) -> None:
        self.pollers: dict[PollerKey, SharedPoller] = {}
        self.settings: dict[str, tuple[float, ConnectionSettings]] = {}
        self.loading: dict[str, asyncio.Task[ConnectionSettings]] = {}


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = weakref.WeakKeyDictionary()


def _registry() -> _Registry:
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = _Registry()
    return registry


def active_pollers() -> list[SharedPoller]:
    """The pollers of the running event loop (for tests and benchmarks)."""
    return list(_registry().pollers.values())


async def _load_settings(conn_id: str) -> ConnectionSettings:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    hook = MilvusImportHook(conn_id)  # the connection's max_retries: the poller's retries per poll
    return await hook.aget_settings()


def _consume_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def resolve_settings(conn_id: str) -> ConnectionSettings:
    """
    A connection's settings, read once for all the triggers of an event loop that start together
    (a triggerer starting a thousand triggers reads the connection once, not a thousand times).
    """
    registry = _registry()
    cached = registry.settings.get(conn_id)
    if cached is not None and time.monotonic() - cached[0] < SETTINGS_TTL_SECONDS:
        return cached[1]
    task = registry.loading.get(conn_id)
    if task is None:
        task = asyncio.get_running_loop().create_task(_load_settings(conn_id))
        task.add_done_callback(_consume_exception)
        registry.loading[conn_id] = task

        def settled(done: asyncio.Task[ConnectionSettings]) -> None:
            if registry.loading.get(conn_id) is done:
                del registry.loading[conn_id]
            if not done.cancelled() and done.exception() is None:
                registry.settings[conn_id] = (time.monotonic(), done.result())

        task.add_done_callback(settled)
    return await asyncio.shield(task)


def _attach(
    settings: ConnectionSettings, conn_id: str, db_name: str | None, final_states: frozenset[ImportJobState]
) -> tuple[SharedPoller, _Watch]:
    registry = _registry()
    key = PollerKey.of(settings, db_name)
    poller = registry.pollers.get(key)
    if poller is None or poller.closed:
        poller = registry.pollers[key] = SharedPoller(key, settings, conn_id)
    return poller, poller.add_watch(final_states)


def _detach(poller: SharedPoller, watch: _Watch) -> asyncio.Task[None] | None:
    poller.remove_watch(watch)
    if poller.watchers:
        return None
    registry = _registries.get(asyncio.get_running_loop())
    if registry is not None and registry.pollers.get(poller.key) is poller:
        del registry.pollers[poller.key]
    return poller.stop()


class SharedProgressSource:
    """
    Where a trigger gets job progress from: the shared poller of its endpoint (see the module docstring).

    :param conn_id: the Airflow connection.
    :param db_name: the database (None: the connection's).
    :param accept_uncommitted: whether ``Uncommitted`` ends the wait (then its full progress is fetched).
    :param end_time: the wait's deadline in epoch seconds: a poll due then is sent even while the
        endpoint's rate budget is paused.
    """

    def __init__(
        self,
        conn_id: str,
        db_name: str | None = None,
        *,
        accept_uncommitted: bool = False,
        end_time: float | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.db_name = db_name
        self.end_time = end_time
        states = {ImportJobState.COMPLETED, ImportJobState.FAILED}
        if accept_uncommitted:
            states.add(ImportJobState.UNCOMMITTED)
        self._final_states = frozenset(states)
        self._poller: SharedPoller | None = None
        self._watch: _Watch | None = None
        self._closed = False

    @property
    def poller(self) -> SharedPoller | None:
        return self._poller

    def _not_after(self) -> float | None:
        if self.end_time is None:
            return None
        return time.monotonic() + (self.end_time - time.time())

    async def fetch(
        self,
        job_ids: Sequence[str],
        *,
        delay: float = 0.0,
        exact: bool = False,
        retry_until: float | None = None,
    ) -> dict[str, ProgressAnswer]:
        """
        The progress of each job (or the exception its poll ended with), polled in ``delay`` seconds.

        :param exact: the delay is a server's ``Retry-After``: not a moment earlier.
        :param retry_until: a monotonic time past which the poll is not retried (the wait's error
            tolerance runs out then); the wait's deadline bounds the retries anyway.
        """
        if self._closed:
            raise RuntimeError("this progress source is closed")
        if self._poller is None or self._watch is None or self._poller.closed:
            if delay > 0:
                await asyncio.sleep(delay)
                delay = 0.0
            try:
                settings = await resolve_settings(self.conn_id)
            except Exception as error:
                return dict.fromkeys(job_ids, error)
            self._poller, self._watch = _attach(settings, self.conn_id, self.db_name, self._final_states)
        future = self._poller.request(
            self._watch,
            job_ids,
            delay=delay,
            exact=exact,
            not_after=_earliest((self._not_after(), retry_until)),
        )
        answers = await future
        return {job_id: answers[job_id] for job_id in job_ids}

    async def aclose(self) -> None:
        """Leave the poller; the last wait to leave stops it and closes its HTTP client."""
        self._closed = True
        poller, watch = self._poller, self._watch
        self._poller = self._watch = None
        if poller is None or watch is None:
            return
        task = _detach(poller, watch)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
