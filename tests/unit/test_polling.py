"""
Shared polling (airflow_milvus_import.polling): many triggers in one event loop share one poller.

The choice between ``list`` and ``describe`` is tested as pure functions. The poller runs for real: many
``MilvusImportJobTrigger.run()`` loops in one event loop, as in a triggerer, against the local import server
(request counts from the server's own stats) and against pytest-httpserver where a test needs a server that
fails in a chosen way (no ``list`` route, a failing ``list``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Iterator  # noqa: TC003 (pytest resolves fixture annotations)
from typing import Any

import pytest

from airflow_milvus_import import polling
from airflow_milvus_import.models import ImportJobProgress, ImportJobState, ImportJobSummary
from airflow_milvus_import.polling import (
    MIN_JOBS_FOR_LIST_ALONE,
    PollerKey,
    active_pollers,
    choose_poll_mode,
    describe_cost,
    list_cost,
    progress_from_summary,
)
from airflow_milvus_import.protocol import settings_from_connection
from airflow_milvus_import.triggers.milvus_import import MilvusImportJobTrigger
from tests.conftest import prepare_rows

SECRET = "sentinel-token-polling-91c2"

# ------------------------------------------------------------------------------------------------------
# Pure: the cost model


def test_costs() -> None:
    assert describe_cost(10).requests == 10
    assert list_cost(5000, zilliz=False).requests == 1
    assert list_cost(5000, zilliz=True).requests == 50
    assert list_cost(0, zilliz=True).requests == 1
    assert list_cost(5000, zilliz=False).bytes > describe_cost(1).bytes


@pytest.mark.parametrize(
    ("kwargs", "mode"),
    [
        # a trigger alone polls as it always did: describe per job
        ({"watchers": 1, "jobs": 1, "server_jobs": None, "zilliz": False}, "describe"),
        ({"watchers": 1, "jobs": 5, "server_jobs": 5, "zilliz": False}, "describe"),
        # ... unless it waits on many jobs
        ({"watchers": 1, "jobs": MIN_JOBS_FOR_LIST_ALONE, "server_jobs": 40, "zilliz": False}, "list"),
        # one job never needs a list
        ({"watchers": 3, "jobs": 1, "server_jobs": 1, "zilliz": False}, "describe"),
        # many waits: an unknown server is listed once to learn its size
        ({"watchers": 100, "jobs": 100, "server_jobs": None, "zilliz": False}, "list"),
        ({"watchers": 100, "jobs": 100, "server_jobs": 3000, "zilliz": False}, "list"),
        # a server holding many old jobs: a few waits describe instead of listing them all
        ({"watchers": 5, "jobs": 5, "server_jobs": 50_000, "zilliz": False}, "describe"),
        ({"watchers": 500, "jobs": 500, "server_jobs": 50_000, "zilliz": False}, "describe"),
        ({"watchers": 2000, "jobs": 2000, "server_jobs": 50_000, "zilliz": False}, "list"),
        # Zilliz Cloud pages (100 a page): listing 3,000 jobs is 30 requests
        ({"watchers": 20, "jobs": 20, "server_jobs": 3000, "zilliz": True}, "describe"),
        ({"watchers": 200, "jobs": 200, "server_jobs": 3000, "zilliz": True}, "list"),
        # list failed for good: describe
        (
            {"watchers": 100, "jobs": 100, "server_jobs": 10, "zilliz": False, "list_usable": False},
            "describe",
        ),
    ],
)
def test_choose_poll_mode(kwargs: dict[str, Any], mode: str) -> None:
    assert choose_poll_mode(**kwargs) == mode


def test_choose_poll_mode_does_not_flap_near_the_break_even_point() -> None:
    server_jobs = 1000
    listing = list_cost(server_jobs, zilliz=False).total
    # find the number of jobs where one describe each costs about the same as the list
    even = next(jobs for jobs in range(1, 10_000) if describe_cost(jobs).total >= listing)
    common = {"watchers": even, "jobs": even, "server_jobs": server_jobs, "zilliz": False}
    assert choose_poll_mode(**common, current="list") == "list"
    assert choose_poll_mode(**common, current="describe") == "describe"


def test_progress_from_a_list_record_keeps_the_rows_and_files_of_the_last_describe() -> None:
    summary = ImportJobSummary.from_wire(
        {"jobId": 7, "collectionName": "books", "state": "Importing", "progress": 60}
    )
    bare = progress_from_summary(summary, None)
    assert (bare.job_id, bare.state, bare.progress, bare.details) == ("7", ImportJobState.IMPORTING, 60, ())
    last = ImportJobProgress.from_wire(
        {
            "jobId": "7",
            "collectionName": "books",
            "state": "Importing",
            "progress": 45,
            "importedRows": 300,
            "totalRows": 1000,
            "details": [{"fileName": "[a.parquet]", "state": "InProgress", "progress": 30}],
        }
    )
    merged = progress_from_summary(summary, last)
    assert (merged.progress, merged.imported_rows, merged.total_rows) == (60, 300, 1000)
    assert merged.details == last.details
    # Zilliz Cloud's records may lack progress: the last known percent stays
    zilliz = ImportJobSummary.from_wire({"jobId": "7", "state": "Importing"})
    assert progress_from_summary(zilliz, last).progress == 45


def test_poller_key_carries_a_fingerprint_never_the_token() -> None:
    settings = settings_from_connection("c", "http://127.0.0.1:19530", password=SECRET)
    key = PollerKey.of(settings, None)
    assert SECRET not in repr(key)
    assert SECRET not in str(key)
    other = PollerKey.of(settings_from_connection("d", "http://127.0.0.1:19530", password=SECRET), None)
    assert key == other  # another connection id with the same endpoint and token shares
    assert key != PollerKey.of(settings_from_connection("c", "http://127.0.0.1:19530", password="x"), None)
    assert key != PollerKey.of(settings, "analytics")  # another database does not
    insecure = settings_from_connection(
        "c", "http://127.0.0.1:19530", password=SECRET, extra={"verify": False}
    )
    assert key != PollerKey.of(insecure, None)  # nor other TLS settings


# ------------------------------------------------------------------------------------------------------
# Many triggers, one event loop, the local import server

COLLECTION = "polling_books"
ROWS_FILE = "polling_rows.json"
FAIL = "row 2: field 'vector' has 3 values, the schema wants 4"


@pytest.fixture(scope="module")
def local_conn(local_server: Any) -> Iterator[Any]:
    prepare_rows(local_server, COLLECTION, ROWS_FILE, 3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW_CONN_MILVUS_POLLING",
            json.dumps({"conn_type": "milvus_import", "host": local_server.url}),
        )
        patch.setenv(
            "AIRFLOW_CONN_MILVUS_POLLING_CLOUD",
            json.dumps(
                {
                    "conn_type": "milvus_import",
                    "host": local_server.cloud_url,
                    "extra": {"cluster_id": local_server.cluster_id},
                }
            ),
        )
        yield local_server


def create_jobs(conn_id: str, specs: list[tuple[float, str | None]]) -> list[str]:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    with MilvusImportHook(conn_id) as hook:
        ids = []
        for duration, fail in specs:
            options = {"local.duration": str(duration)}
            if fail:
                options["local.fail"] = fail
            ids.append(hook.create_import_job(COLLECTION, [[ROWS_FILE]], options=options))
        return ids


async def drive(trigger: MilvusImportJobTrigger) -> dict[str, Any]:
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    payload: dict[str, Any] = events[0].payload
    return payload


def polls_made(triggers: list[MilvusImportJobTrigger]) -> int:
    """Answers the triggers got (one per job per poll)."""
    total = 0
    for trigger in triggers:
        tracker = trigger._tracker
        assert tracker is not None
        total += sum(len(history) for history in tracker.histories.values())
    return total


def assert_right(event: dict[str, Any], job_id: str, fail: str | None) -> None:
    if fail is None:
        assert event["status"] == "success", event["message"]
        (job,) = event["jobs"]
        assert job["state"] == "Completed"
        assert job["imported_rows"] == 3
        assert job["details"][0]["files"] == [ROWS_FILE]  # full progress: fetched by describe at the end
    else:
        assert event["status"] == "failed", event["message"]
        assert event["jobs"][0]["details"][0]["reason"] == fail
        assert f"job {job_id}" in event["message"]


@pytest.mark.integration
async def test_many_triggers_share_one_poller_and_send_far_fewer_requests(local_conn: Any) -> None:
    rng = random.Random(3)
    specs = [(rng.uniform(1.0, 4.0), FAIL if number % 8 == 7 else None) for number in range(40)]
    job_ids = create_jobs("milvus_polling", specs)
    local_conn.reset_stats()
    triggers = [
        MilvusImportJobTrigger(job_id, milvus_import_conn_id="milvus_polling", poll_interval=0.3)
        for job_id in job_ids
    ]
    tasks = [asyncio.create_task(drive(trigger)) for trigger in triggers]
    await asyncio.sleep(0.5)
    (poller,) = active_pollers()
    assert poller.watchers == len([task for task in tasks if not task.done()])
    events = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    for event, job_id, (_, fail) in zip(events, job_ids, specs, strict=True):
        assert_right(event, job_id, fail)

    requests = local_conn.stats["requests"]
    lists = requests.get("/v2/vectordb/jobs/import/list", 0)
    describes = requests.get("/v2/vectordb/jobs/import/describe", 0)
    assert lists > 0
    assert describes >= len(job_ids)  # one at the end of each job, for its files
    assert lists + describes < polls_made(triggers) / 2  # per-trigger polling sends one per answer
    assert poller.stats["list_rounds"] == lists
    assert active_pollers() == []
    assert not poller.running
    assert poller.http_client_closed


@pytest.mark.integration
async def test_a_cancelled_trigger_leaves_the_others_and_the_poller_clean(local_conn: Any) -> None:
    specs: list[tuple[float, str | None]] = [(1.5, None)] * 5 + [(120.0, None)] * 3
    job_ids = create_jobs("milvus_polling", specs)
    triggers = [
        MilvusImportJobTrigger(job_id, milvus_import_conn_id="milvus_polling", poll_interval=0.2)
        for job_id in job_ids
    ]
    tasks = [asyncio.create_task(drive(trigger)) for trigger in triggers]
    deadline = time.monotonic() + 20
    while polls_made_safe(triggers) < len(triggers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (poller,) = active_pollers()
    assert poller.watchers == 8
    for task in tasks[5:]:  # the task was cleared: the triggerer cancels these triggers
        task.cancel()
    cancelled = await asyncio.gather(*tasks[5:], return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in cancelled)
    assert poller.watchers == 5
    assert poller.watched_jobs == 5
    events = await asyncio.wait_for(asyncio.gather(*tasks[:5]), timeout=60)
    for event, job_id in zip(events, job_ids, strict=False):
        assert_right(event, job_id, None)
    assert active_pollers() == []
    assert poller.http_client_closed


def polls_made_safe(triggers: list[MilvusImportJobTrigger]) -> int:
    return sum(
        1
        for trigger in triggers
        if trigger._tracker is not None and any(len(h) for h in trigger._tracker.histories.values())
    )


@pytest.mark.integration
async def test_the_poller_stops_and_closes_its_client_when_the_last_watcher_leaves(local_conn: Any) -> None:
    job_ids = create_jobs("milvus_polling", [(120.0, None), (120.0, None)])
    triggers = [
        MilvusImportJobTrigger(job_id, milvus_import_conn_id="milvus_polling", poll_interval=0.2)
        for job_id in job_ids
    ]
    tasks = [asyncio.create_task(drive(trigger)) for trigger in triggers]
    deadline = time.monotonic() + 20
    while polls_made_safe(triggers) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (poller,) = active_pollers()
    assert poller.running
    assert not poller.http_client_closed
    tasks[0].cancel()
    await asyncio.gather(tasks[0], return_exceptions=True)
    assert poller.running  # one watcher left
    tasks[1].cancel()
    await asyncio.gather(tasks[1], return_exceptions=True)
    assert active_pollers() == []
    assert not poller.running
    assert poller.http_client_closed
    assert poller.watchers == 0
    assert poller.watched_jobs == 0


@pytest.mark.integration
async def test_a_trigger_alone_polls_with_describe_as_before(local_conn: Any) -> None:
    job_ids = create_jobs("milvus_polling", [(0.8, None), (1.2, None), (1.0, FAIL)])
    local_conn.reset_stats()
    event = await drive(
        MilvusImportJobTrigger(job_ids[:2], milvus_import_conn_id="milvus_polling", poll_interval=0.2)
    )
    assert event["status"] == "success"
    assert [job["state"] for job in event["jobs"]] == ["Completed", "Completed"]
    requests = local_conn.stats["requests"]
    assert requests.get("/v2/vectordb/jobs/import/list", 0) == 0
    assert requests.get("/v2/vectordb/jobs/import/describe", 0) >= 4


@pytest.mark.integration
async def test_a_job_the_list_does_not_show_is_described_and_its_error_reported(local_conn: Any) -> None:
    job_ids = create_jobs("milvus_polling", [(0.5, None)] * 4)
    missing = "999999999999999"  # no such job: the list cannot show it; describe says so
    triggers = [
        MilvusImportJobTrigger(job_id, milvus_import_conn_id="milvus_polling", poll_interval=0.2)
        for job_id in [*job_ids, missing]
    ]
    events = await asyncio.wait_for(asyncio.gather(*(drive(trigger) for trigger in triggers)), timeout=60)
    for event, job_id in zip(events[:4], job_ids, strict=True):
        assert_right(event, job_id, None)
    assert events[4]["status"] == "error"
    assert events[4]["message"].startswith(f"Cannot wait for Milvus import job {missing}:")
    assert "does not exist" in events[4]["message"]


@pytest.mark.integration
async def test_zilliz_cloud_flavour_pages_the_list(local_conn: Any) -> None:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    with MilvusImportHook("milvus_polling_cloud") as hook:
        job_ids = [
            hook.create_import_job(COLLECTION, [[ROWS_FILE]], options={"local.duration": "1.0"})
            for _ in range(12)
        ]
    local_conn.reset_stats()
    triggers = [
        MilvusImportJobTrigger(job_id, milvus_import_conn_id="milvus_polling_cloud", poll_interval=0.3)
        for job_id in job_ids
    ]
    events = await asyncio.wait_for(asyncio.gather(*(drive(trigger) for trigger in triggers)), timeout=60)
    for event, job_id in zip(events, job_ids, strict=True):
        assert event["status"] == "success", event["message"]
        assert event["jobs"][0]["job_id"] == job_id
        assert event["jobs"][0]["details"]
    requests = local_conn.stats["requests"]
    assert requests.get("/cloud/v2/vectordb/jobs/import/list", 0) > 0


# ------------------------------------------------------------------------------------------------------
# Servers that fail in chosen ways (pytest-httpserver)

DESCRIBE = "/v2/vectordb/jobs/import/describe"
LIST = "/v2/vectordb/jobs/import/list"


def wire_progress(job_id: str, state: str, percent: int) -> dict[str, Any]:
    details = [{"fileName": "[a.parquet]", "state": "Completed" if state == "Completed" else "InProgress"}]
    data = {
        "jobId": job_id,
        "collectionName": "books",
        "state": state,
        "progress": percent,
        "details": details,
    }
    return {"code": 0, "data": data}


class Scripted:
    """``describe`` answers from a per-job count of polls; ``list`` answers from a chosen response."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.calls: dict[str, int] = {}
        self.list_calls = 0
        self.list_answer: tuple[int, str, str] = (404, "404 page not found", "text/plain")
        server.expect_request(DESCRIBE, method="POST").respond_with_handler(self._describe)
        server.expect_request(LIST, method="POST").respond_with_handler(self._list)

    def _describe(self, request: Any) -> Any:
        from werkzeug import Response

        job_id = str(json.loads(request.get_data())["jobId"])
        self.calls[job_id] = self.calls.get(job_id, 0) + 1
        state = "Completed" if self.calls[job_id] >= 3 else "Importing"
        body = wire_progress(job_id, state, 100 if state == "Completed" else 50)
        return Response(json.dumps(body), status=200, content_type="application/json")

    def _list(self, _request: Any) -> Any:
        from werkzeug import Response

        self.list_calls += 1
        status, text, kind = self.list_answer
        return Response(text, status=status, content_type=kind)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        connection = {"conn_type": "milvus_import", "host": server.url_for("/").rstrip("/")}
        monkeypatch.setenv("AIRFLOW_CONN_MILVUS_SCRIPTED_POLL", json.dumps(connection))
        yield Scripted(server)
    finally:
        server.clear()
        server.stop()


def scripted_triggers(count: int, **kwargs: Any) -> list[MilvusImportJobTrigger]:
    return [
        MilvusImportJobTrigger(
            str(100 + number), milvus_import_conn_id="milvus_scripted_poll", poll_interval=0.05, **kwargs
        )
        for number in range(count)
    ]


async def test_a_server_without_list_is_polled_with_describe(scripted: Scripted) -> None:
    triggers = scripted_triggers(6)
    events = await asyncio.wait_for(asyncio.gather(*(drive(trigger) for trigger in triggers)), timeout=30)
    assert [event["status"] for event in events] == ["success"] * 6
    assert scripted.list_calls == 1  # tried once: the route is missing, so describe from then on
    assert all(count == 3 for count in scripted.calls.values())


async def test_a_failed_list_counts_as_a_failed_poll_of_every_job(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.list_answer = (503, "<html>503 Service Unavailable</html>", "text/html")
    triggers = scripted_triggers(5, error_tolerance=1.0)
    with caplog.at_level(logging.INFO, logger="airflow_milvus_import.polling"):
        events = await asyncio.wait_for(asyncio.gather(*(drive(trigger) for trigger in triggers)), timeout=30)
    for event, trigger in zip(events, triggers, strict=True):
        assert event["status"] == "error"
        assert event["message"].startswith(
            f"Gave up waiting for Milvus import job {trigger.job_ids[0]} on http://127.0.0.1:"
        )
        assert "its polls have been failing for" in event["message"]
        assert "list" in event["message"]  # the error names the request that failed
    # a round serves every wait at once and is logged once: the first failed round's list is retried
    # inside the poll (3 retries, 1.75 s of backoff at least); the tolerance (1 s) then being used up, the
    # last round's list is sent once, without retries
    failed_rounds = [r for r in caplog.records if "list failed (retried up to 3 times" in r.getMessage()]
    assert len(failed_rounds) == 2
    assert all("5 waits on 5 jobs each count one failed poll" in r.getMessage() for r in failed_rounds)
    assert scripted.list_calls == 4 + 1
    assert scripted.calls == {}


async def test_settings_are_read_once_for_triggers_that_start_together(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_milvus_import.hooks.milvus_import import MilvusImportHook

    reads = 0
    original = MilvusImportHook.aget_connection

    async def counting(cls: type[MilvusImportHook], conn_id: str) -> Any:
        nonlocal reads
        reads += 1
        return await original(conn_id)

    monkeypatch.setattr(MilvusImportHook, "aget_connection", classmethod(counting))
    triggers = scripted_triggers(20)
    events = await asyncio.wait_for(asyncio.gather(*(drive(trigger) for trigger in triggers)), timeout=30)
    assert [event["status"] for event in events] == ["success"] * 20
    assert reads == 1


def test_the_polling_module_keeps_the_token_out_of_its_keys() -> None:
    assert polling.token_fingerprint(SECRET) not in SECRET
    assert len(polling.token_fingerprint(SECRET)) == 16


class ListingServer:
    """``list`` answers every job Importing; ``describe`` too (jobs that never end)."""

    def __init__(self, server: Any, job_ids: list[str]) -> None:
        self.records = [
            {"jobId": job_id, "collectionName": "books", "state": "Importing", "progress": 50}
            for job_id in job_ids
        ]
        self.lists = 0
        server.expect_request(LIST, method="POST").respond_with_handler(self._list)
        server.expect_request(DESCRIBE, method="POST").respond_with_handler(self._describe)

    def _list(self, _request: Any) -> Any:
        from werkzeug import Response

        self.lists += 1
        body = {"code": 0, "data": {"records": self.records}}
        return Response(json.dumps(body), status=200, content_type="application/json")

    def _describe(self, request: Any) -> Any:
        from werkzeug import Response

        job_id = str(json.loads(request.get_data())["jobId"])
        body = wire_progress(job_id, "Importing", 50)
        return Response(json.dumps(body), status=200, content_type="application/json")


async def test_cancelling_many_triggers_mid_round_always_ends_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A cancellation that arrives as a poll is answered must end the trigger. (asyncio.wait_for on Python 3.11
    can swallow it; a trigger using it kept polling forever after the triggerer cancelled it.)
    """
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        connection = {"conn_type": "milvus_import", "host": server.url_for("/").rstrip("/")}
        monkeypatch.setenv("AIRFLOW_CONN_MILVUS_CANCEL_RACE", json.dumps(connection))
        job_ids = [str(5000 + number) for number in range(150)]
        listing = ListingServer(server, job_ids)
        for attempt in range(6):
            triggers = [
                MilvusImportJobTrigger(
                    job_id,
                    milvus_import_conn_id="milvus_cancel_race",
                    poll_interval=0.05,
                    end_time=time.time() + 600,  # a deadline: each poll runs under a timeout
                )
                for job_id in job_ids
            ]
            tasks = [asyncio.create_task(drive(trigger)) for trigger in triggers]
            await asyncio.sleep(0.3 + 0.07 * attempt)  # cancel at a different point of a round each time
            for task in tasks:
                task.cancel()
            _done, pending = await asyncio.wait(tasks, timeout=10)
            assert not pending, f"attempt {attempt}: {len(pending)} triggers went on after being cancelled"
            assert active_pollers() == []
        assert listing.lists > 0
    finally:
        server.clear()
        server.stop()
