"""
The chaos harness: many real waits on real import jobs, against the local import server with faults on.

``ChaosRun`` plans jobs with chosen outcomes (``local.duration``, ``local.fail``, a collection the server
stalls forever), creates them on the faulty server, then waits for all of them at once, either through the
real ``MilvusImportJobTrigger.run()`` loop (one asyncio loop, as in a triggerer) or through
``MilvusImportJobSensor`` in poke mode (one thread per sensor, as on workers). It records every wait's
outcome and timing, and the server's own counters of requests and injected faults, and renders them as a
report. ``tests/integration/test_secrets.py`` reuses it for a small run with a token.

Outcomes are checked against the plan: a job planned to complete must end in ``success``, one planned to
fail in ``failed`` with its reason, and one that never ends (stalled, or outliving its deadline) in
``timeout`` at its deadline: never a false success, never a wait past its deadline plus a small grace.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import prepare_rows

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

#: the seed of the server's fault injection and of the plan (outcomes, durations)
CHAOS_SEED = 20251122
JOBS = 200
POLL_INTERVAL = 0.5
FAIL_RATE = 0.3  # 5xx answers: JSON 500 / 503 and HTML 502 / 504 pages
DROP_RATE = 0.05  # connections closed without an answer
LATENCY_MS = 2000  # a latency spike...
LATENCY_RATE = 0.03  # ...on this share of the requests that get through
#: requests per second the server takes (a token bucket with bursts of one second's worth) before it answers
#: 429 with Retry-After. The trigger path polls through a shared poller (a few requests a second, bursts of
#: describes when many jobs end together), the poke path with one describe per sensor and poke (200 sensors
#: starting together): each gets a limit its bursts go past.
TRIGGER_RATE_LIMIT = 20.0
POKE_RATE_LIMIT = 150.0
COLLECTION = "chaos_jobs"
STALLED_COLLECTION = "chaos_stalled"
ROWS_FILE = "chaos_rows.json"
ROWS_PER_JOB = 5
#: waits for jobs that end are given this long; it is never reached when things work
LONG_DEADLINE = 90.0
#: the stalled job's wait (and the late jobs') must time out at this deadline
SHORT_DEADLINE = 10.0
#: how far past its deadline a wait may end: the trigger's grace for a poll under way (2 s) plus event-loop
#: lag on two busy cores
TRIGGER_GRACE = 4.0


@dataclass(frozen=True)
class PlannedJob:
    """
    One job and the outcome its wait must have.

    :param expected: ``success``, ``failed`` or ``timeout``.
    :param deadline: seconds from the start of the waits to the wait's deadline.
    """

    index: int
    collection: str
    duration: float
    expected: str
    deadline: float
    fail: str | None = None

    @property
    def kind(self) -> str:
        if self.collection == STALLED_COLLECTION:
            return "stalled"
        if self.expected == "timeout":
            return "late"
        return self.expected


def plan_jobs(
    count: int,
    seed: int,
    *,
    failed_share: float = 0.15,
    late: int = 2,
    durations: tuple[float, float] = (2.0, 8.0),
    short_deadline: float = SHORT_DEADLINE,
    long_deadline: float = LONG_DEADLINE,
) -> list[PlannedJob]:
    """
    ``count`` jobs: one stalled forever and ``late`` ones outliving their (short) deadline, which must time
    out; about ``failed_share`` failing with a reason; the rest completing after ``durations`` seconds.
    """
    rng = random.Random(seed)
    jobs = [PlannedJob(0, STALLED_COLLECTION, 0.0, "timeout", short_deadline)]
    for index in range(1, 1 + late):
        jobs.append(PlannedJob(index, COLLECTION, 60.0, "timeout", short_deadline))
    failing = round((count - len(jobs)) * failed_share)
    for index in range(len(jobs), count):
        duration = round(rng.uniform(*durations), 2)
        if failing > 0 and rng.random() < failed_share * 1.5:
            failing -= 1
            reason = f"chaos: file {index} is not readable (injected failure {rng.randrange(10**6):06d})"
            jobs.append(PlannedJob(index, COLLECTION, duration, "failed", long_deadline, fail=reason))
        else:
            jobs.append(PlannedJob(index, COLLECTION, duration, "success", long_deadline))
    return jobs


@dataclass
class WaitOutcome:
    """What one wait gave: the status, the message, what the last progress said, and when it ran."""

    job: PlannedJob
    job_id: str
    status: str
    message: str
    started: float
    ended: float
    end_time: float
    state: str | None = None
    imported_rows: int | None = None
    error: BaseException | None = None

    @property
    def overrun(self) -> float:
        """Seconds past the deadline (negative: before it)."""
        return self.ended - self.end_time

    @property
    def elapsed(self) -> float:
        return self.ended - self.started


@dataclass
class ChaosRun:
    """
    A chaos run on one server: create the planned jobs, wait for them all, report.

    :param server: a started ``LocalImportServer`` (faults on or off).
    :param conn_id: the Airflow connection to it (defined by the caller).
    """

    server: Any
    conn_id: str
    plan: list[PlannedJob]
    poll_interval: float = POLL_INTERVAL
    server_rate_limit: float | None = None
    job_ids: dict[int, str] = field(default_factory=dict)
    create_retries: int = 0
    create_errors: Counter[str] = field(default_factory=Counter)
    create_seconds: float = 0.0
    outcomes: list[WaitOutcome] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    wait_seconds: float = 0.0

    # -- jobs --

    def create_jobs(self, threads: int = 8) -> None:
        """
        Create every planned job; the start of each job's ``local.duration`` is shifted so that all of them
        run their planned time counted from about the moment the waits start.

        The server injects its faults in front of its handlers, so a create answered by a fault (a 5xx, a
        dropped connection, a 429 after the hook's own retries) made no job: it is sent again here, and
        counted. The server's job counter checks that no job was made twice.
        """
        from airflow_milvus_import.exceptions import (
            MilvusImportConnectionError,
            MilvusImportRateLimitError,
            MilvusImportServerError,
        )
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

        before = self.server.stats["jobs"]["total"]
        started = time.monotonic()
        # Creates (and the resends of those a fault answered) go at the server's rate limit, or at about 50
        # a second where the server itself is slower: aim every job's planned duration at the end of that.
        rate = min(self.server_rate_limit or math.inf, 50.0)
        target = time.time() + 1.0 + 1.6 * len(self.plan) / rate
        lock = threading.Lock()
        local = threading.local()

        def create(job: PlannedJob) -> None:
            hook = getattr(local, "hook", None)
            if hook is None:
                hook = local.hook = MilvusImportHook(self.conn_id, retry_min_wait=0.05, retry_max_wait=0.5)
            while True:
                options = {"local.duration": f"{max(0.0, target - time.time()) + job.duration:.2f}"}
                if job.fail is not None:
                    options["local.fail"] = job.fail
                try:
                    job_id = hook.create_import_job(job.collection, [[ROWS_FILE]], options=options)
                except (
                    MilvusImportServerError,
                    MilvusImportConnectionError,
                    MilvusImportRateLimitError,
                ) as e:
                    with lock:
                        self.create_retries += 1
                        self.create_errors[type(e).__name__] += 1
                    continue
                with lock:
                    self.job_ids[job.index] = job_id
                return

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chaos-create") as pool:
            list(pool.map(create, self.plan))
        self.create_seconds = time.monotonic() - started
        created = self.server.stats["jobs"]["total"] - before
        assert created == len(self.plan), (
            f"{created} jobs made for {len(self.plan)} creates: a create ran twice"
        )
        assert len(set(self.job_ids.values())) == len(self.plan)

    # -- waits: the trigger path --

    def trigger_for(self, job: PlannedJob, start: float, **settings: Any) -> Any:
        from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger

        return MilvusImportJobTrigger(
            self.job_ids[job.index],
            milvus_import_conn_id=self.conn_id,
            poll_interval=self.poll_interval,
            end_time=start + job.deadline,
            **settings,
        )

    async def wait_with_triggers(self, **settings: Any) -> list[Any]:
        """
        Every planned job's wait through the real trigger loop, all at once in this event loop.

        :param settings: trigger arguments beyond the job, interval and deadline (none: the defaults).
        """
        self.server.reset_stats()
        start = time.time()
        triggers = [self.trigger_for(job, start, **settings) for job in self.plan]

        async def wait(job: PlannedJob, trigger: Any) -> WaitOutcome:
            begun = time.time()
            events = [event async for event in trigger.run()]
            ended = time.time()
            assert len(events) == 1, f"job {job.index}: {len(events)} events"
            payload = events[0].payload
            last = payload["jobs"][0] if payload["jobs"] else {}
            return WaitOutcome(
                job=job,
                job_id=self.job_ids[job.index],
                status=payload["status"],
                message=payload["message"],
                started=begun,
                ended=ended,
                end_time=trigger.end_time,
                state=last.get("state"),
                imported_rows=last.get("imported_rows"),
            )

        limit = max(job.deadline for job in self.plan) + 60
        self.outcomes = await asyncio.wait_for(
            asyncio.gather(*(wait(job, trigger) for job, trigger in zip(self.plan, triggers, strict=True))),
            timeout=limit,
        )
        self.wait_seconds = time.time() - start
        self.stats = self.server.stats
        return triggers

    # -- waits: the sync path (sensors in poke mode) --

    def wait_with_sensors(self, **settings: Any) -> None:
        """
        Every planned job's wait through ``MilvusImportJobSensor`` in poke mode, one thread each.

        :param settings: sensor arguments beyond the job, interval and timeout (none: the defaults).
        """
        from airflow.sdk.exceptions import AirflowSensorTimeout

        from airflow_milvus_import.exceptions import MilvusImportError, MilvusImportJobFailed
        from airflow_milvus_import.sensors.milvus_import import MilvusImportJobSensor

        self.server.reset_stats()
        start = time.time()

        def wait(job: PlannedJob) -> WaitOutcome:
            sensor = MilvusImportJobSensor(
                task_id=f"chaos_wait_{job.index}",
                job_id=self.job_ids[job.index],
                milvus_import_conn_id=self.conn_id,
                deferrable=False,
                mode="poke",
                poll_interval=self.poll_interval,
                timeout=job.deadline,
                **settings,
            )
            begun = time.time()
            status, message, state, rows, error = "success", "", None, None, None
            try:
                value = sensor.execute({})
                state, rows = value["state"], value["imported_rows"]
            except MilvusImportJobFailed as failure:
                status, message, error = "failed", str(failure), failure
            except AirflowSensorTimeout as timeout:
                status, message, error = "timeout", str(timeout), timeout
            except MilvusImportError as failure:
                status, message, error = "error", str(failure), failure
            return WaitOutcome(
                job=job,
                job_id=self.job_ids[job.index],
                status=status,
                message=message,
                started=begun,
                ended=time.time(),
                end_time=start + job.deadline,
                state=state,
                imported_rows=rows,
                error=error,
            )

        with ThreadPoolExecutor(max_workers=len(self.plan), thread_name_prefix="chaos-poke") as pool:
            self.outcomes = list(pool.map(wait, self.plan))
        self.wait_seconds = time.time() - start
        self.stats = self.server.stats

    # -- what happened --

    @property
    def import_requests(self) -> int:
        """Requests to the import routes during the waits (the private counters route is not counted)."""
        return sum(count for route, count in self.stats["requests"].items() if "/jobs/import/" in route)

    def request_bound(self, attempts_per_poll: int) -> float:
        """At most ``attempts_per_poll`` requests per job per poll interval of its wait, plus one poll."""
        return attempts_per_poll * sum(outcome.elapsed / self.poll_interval + 1 for outcome in self.outcomes)

    def peak_concurrency(self) -> int:
        """The most waits that were running at the same moment."""
        moments = sorted(
            [(outcome.started, 1) for outcome in self.outcomes]
            + [(outcome.ended, -1) for outcome in self.outcomes]
        )
        running = peak = 0
        for _, step in moments:
            running += step
            peak = max(peak, running)
        return peak

    def wrong_outcomes(self) -> list[str]:
        """Every wait whose outcome is not the planned one (or lacks what the outcome must carry)."""
        wrong = []
        for outcome in self.outcomes:
            job = outcome.job
            problem = None
            if outcome.status != job.expected:
                problem = f"{outcome.status}, planned {job.expected}"
            elif job.expected == "success" and (outcome.state, outcome.imported_rows) != (
                "Completed",
                ROWS_PER_JOB,
            ):
                problem = f"success with state {outcome.state} and {outcome.imported_rows} rows"
            elif job.expected == "failed" and job.fail not in outcome.message:
                problem = "failed without the job's reason"
            elif job.expected != "timeout" and outcome.overrun > 0:
                problem = "ended after its deadline"
            if problem:
                wrong.append(
                    f"job #{job.index} {outcome.job_id} ({job.kind}): {problem}: {outcome.message[:300]}"
                )
        return wrong

    def report(self, title: str, attempts_per_poll: int, tolerance: str = "defaults") -> str:
        faults = self.stats.get("faults", {})
        total = self.import_requests
        injected = sum(faults.get(kind, 0) for kind in ("fail", "drop", "rate_limited", "timeout"))
        share = injected / total if total else 0.0
        polls = sum(outcome.elapsed / self.poll_interval + 1 for outcome in self.outcomes)
        # a poll fails when all its attempts fail: how many failed polls the run should see
        failed_polls = polls * share**attempts_per_poll
        outcomes = Counter((outcome.job.kind, outcome.status) for outcome in self.outcomes)
        by_route = {
            route.rsplit("/", 1)[-1]: count for route, count in sorted(self.stats["requests"].items())
        }
        overruns = [outcome.overrun for outcome in self.outcomes if outcome.job.expected == "timeout"]
        lines = [
            f"== chaos run: {title} ==",
            f"jobs {len(self.plan)} (fault seed {CHAOS_SEED}), "
            f"peak concurrent waits {self.peak_concurrency()}, poll interval {self.poll_interval:g} s, "
            f"tolerance: {tolerance}",
            f"created in {self.create_seconds:.1f} s ({self.create_retries} creates answered by an injected "
            f"fault and sent again: {dict(self.create_errors)})",
            f"waited {self.wait_seconds:.1f} s; requests to import routes {total} "
            f"(bound {self.request_bound(attempts_per_poll):.0f}: "
            f"{attempts_per_poll} per job per poll interval); by route {by_route}",
            f"faults injected {injected} ({share:.0%} of requests): "
            + ", ".join(
                f"{kind} {faults.get(kind, 0)}"
                for kind in ("fail", "drop", "rate_limited", "delayed", "timeout")
            ),
            f"requests per wait {total / max(1, len(self.outcomes)):.1f}; polls that should fail every "
            f"attempt at that fault share: {failed_polls:.2g} of {polls:.0f}",
            "outcomes (kind -> status): "
            + ", ".join(f"{kind}->{status} {count}" for (kind, status), count in sorted(outcomes.items())),
            "deadline overrun of the timed-out waits (s): "
            + (f"min {min(overruns):.2f}, max {max(overruns):.2f}" if overruns else "none"),
            "longest wait of a job that ended: "
            + f"{max((o.elapsed for o in self.outcomes if o.job.expected != 'timeout'), default=0):.1f} s",
        ]
        return "\n".join(lines)


# ---- servers and set-up -------------------------------------------------------------------------------


def start_chaos_server(
    root: Path, *, rate_limit: float, token: str | None = None, seed: int = CHAOS_SEED
) -> Any:
    """The local import server with every fault on; the stalled collection's jobs never end."""
    from airflow_milvus_import.local import LocalImportServer

    server = LocalImportServer(
        data_dir=root / "data",
        bucket=root / "bucket",
        token=token,
        fail_rate=FAIL_RATE,
        drop_rate=DROP_RATE,
        latency_ms=LATENCY_MS,
        latency_rate=LATENCY_RATE,
        rate_limit=rate_limit,
        stall=STALLED_COLLECTION,
        seed=seed,
        import_workers=2,
        startup_timeout=180.0,
    )
    server.start()
    prepare_rows(server, (COLLECTION, STALLED_COLLECTION), ROWS_FILE, ROWS_PER_JOB)
    return server


def define_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, url: str, **extra: Any) -> None:
    value: dict[str, Any] = {"conn_type": "milvus_import", "host": url}
    password = extra.pop("password", None)
    if password is not None:
        value["password"] = password
    if extra:
        value["extra"] = extra
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


def consecutive_errors_for(fault_share: float, polls: float, *, attempts_per_poll: int = 1) -> int:
    """
    The smallest tolerance of failed polls in a row that makes a false ``error`` ending (a job whose polls
    all fail that many times in a row although the job is fine) less likely than 1 in 10,000 runs.
    """
    per_poll = fault_share**attempts_per_poll
    tolerance = 1
    while polls * per_poll**tolerance > 1e-4:
        tolerance += 1
    return tolerance


@pytest.fixture
def chaos_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Starts chaos servers (``start_chaos_server`` arguments); stops them after the test."""
    servers: list[Any] = []

    def start(**kwargs: Any) -> Any:
        server = start_chaos_server(tmp_path_factory.mktemp("chaos-server"), **kwargs)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


__all__ = [
    "CHAOS_SEED",
    "JOBS",
    "POKE_RATE_LIMIT",
    "POLL_INTERVAL",
    "TRIGGER_GRACE",
    "TRIGGER_RATE_LIMIT",
    "ChaosRun",
    "WaitOutcome",
    "consecutive_errors_for",
    "define_connection",
    "plan_jobs",
    "start_chaos_server",
]
