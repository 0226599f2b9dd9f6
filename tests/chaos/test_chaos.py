"""
Chaos runs: 200 concurrent waits on real import jobs while the server misbehaves.

The local import server injects 30% 5xx answers (JSON and HTML pages), drops 5% of connections, answers
429 with ``Retry-After`` past a rate limit the run's bursts go over (20 requests/s for the trigger path,
whose shared poller asks little but describes many jobs at once when they end; 150/s for the 200 poking
sensors, which start together), delays 3% of the requests that get through by 2 s (``latency_ms`` with
``latency_rate``: spikes, not a constant delay), and never finishes the jobs of one collection. Jobs
have chosen outcomes (``local.duration`` 2-8 s, some ``local.fail``, two that outlive their wait's
deadline). Both waiting paths run: the real ``MilvusImportJobTrigger.run()`` loop (200 triggers in one
asyncio loop, as in a triggerer, sharing one poller that retries each poll), and ``MilvusImportJobSensor``
in poke mode (200 threads, the sync hook with its own retries). Everything runs at its defaults: the
waits' error tolerance (10 minutes), ``max_consecutive_errors``, and the connection's retries (3) and
timeout (30 s).

Checked: every wait's outcome is the planned one (no false success, no false error), no wait outlives its
deadline by more than a small grace (and the timed-out ones really waited until it), requests stay within
a bound per job and poll interval (retries are bounded), and the faults really happened. The counts are
printed (``pytest -m chaos -s`` shows them; they also show when a test fails).

Run alone: ``pytest -m chaos``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.chaos.conftest import (
    CHAOS_SEED,
    JOBS,
    LATENCY_MS,
    POKE_RATE_LIMIT,
    POLL_INTERVAL,
    TRIGGER_GRACE,
    TRIGGER_RATE_LIMIT,
    ChaosRun,
    define_connection,
    plan_jobs,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

#: attempts per poll at the connection's default retries (3): the shared poller and the hook alike
ATTEMPTS_PER_POLL = 1 + 3
#: a poke-mode sensor checks its timeout between pokes: it may end one poke interval and one poke late; a
#: poke is at most four attempts (each at most a latency spike plus a second of queueing) and three
#: backoffs (0.5 + 1 + 2 s at most, or the Retry-After of a 429, about a second)
POKE_GRACE = POLL_INTERVAL + ATTEMPTS_PER_POLL * (LATENCY_MS / 1000 + 1.0) + 3.5 + 1.0


def check(run: ChaosRun, report: str, *, grace: float, attempts_per_poll: int, min_requests: int = 1) -> None:
    wrong = run.wrong_outcomes()
    assert wrong == [], report + "\n" + "\n".join(wrong[:20])
    false_success = [o for o in run.outcomes if o.status == "success" and o.job.expected != "success"]
    assert false_success == [], report
    late = [
        f"job #{o.job.index} {o.job_id}: ended {o.overrun:.2f} s after its deadline"
        for o in run.outcomes
        if o.overrun > grace
    ]
    assert late == [], report + "\n" + "\n".join(late)
    early = [o for o in run.outcomes if o.status == "timeout" and o.overrun < -0.5]
    assert early == [], "a wait reported a timeout before its deadline\n" + report
    assert run.peak_concurrency() == len(run.plan), report
    faults = run.stats["faults"]
    for kind in ("fail", "drop", "rate_limited", "delayed"):
        assert faults[kind] > 0, f"no {kind} fault was injected: the run proves nothing\n{report}"
    assert run.import_requests >= min_requests, report
    assert run.import_requests <= run.request_bound(attempts_per_poll), report
    stalled = next(o for o in run.outcomes if o.job.kind == "stalled")
    assert "did not finish before the deadline" in stalled.message, stalled.message
    assert f"job {stalled.job_id}" in stalled.message, stalled.message


def test_200_waits_through_the_trigger_loop_under_faults(
    chaos_server_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chaos_server = chaos_server_factory(rate_limit=TRIGGER_RATE_LIMIT)
    define_connection(monkeypatch, "ami_chaos_async", chaos_server.url)
    run = ChaosRun(
        chaos_server, "ami_chaos_async", plan_jobs(JOBS, CHAOS_SEED), server_rate_limit=TRIGGER_RATE_LIMIT
    )
    run.create_jobs()

    triggers = asyncio.run(run.wait_with_triggers())

    report = run.report("the trigger loop (shared poller, async hook)", ATTEMPTS_PER_POLL)
    with capsys.disabled():
        print("\n" + report)
    check(run, report, grace=TRIGGER_GRACE, attempts_per_poll=ATTEMPTS_PER_POLL)
    # the deadline travels in the serialized trigger: a triggerer that picks the wait up keeps it
    for trigger in triggers[:3]:
        assert trigger.serialize()[1]["end_time"] == trigger.end_time


def test_200_waits_through_sensors_in_poke_mode_under_faults(
    chaos_server_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chaos_server = chaos_server_factory(rate_limit=POKE_RATE_LIMIT)
    define_connection(monkeypatch, "ami_chaos_sync", chaos_server.url)
    run = ChaosRun(
        chaos_server, "ami_chaos_sync", plan_jobs(JOBS, CHAOS_SEED + 1), server_rate_limit=POKE_RATE_LIMIT
    )
    run.create_jobs()

    run.wait_with_sensors()

    report = run.report("sensors in poke mode (sync hook)", ATTEMPTS_PER_POLL)
    with capsys.disabled():
        print("\n" + report)
    # every sensor asks for its own job at every poke (at least once each)
    check(run, report, grace=POKE_GRACE, attempts_per_poll=ATTEMPTS_PER_POLL, min_requests=len(run.plan))
    stalled = next(o for o in run.outcomes if o.job.kind == "stalled")
    assert stalled.error is not None
    assert type(stalled.error).__name__ == "AirflowSensorTimeout"
