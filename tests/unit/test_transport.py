"""
The per-endpoint rate budget (airflow_milvus_import.transport.RateBudget) and how the hook uses it.

The bucket itself is pure and runs on an injected clock. The hook's use of it (every request takes a token;
a 429 with Retry-After pauses every caller of the endpoint, sync and async) runs against pytest-httpserver
on 127.0.0.1, with the order and spacing of requests read from the server's side.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator  # noqa: TC003 (pytest resolves fixture annotations)
from typing import Any

import pytest

from airflow_milvus_import import polling, transport
from airflow_milvus_import.exceptions import MilvusImportRateLimitError, MilvusImportRequestError
from airflow_milvus_import.protocol import DEFAULT_ZILLIZ_RATE_LIMIT, settings_from_connection
from airflow_milvus_import.transport import RateBudget, rate_budget_for, token_fingerprint

SECRET = "sentinel-token-rate-budget-7f3a"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(rate: float | None, clock: FakeClock, **kwargs: Any) -> RateBudget:
    return RateBudget(rate, clock=clock, sleep=clock.sleep, **kwargs)


# ------------------------------------------------------------------------------------------------------
# The bucket, on a fake clock


def test_unlimited_never_waits() -> None:
    clock = FakeClock()
    bucket = budget(None, clock)
    assert [bucket.reserve() for _ in range(1000)] == [0.0] * 1000
    assert bucket.rate is None
    assert bucket.acquire() == 0.0


def test_a_burst_of_one_seconds_worth_then_one_slot_per_interval() -> None:
    clock = FakeClock()
    bucket = budget(10, clock)
    waits = [bucket.reserve() for _ in range(13)]
    assert waits[:10] == [0.0] * 10
    assert waits[10:] == pytest.approx([0.1, 0.2, 0.3])


def test_tokens_come_back_with_time() -> None:
    clock = FakeClock()
    bucket = budget(10, clock)
    for _ in range(10):
        bucket.reserve()
    clock.now += 0.5  # five slots' worth of quiet
    assert [bucket.reserve() for _ in range(6)] == pytest.approx([0.0] * 5 + [0.1])


def test_a_burst_of_one_spaces_every_request() -> None:
    clock = FakeClock()
    bucket = budget(4, clock, burst=1)
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_a_pause_holds_everything_and_ends_without_a_burst() -> None:
    clock = FakeClock()
    bucket = budget(10, clock)
    bucket.pause(2.0)
    assert bucket.paused_for() == pytest.approx(2.0)
    waits = [bucket.reserve() for _ in range(3)]
    assert waits == pytest.approx([2.0, 2.1, 2.2])  # after the pause: at the rate, no burst
    assert bucket.pauses == 1


def test_a_shorter_pause_does_not_shorten_a_longer_one() -> None:
    clock = FakeClock()
    bucket = budget(None, clock)
    bucket.pause(5.0)
    bucket.pause(1.0)
    assert bucket.paused_for() == pytest.approx(5.0)
    assert bucket.pauses == 1
    bucket.pause(float("nan"))
    bucket.pause(-3)
    assert bucket.paused_for() == pytest.approx(5.0)


def test_a_pause_applies_to_an_unlimited_budget_too() -> None:
    clock = FakeClock()
    bucket = budget(None, clock)
    bucket.pause(1.5)
    assert bucket.reserve() == pytest.approx(1.5)
    clock.now += 2
    assert bucket.reserve() == 0.0


def test_acquire_sleeps_until_its_slot() -> None:
    clock = FakeClock()
    bucket = budget(2, clock, burst=1)
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == pytest.approx(0.5)
    assert clock.slept == pytest.approx([0.5])


def test_acquire_takes_a_new_slot_when_a_pause_began_while_it_slept() -> None:
    clock = FakeClock()
    bucket = budget(10, clock, burst=1)
    bucket.reserve()
    original_sleep = clock.sleep

    def sleep_and_get_paused(seconds: float) -> None:
        original_sleep(seconds)
        if len(clock.slept) == 1:
            bucket.pause(3.0)  # a 429 arrived for another caller meanwhile

    bucket._sleep = sleep_and_get_paused
    waited = bucket.acquire()
    assert waited == pytest.approx(0.1 + 3.0)


def test_a_callers_deadline_caps_its_wait() -> None:
    clock = FakeClock()
    bucket = budget(None, clock)
    bucket.pause(10.0)
    assert bucket.acquire(not_after=clock.now + 1.0) == pytest.approx(
        1.0
    )  # one last look goes at its deadline
    assert bucket.acquire(not_after=clock.now - 5.0) == 0.0


def test_set_rate_changes_the_spacing() -> None:
    clock = FakeClock()
    bucket = budget(1, clock, burst=1)
    bucket.reserve()
    bucket.set_rate(None)
    assert bucket.reserve() == 0.0
    bucket.set_rate(0)
    assert bucket.rate is None
    bucket.set_rate(20, burst=1)
    assert bucket.rate == 20


def test_threads_get_distinct_slots() -> None:
    clock = FakeClock()  # frozen: every reservation is for the future
    bucket = budget(100, clock, burst=1)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [bucket.reserve() for _ in range(50)]
        with lock:
            waits.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([slot / 100 for slot in range(400)])


async def test_async_acquire_waits_without_blocking_the_event_loop() -> None:
    bucket = RateBudget(20, burst=1)
    bucket.reserve()
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    waited = await bucket.aacquire()
    stop.set()
    await task
    assert waited > 0
    assert ticks > 1, "other tasks ran while the request waited for its slot"


def test_budget_repr_names_the_endpoint_not_a_token() -> None:
    settings = settings_from_connection("c", "http://127.0.0.1:1/rb-repr", password=SECRET)
    bucket = rate_budget_for(settings)
    assert "127.0.0.1" in repr(bucket)
    assert SECRET not in repr(bucket)
    assert SECRET not in token_fingerprint(SECRET)
    assert token_fingerprint(SECRET) == token_fingerprint(SECRET)
    assert token_fingerprint(SECRET) != token_fingerprint(SECRET + "x")
    assert token_fingerprint(None) == ""


# ------------------------------------------------------------------------------------------------------
# Settings: the rate of an endpoint


@pytest.mark.parametrize(
    ("host", "extra", "expected"),
    [
        ("http://127.0.0.1:19530", {}, None),  # self-hosted: no limit unless one is set
        ("https://api.cloud.zilliz.com", {"cluster_id": "in01-x"}, DEFAULT_ZILLIZ_RATE_LIMIT),
        ("https://api.cloud.zilliz.com", {"cluster_id": "in01-x", "rate_limit": 3}, 3.0),
        ("https://api.cloud.zilliz.com", {"cluster_id": "in01-x", "rate_limit": 0}, None),
        ("https://api.cloud.zilliz.com", {"cluster_id": "in01-x", "rate_limit": "none"}, None),
        ("https://api.cloud.zilliz.com", {"cluster_id": "in01-x", "rate_limit": "Unlimited"}, None),
        ("http://127.0.0.1:19530", {"rate_limit": "2.5"}, 2.5),
    ],
)
def test_requests_per_second_from_the_connection(host: str, extra: dict[str, Any], expected: Any) -> None:
    assert settings_from_connection("c", host, extra=extra).requests_per_second == expected


@pytest.mark.parametrize("value", ["fast", -1, "-2", True, float("inf")])
def test_a_bad_rate_limit_names_the_connection(value: Any) -> None:
    with pytest.raises(MilvusImportRequestError, match="'rate_limit'") as caught:
        settings_from_connection("my_conn", "http://127.0.0.1:19530", extra={"rate_limit": value})
    assert "'my_conn'" in str(caught.value)


def test_one_budget_per_endpoint_and_token() -> None:
    base = "http://127.0.0.1:1/rb-shared"
    first = rate_budget_for(settings_from_connection("a", base, password="t1"))
    assert rate_budget_for(settings_from_connection("b", base, password="t1")) is first  # other conn id
    assert rate_budget_for(settings_from_connection("c", base, password="t2")) is not first  # other key
    assert rate_budget_for(settings_from_connection("d", base + "x", password="t1")) is not first
    limited = rate_budget_for(settings_from_connection("e", base, password="t1", extra={"rate_limit": 4}))
    assert limited is first
    assert first.rate == 4  # the settings read last set the rate


# ------------------------------------------------------------------------------------------------------
# The hook: every request takes a token; rate limiting pauses every caller of the endpoint

LIST = "/v2/vectordb/jobs/import/list"
OK_LIST = {"code": 0, "data": {"records": []}}


class RecordingServer:
    """Answers ``list`` from a script (the last step repeats) and records when each request arrived."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.arrivals: list[float] = []
        self.steps: list[tuple[int, Any, dict[str, str]]] = [(200, OK_LIST, {})]
        server.expect_request(LIST, method="POST").respond_with_handler(self._answer)

    @property
    def base_url(self) -> str:
        return str(self.server.url_for("/")).rstrip("/")

    def script(self, *steps: tuple[int, Any, dict[str, str]]) -> None:
        self.steps = list(steps)

    def _answer(self, request: Any) -> Any:
        from werkzeug import Response

        self.arrivals.append(time.monotonic())
        status, body, headers = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingServer]:
    """A fresh server per test (a new port: a new endpoint, so no budget is shared between tests)."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        recorder = RecordingServer(server)
        connection = {"conn_type": "milvus_import", "host": recorder.base_url, "password": SECRET}
        monkeypatch.setenv("AIRFLOW_CONN_MILVUS_RATE", json.dumps(connection))
        limited = {**connection, "extra": {"rate_limit": 4}}
        monkeypatch.setenv("AIRFLOW_CONN_MILVUS_RATE_LIMITED", json.dumps(limited))
        yield recorder
    finally:
        server.clear()
        server.stop()


def new_hook(conn_id: str = "milvus_rate", **kwargs: Any) -> Any:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    return MilvusImportHook(conn_id, **kwargs)


async def test_retry_after_pauses_every_caller_of_the_endpoint_sync_and_async(
    recording: RecordingServer,
) -> None:
    recording.script((429, {"code": 429, "message": "slow down"}, {"Retry-After": "1"}), (200, OK_LIST, {}))
    first = new_hook(max_retries=0)
    with pytest.raises(MilvusImportRateLimitError) as caught:
        await first.alist_import_jobs()
    assert caught.value.retry_after == 1.0
    bucket = rate_budget_for(await first.aget_settings())
    assert bucket.pauses == 1
    assert bucket.paused_for() > 0

    # Other hooks of the process (a sensor poking in a thread, another trigger) wait out the same pause.
    other = new_hook()
    await asyncio.to_thread(other.list_import_jobs)
    assert await new_hook().alist_import_jobs() == []
    limited_at, sync_at, async_at = recording.arrivals
    assert sync_at - limited_at >= 0.95
    assert async_at >= sync_at
    await first.aclose()


def test_retry_after_is_capped_for_the_shared_pause(recording: RecordingServer) -> None:
    recording.script((429, {"code": 429, "message": "slow down"}, {"Retry-After": "3600"}))
    hook = new_hook(max_retries=0)
    with pytest.raises(MilvusImportRateLimitError):
        hook.list_import_jobs()
    paused = rate_budget_for(hook.get_settings()).paused_for()
    assert 0 < paused <= transport.SHARED_PAUSE_CAP_SECONDS


def test_milvus_rate_limit_code_pauses_the_endpoint(recording: RecordingServer) -> None:
    # Self-hosted Milvus says "rate limit exceeded" with code 8 in an HTTP 200 answer, without Retry-After.
    recording.script((200, {"code": 8, "message": "rate limit exceeded[rate=1]"}, {}))
    hook = new_hook(max_retries=0)
    with pytest.raises(MilvusImportRateLimitError):
        hook.list_import_jobs()
    assert rate_budget_for(hook.get_settings()).paused_for() == pytest.approx(
        transport.DEFAULT_PAUSE_SECONDS, abs=0.5
    )


def test_rate_limit_extra_paces_the_requests(recording: RecordingServer) -> None:
    hook = new_hook("milvus_rate_limited")
    for _ in range(7):  # 4 at once (a second's worth), then one every 0.25 s
        hook.list_import_jobs()
    arrivals = recording.arrivals
    assert len(arrivals) == 7
    assert arrivals[-1] - arrivals[0] >= 0.7
    assert rate_budget_for(hook.get_settings()).rate == 4


def test_reset_rate_budgets_starts_every_endpoint_afresh() -> None:
    from airflow_milvus_import.transport import reset_rate_budgets

    settings = settings_from_connection("a", "http://milvus.reset.example:19530", password="t1")
    first = rate_budget_for(settings)
    first.pause(30)
    reset_rate_budgets()
    fresh = rate_budget_for(settings)
    assert fresh is not first
    assert fresh.paused_for() == 0


def test_polling_still_offers_the_rate_budget_names_it_had() -> None:
    """The rate budget moved to the transport side; its old import path (``polling``) keeps working."""
    for name in (
        "RateBudget",
        "rate_budget_for",
        "reset_rate_budgets",
        "token_fingerprint",
        "request_not_after",
        "DEFAULT_PAUSE_SECONDS",
        "SHARED_PAUSE_CAP_SECONDS",
    ):
        assert getattr(polling, name) is getattr(transport, name), name
