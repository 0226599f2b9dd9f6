"""N concurrent import waits in one asyncio loop (as in a triggerer): shared polling against per-wait polling.

Starts the local import server (127.0.0.1), creates N real import jobs per side that end at random times
between 10 s and 60 s after their creation (``local.duration``; about 2% end Failed through ``local.fail``),
and waits for all of them in one event loop, twice:

* ours: N real ``MilvusImportJobTrigger`` instances, each driven through its ``run()`` as the triggerer
  does (they share one poller: one ``list`` per round, a ``describe`` per job when it ends);
* baseline: N trigger-like loops that each poll their own job with a ``describe`` per interval through
  their own HTTP client, as the dbt Cloud and Databricks triggers do: by default a lean kept-alive
  connection per wait, cheap enough that one loop sends about what the interval calls for
  (``--baseline-client hook``: through this package's hook and httpx, as its trigger did before issue 6,
  which saturates the loop at about 450 requests/s on a 2-core VM). Like dbt Cloud's trigger it logs
  nothing per poll (``--baseline-logs`` makes it log a line per poll, like Databricks'); ours logs a line
  per poll (to a file, as a triggerer writes task logs), which costs it loop time the baseline saves.

It reports the requests the server counted (and how many the baseline's interval called for), event-loop
lag (a 10 ms ticker), completion-detection delay (event time minus the moment the job really ended, from
the server's own records), memory per wait (tracemalloc, in a separate phase on jobs that do not end), the
CPU the loop and the server used, and whether every outcome was right. The last line holds the ratios.

    python benchmarks/triggerer_scale.py [--waits 1000] [--interval 1] [--min-duration 10] [--max-duration 60]
        [--baseline-client lean|hook] [--skip-memory] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import random
import ssl
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import h11  # httpx's own HTTP/1.1 engine, installed with it
from _common import (
    LagTicker,
    completion_times,
    create_jobs,
    local_server,
    machine,
    percentile,
    process_tree_cpu,
    quiet_airflow_logs,
    scratch_dir,
    stop_cleanly_on_sigterm,
    table,
    use_connection,
)

from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

CONN_ID = "milvus_bench"
FAIL_REASON = "injected by the benchmark: file 0 has a bad row"

try:
    from airflow.triggers.base import BaseTrigger, TriggerEvent
except ImportError:  # pragma: no cover
    raise SystemExit("needs apache-airflow") from None


class BaselinePollError(Exception):
    """A failed poll of the baseline; ``transient``: worth polling again (connection lost, 5xx, 429...)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class LeanDescribeClient:
    """
    One wait's HTTP client in the lean baseline: one kept-alive HTTP/1.1 connection (``h11``, the protocol
    engine under httpx, over asyncio streams), one ``describe`` per call, the answer parsed into the same
    :class:`ImportJobProgress` ours produces. It has none of httpx's, httpcore's and anyio's per-request
    layers, which on this 2-core VM cost about 2 ms of CPU per request: with them, a thousand waits polling
    every second need two cores in one event loop and the baseline cannot send what its interval calls
    for (``--baseline-client hook`` measures exactly that). Lean, it sends about all of it.

    :param request: the ``describe`` request of the job (URL, headers and body from the connection).
    :param timeout: seconds for one exchange.
    """

    def __init__(self, request: Any, timeout: float) -> None:
        import urllib.parse

        url = urllib.parse.urlsplit(request.url)
        self._https = url.scheme == "https"
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (443 if self._https else 80)
        self._target = url.path or "/"
        self._content = json.dumps(dict(request.body), separators=(",", ":")).encode()
        self._headers = [
            ("Host", url.netloc),
            *((name, value) for name, value in request.headers.items() if name.lower() != "host"),
            ("Content-Length", str(len(self._content))),
        ]
        self._timeout = timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._connection: Any = None
        self._reused = False

    async def describe(self) -> dict[str, Any]:
        """The answer's ``data``; raises :class:`BaselinePollError`."""
        try:
            try:
                status, payload = await asyncio.wait_for(self._exchange(), self._timeout)
            except (ConnectionError, h11.RemoteProtocolError):
                if self._reused:  # a kept-alive connection the server had closed: once more, on a new one
                    await self.aclose()
                    status, payload = await asyncio.wait_for(self._exchange(), self._timeout)
                else:
                    raise
        except (OSError, asyncio.TimeoutError, h11.ProtocolError, ValueError) as error:
            await self.aclose()
            raise BaselinePollError(
                f"describe failed: {type(error).__name__}: {error}", transient=True
            ) from None
        code = payload.get("code") if isinstance(payload, dict) else None
        if status != 200 or code not in (0, 200):
            transient = status >= 500 or status in (408, 429)
            raise BaselinePollError(f"describe answered HTTP {status}: {payload}", transient=transient)
        data: dict[str, Any] = payload.get("data") or {}
        return data

    async def _exchange(self) -> tuple[int, Any]:
        streams = self._streams
        self._reused = streams is not None and self._connection.our_state is h11.IDLE
        if streams is None or not self._reused:
            await self.aclose()
            streams = await asyncio.open_connection(
                self._host, self._port, ssl=ssl.create_default_context() if self._https else None
            )
            self._streams = streams
            self._connection = h11.Connection(h11.CLIENT)
        reader, writer = streams
        connection = self._connection
        request = h11.Request(method="POST", target=self._target, headers=self._headers)
        writer.write(connection.send(request) + connection.send(h11.Data(data=self._content)))
        writer.write(connection.send(h11.EndOfMessage()))
        status, chunks = 0, []
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                connection.receive_data(data)
                if not data and connection.their_state is not h11.DONE:
                    raise ConnectionResetError("the server closed the connection")
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()
        else:
            await self.aclose()
        return status, json.loads(b"".join(chunks))

    async def aclose(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            streams[1].close()
            with contextlib.suppress(OSError):
                await streams[1].wait_closed()


class PerWaitPollingTrigger(BaseTrigger):
    """
    The baseline: how the dbt Cloud / Databricks triggers wait. Each wait reads the connection once, has its
    own HTTP client and sends one ``describe`` per interval, with the same error tolerance as ours
    (5 failed polls in a row, or one permanent error, end the wait).

    ``client = "lean"`` (the default): :class:`LeanDescribeClient`, a kept-alive connection per wait, like
    Databricks' one aiohttp session per trigger. ``client = "hook"``: each wait has its own
    :class:`MilvusImportHook` and polls through its async path (httpx), which is what this package's trigger
    did before it shared a poller.
    """

    log_polls = False
    client = "lean"

    def __init__(self, job_id: str, conn_id: str, poll_interval: float, end_time: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.job_id, self.conn_id, self.poll_interval, self.end_time = (
            job_id,
            conn_id,
            poll_interval,
            end_time,
        )
        self.polls = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.PerWaitPollingTrigger", {"job_id": self.job_id, "conn_id": self.conn_id})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_milvus_import import protocol
        from airflow_milvus_import.hooks.milvus_import import MilvusImportHook
        from airflow_milvus_import.models import ImportJobProgress

        hook = MilvusImportHook(self.conn_id, max_retries=0)
        lean: LeanDescribeClient | None = None
        try:
            if self.client == "lean":
                settings = await hook.aget_settings()  # the connection, read once per wait
                lean = LeanDescribeClient(
                    protocol.build_progress_request(settings, self.job_id), settings.timeout
                )

                async def describe() -> ImportJobProgress:
                    assert lean is not None
                    return ImportJobProgress.from_wire(await lean.describe(), job_id=self.job_id)

            else:

                async def describe() -> ImportJobProgress:
                    return await hook.aget_import_progress(self.job_id)

            async for event in self._poll(describe):
                yield event
                return
        finally:
            if lean is not None:
                await lean.aclose()
            await hook.aclose()

    async def _poll(self, describe: Callable[[], Awaitable[Any]]) -> AsyncIterator[TriggerEvent]:
        from airflow_milvus_import.exceptions import MilvusImportError

        errors = 0
        while True:
            try:
                progress = await describe()
            except (MilvusImportError, BaselinePollError) as error:
                errors += 1
                if not error.transient or errors >= 5:
                    yield TriggerEvent({"status": "error", "message": str(error), "jobs": []})  # type: ignore[no-untyped-call]
                    return
            else:
                errors = 0
                self.polls += 1
                if self.log_polls:
                    self.log.info("job %s: %s %d%%", self.job_id, progress.state.value, progress.progress)
                if progress.state.is_terminal:
                    status = "success" if progress.state.is_success else "failed"
                    event = {"status": status, "message": "", "jobs": [progress.to_dict()]}
                    yield TriggerEvent(event)  # type: ignore[no-untyped-call]
                    return
            if time.time() >= self.end_time:
                yield TriggerEvent({"status": "timeout", "message": "", "jobs": []})  # type: ignore[no-untyped-call]
                return
            await asyncio.sleep(self.poll_interval)


@dataclass
class SideResult:
    name: str
    waits: int
    seconds: float = 0.0
    requests: int = 0
    requests_by_route: dict[str, int] = field(default_factory=dict)
    lag: list[float] = field(default_factory=list)
    lag_times: list[float] = field(default_factory=list)
    detection: list[float] = field(default_factory=list)
    right: int = 0
    wrong: list[str] = field(default_factory=list)
    memory_per_wait: float = float("nan")
    #: describes a poll per wait per interval needs for these jobs (if the loop and server kept up)
    nominal: int = 0
    #: CPU seconds of this process (the event loop and everything in it) while the waits ran
    client_cpu: float = 0.0
    #: CPU seconds of the local server and its Milvus Lite while the waits ran
    server_cpu: float = 0.0


def make_specs(count: int, rng: random.Random, low: float, high: float, fail_every: int) -> list[Any]:
    return [
        (rng.uniform(low, high), FAIL_REASON if fail_every and i % fail_every == fail_every - 1 else None)
        for i in range(count)
    ]


def ours(job_id: str, interval: float, end_time: float) -> BaseTrigger:
    return MilvusImportJobTrigger(
        job_id, milvus_import_conn_id=CONN_ID, poll_interval=interval, end_time=end_time
    )


def baseline(job_id: str, interval: float, end_time: float) -> BaseTrigger:
    return PerWaitPollingTrigger(job_id, CONN_ID, interval, end_time)


def outcome_problem(expect_fail: bool, event: dict[str, Any]) -> str | None:
    """None when the event is the right outcome (with full details), else what is wrong."""
    status = event.get("status")
    jobs = event.get("jobs") or []
    if expect_fail:
        if status != "failed":
            return f"expected failed, got {status}: {event.get('message')}"
        if (
            not jobs
            or not jobs[0].get("details")
            or FAIL_REASON not in str(jobs[0]["details"][0].get("reason"))
        ):
            return "failed without the file's reason"
        return None
    if status != "success":
        return f"expected success, got {status}: {event.get('message')}"
    if not jobs or jobs[0].get("state") != "Completed" or jobs[0].get("imported_rows") != 1:
        return f"success without full progress: {jobs[:1]}"
    if len(jobs[0].get("details") or []) != 1:
        return "success without per-file details"
    return None


async def run_side(
    name: str,
    factory: Callable[[str, float, float], BaseTrigger],
    server: Any,
    specs: list[Any],
    interval: float,
) -> SideResult:
    result = SideResult(name, len(specs))
    print(f"[{name}] creating {len(specs)} jobs ...", flush=True)
    created = await create_jobs(server.url, specs)
    server.reset_stats()
    ticker = LagTicker()
    ticker.start()
    events: dict[str, tuple[float, dict[str, Any]]] = {}

    async def drive(trigger: BaseTrigger, job_id: str) -> None:
        async for event in trigger.run():
            events[job_id] = (time.time(), event.payload)

    end_time = time.time() + 600
    server_cpu = process_tree_cpu(server.pid)
    client_cpu = time.process_time()
    started = time.monotonic()
    waits_started = time.time()
    print(f"[{name}] waiting for {len(created)} jobs ...", flush=True)
    tasks = [
        asyncio.create_task(drive(factory(job.job_id, interval, end_time), job.job_id)) for job in created
    ]
    await asyncio.gather(*tasks)
    result.seconds = time.monotonic() - started
    result.client_cpu = time.process_time() - client_cpu
    result.server_cpu = process_tree_cpu(server.pid) - server_cpu
    await ticker.stop()
    stats = server.stats
    result.requests = int(stats["requests_total"])
    result.requests_by_route = {
        route.rsplit("/", 1)[-1]: count for route, count in stats["requests"].items() if count
    }
    result.lag = ticker.lags
    result.lag_times = [at - ticker.times[0] for at in ticker.times] if ticker.times else []
    ended = completion_times(server)
    for job in created:
        if job.job_id in ended:
            result.nominal += int(max(0.0, ended[job.job_id] - waits_started) // interval) + 1
        at, event = events[job.job_id]
        problem = outcome_problem(job.fail is not None, event)
        if problem is None:
            result.right += 1
        else:
            result.wrong.append(f"{job.job_id}: {problem}")
        if job.job_id in ended:
            # A job that ended before the waits started cannot be seen earlier than their start.
            result.detection.append(at - max(ended[job.job_id], waits_started))
    return result


async def memory_phase(
    name: str,
    factory: Callable[[str, float, float], BaseTrigger],
    job_ids: list[str],
    interval: float,
    polls: int = 2,
) -> float:
    """Bytes per wait held by N running waits (tracemalloc), after each has polled ``polls`` times."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    end_time = time.time() + 600

    async def drive(trigger: BaseTrigger) -> None:
        async for _ in trigger.run():
            return

    triggers = [factory(job_id, interval, end_time) for job_id in job_ids]
    tasks = [asyncio.create_task(drive(trigger)) for trigger in triggers]
    deadline = time.monotonic() + 30 + polls * interval * 4
    while time.monotonic() < deadline:
        await asyncio.sleep(interval / 2)
        polled = polled_count(triggers)
        if polled >= polls * len(triggers):
            break
    gc.collect()
    during = tracemalloc.get_traced_memory()[0]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tracemalloc.stop()
    print(f"[{name}] memory: {(during - before) / len(job_ids) / 1024:.1f} KiB per wait", flush=True)
    return (during - before) / len(job_ids)


def polled_count(triggers: list[BaseTrigger]) -> int:
    total = 0
    for trigger in triggers:
        if isinstance(trigger, PerWaitPollingTrigger):
            total += trigger.polls
        else:
            tracker = getattr(trigger, "_tracker", None)
            if tracker is not None:
                total += sum(len(history) for history in tracker.histories.values())
    return total


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def kib(value: float) -> str:
    return "not measured" if math.isnan(value) else f"{value / 1024:.1f} KiB"


def cpu_share(cpu: float, wall: float) -> str:
    """``41.2 s (68%)``: CPU seconds and their share of one core over ``wall`` seconds.

    :param cpu: CPU seconds used.
    :param wall: the wall-clock seconds they were used in.
    """
    return f"{cpu:.1f} s ({cpu / wall:.0%})" if wall > 0 else "n/a"


def sec(value: float) -> str:
    return f"{value:.2f} s"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--min-duration", type=float, default=10.0)
    parser.add_argument("--max-duration", type=float, default=60.0)
    parser.add_argument("--fail-every", type=int, default=50, help="every n-th job ends Failed (0: none)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--baseline-logs", action="store_true", help="the baseline logs a line per poll")
    parser.add_argument(
        "--baseline-client",
        choices=("lean", "hook"),
        default="lean",
        help="the baseline's HTTP client per wait: lean kept-alive connection (default) or the hook (httpx)",
    )
    args = parser.parse_args()
    stop_cleanly_on_sigterm()

    PerWaitPollingTrigger.log_polls = args.baseline_logs
    PerWaitPollingTrigger.client = args.baseline_client
    log_dir = scratch_dir("ami-bench-logs-")
    quiet_airflow_logs(log_dir / "triggers.log")
    print(
        f"{machine()}; {args.waits} waits, poll interval {args.interval:g} s, jobs end "
        f"{args.min_duration:g}-{args.max_duration:g} s after creation; trigger logs go to a scratch file",
        flush=True,
    )
    rng = random.Random(args.seed)
    sides: list[tuple[str, Callable[[str, float, float], BaseTrigger]]] = []
    if not args.skip_baseline:
        sides.append((f"baseline (describe per wait, {args.baseline_client} client)", baseline))
    sides.append(("ours (shared poller)", ours))
    with local_server() as server:
        use_connection(CONN_ID, server.url)
        results = []
        for name, factory in sides:
            specs = make_specs(args.waits, rng, args.min_duration, args.max_duration, args.fail_every)
            results.append(await run_side(name, factory, server, specs, args.interval))
            print(f"[{name}] done in {results[-1].seconds:.1f} s", flush=True)
        if not args.skip_memory:
            print(f"[memory] creating {args.waits} jobs that do not end during the phase ...", flush=True)
            long_jobs = await create_jobs(server.url, [(3600.0, None)] * args.waits)
            ids = [job.job_id for job in long_jobs]
            for (name, factory), result in zip(sides, results, strict=True):
                result.memory_per_wait = await memory_phase(name, factory, ids, args.interval)

    rows = []
    for result in results:
        rows.append(
            [
                result.name,
                f"{result.right}/{result.waits}",
                f"{result.requests:,}",
                ", ".join(f"{route} {count:,}" for route, count in sorted(result.requests_by_route.items())),
                ms(percentile(result.lag, 0.5)),
                ms(percentile(result.lag, 0.99)),
                ms(max(result.lag) if result.lag else float("nan")),
                sec(percentile(result.detection, 0.5)),
                sec(percentile(result.detection, 0.99)),
                kib(result.memory_per_wait),
                sec(result.seconds),
                cpu_share(result.client_cpu, result.seconds),
                cpu_share(result.server_cpu, result.seconds),
            ]
        )
    print()
    print(
        table(
            [
                "side",
                "outcomes right",
                "requests",
                "by route",
                "lag p50",
                "lag p99",
                "lag max",
                "detect p50",
                "detect p99",
                "memory/wait",
                "wall time",
                "CPU: loop",
                "CPU: server",
            ],
            rows,
        )
    )
    for result in results:
        for problem in result.wrong[:10]:
            print(f"WRONG [{result.name}] {problem}")
    ours_result = results[-1]
    all_right = all(not result.wrong for result in results)
    if len(results) == 2:
        base = results[0]
        ratio = base.requests / max(1, ours_result.requests)
        print(
            f"RESULT waits={args.waits} interval={args.interval:g}s baseline client={args.baseline_client}: "
            f"requests ours/baseline = "
            f"{ours_result.requests:,}/{base.requests:,} = 1/{ratio:.1f}; lag p99 ours "
            f"{ms(percentile(ours_result.lag, 0.99))} vs baseline {ms(percentile(base.lag, 0.99))}; "
            f"detection p99 "
            f"ours {sec(percentile(ours_result.detection, 0.99))} vs baseline "
            f"{sec(percentile(base.detection, 0.99))}; memory/wait ours "
            f"{kib(ours_result.memory_per_wait)} vs baseline {kib(base.memory_per_wait)}; outcomes right: "
            f"{'all' if all_right else 'NOT ALL'} ({ours_result.right}/{ours_result.waits} ours, "
            f"{base.right}/{base.waits} baseline); the baseline's interval called for "
            f"{base.nominal:,} requests (1/{base.nominal / max(1, ours_result.requests):.1f} of those)"
        )
    else:
        print(
            f"RESULT waits={args.waits} interval={args.interval:g}s (ours only): requests "
            f"{ours_result.requests:,}; lag p99 {ms(percentile(ours_result.lag, 0.99))}; detection p99 "
            f"{sec(percentile(ours_result.detection, 0.99))}; memory/wait "
            f"{kib(ours_result.memory_per_wait)}; outcomes right: "
            f"{ours_result.right}/{ours_result.waits}"
        )
    if not all_right:
        raise SystemExit(1)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
